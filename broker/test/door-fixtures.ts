import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { expect } from 'vitest';
import type { Task } from '../core/task.js';
import { newId } from '../tokens/random.js';
import { agentClient, GRANT_EXCHANGE } from './delegation-fixtures.js';
import {
  addAgent,
  addPublicClient,
  addResource,
  adminApi,
  approveInBrowser,
  createUser,
  discover,
  insecure,
  postForm,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';
import { addWorkloadAgent } from './workload-fixtures.js';
import type { WorkloadIssuer } from './workload-issuer.js';

/**
 * A world for tests through Errand's agent doors (`/mcp`, `/a2a`): resources, agents, two people,
 * an MCP client they share, and the data some tests need to exist as it might have been stored.
 */

export const NOTES = 'https://notes.example.test/mcp';
export const FILES = 'https://files.example.test/api';
export const VAULT = 'https://vault.example.test/api';
export const ERRAND_SCOPES = 'errand:delegate errand:tasks';
/** A desktop client's loopback redirect (RFC 8252 §7.3). */
export const LOOPBACK_REDIRECT = 'http://127.0.0.1:8821/callback';
const TRUST_DOMAIN = 'spiffe://example.test';
const ENCLAVE = `${TRUST_DOMAIN}/ns/agents/sa/enclave`;

export type DoorWorld = Awaited<ReturnType<typeof agentDoorWorld>>;

/**
 * Registers, through the admin API: notes, files and a vault that needs NHI-AAL3; keyed agents A, B
 * and W; an agent W3 that a SPIFFE issuer vouches for at NHI-AAL3; a confidential MCP client and a
 * public one, each used by Alice and Mallory.
 */
export async function agentDoorWorld(tb: TestBroker, wi: WorkloadIssuer) {
  const api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  await addResource(api, FILES, ['files:read', 'files:write']);
  const vault = await api.call('POST', '/api/admin/resources', {
    url: VAULT,
    name: 'Vault',
    scopes: ['vault:read'],
    min_assurance: 'NHI-AAL3',
  });
  expect(vault.status).toBe(201);
  const scope = [
    'errand:delegate',
    'errand:tasks',
    'notes:read',
    'notes:write',
    'files:read',
    'files:write',
    'vault:read',
  ];
  // Agents with the grants an administrator gives them by default: client credentials, token exchange, CIBA.
  const a = await addAgent(api, { name: 'agent A', scope, grant_types: undefined });
  const b = await addAgent(api, { name: 'agent B', scope, grant_types: undefined });
  const w = await addAgent(api, { name: 'agent W', scope, grant_types: undefined });
  const w3 = await addWorkloadAgent(api, 'enclave agent W3', scope);
  const issuer = await api.call('POST', '/api/admin/trusted-issuers', {
    kind: 'spiffe',
    name: 'prod mesh',
    issuer: TRUST_DOMAIN,
    jwks_uri: wi.bundleUri,
    max_lifetime: 600,
    rules: [
      {
        match: { sub: ENCLAVE },
        agent_id: w3,
        assurance: 'NHI-AAL3',
        attestation: { claim: 'attestation/node', value: 'tpm' },
      },
    ],
  });
  expect(issuer.status).toBe(201);
  const w3Svid = (audience: string) => wi.svid(ENCLAVE, audience, { attestation: { node: 'tpm' } });
  // W3 is an agent at work: it has authenticated, and Errand recorded the level it did so at.
  const first = await postForm(`${tb.url}/token`, {
    grant_type: 'client_credentials',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-spiffe',
    client_assertion: await w3Svid(tb.url),
    resource: NOTES,
    scope: 'notes:read',
  });
  expect(first.status).toBe(200);
  expect(decodeJwt(((await first.json()) as { access_token: string }).access_token).errand_aal).toBe('NHI-AAL3');
  // An MCP client several people use, which authenticates with its own key.
  const shared = await addAgent(api, {
    kind: 'mcp_client',
    name: 'Shared desktop client',
    redirect_uris: [LOOPBACK_REDIRECT],
    grant_types: ['authorization_code', 'refresh_token', GRANT_EXCHANGE],
  });
  // One anyone can claim to be: it authenticates by its client_id alone.
  const publicClient = await addPublicClient(api, 'Public desktop client', [LOOPBACK_REDIRECT]);
  const alice = await createUser(tb, 'user', `alice${newId('u').slice(-6)}`);
  const mallory = await createUser(tb, 'user', `mallory${newId('u').slice(-6)}`);
  const as = await discover(tb);
  return {
    api,
    as,
    a,
    b,
    w,
    w3,
    shared,
    publicClient,
    alice,
    mallory,
    /** W3's workload token (a JWT-SVID from the attested enclave) for `audience`. */
    w3Svid,
  };
}

/**
 * An access token for `user` through the authorization code flow with PKCE (RFC 7636) and a
 * resource indicator (RFC 8707), signed in and consented through the broker's own pages.
 */
export async function signInToken(
  tb: TestBroker,
  as: oauth.AuthorizationServer,
  [client, auth]: [oauth.Client, oauth.ClientAuth],
  user: { username: string; password: string },
  opts: { resource: string; scope: string },
): Promise<string> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: LOOPBACK_REDIRECT,
    scope: opts.scope,
    resource: opts.resource,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();
  const { callback } = await approveInBrowser(tb, user, url);
  const params = oauth.validateAuthResponse(as, client, callback, state);
  const res = await oauth.authorizationCodeGrantRequest(as, client, auth, params, LOOPBACK_REDIRECT, verifier, {
    ...insecure,
    additionalParameters: { resource: opts.resource },
  });
  return (await oauth.processAuthorizationCodeResponse(as, client, res)).access_token;
}

/** Client authentication of the shared confidential MCP client (private_key_jwt). */
export function sharedClientAuth(tb: TestBroker, shared: TestAgent): [oauth.Client, oauth.ClientAuth] {
  return agentClient(tb, shared);
}

/** Client "authentication" of a public client: its client_id alone. */
export function publicClientAuth(client: oauth.Client): [oauth.Client, oauth.ClientAuth] {
  return [client, oauth.None()];
}

/**
 * Stores an active delegation directly, as data written before today's rules (or by another path)
 * would be: the rules must hold for whatever the database contains.
 */
export async function storeDelegation(
  tb: TestBroker,
  d: { agentId: string; userId: string; grants: Record<string, string[]>; maxDepth?: number },
): Promise<string> {
  const now = tb.clock.now();
  const id = newId('dlg');
  const maxDepth = d.maxDepth ?? 1;
  await tb.broker.deps.db.write((tx) =>
    tb.broker.deps.delegations.insert(
      {
        id,
        userId: d.userId,
        agentId: d.agentId,
        status: 'active',
        requested: {
          grants: d.grants,
          authorizationDetails: null,
          maxTokenTtl: 300,
          maxDepth,
          subAgents: null,
          expiresIn: 3600,
        },
        grants: d.grants,
        authorizationDetails: null,
        maxTokenTtl: 300,
        maxDepth,
        subAgents: null,
        expiresAt: now + 3600,
        createdAt: now,
        decidedAt: now,
        revokedAt: null,
        source: 'ciba',
        bindingMessage: null,
        credentialJti: null,
      },
      tx,
    ),
  );
  return id;
}

/** Stores a live task directly (see storeDelegation); below `parent` when given. */
export async function storeTask(
  tb: TestBroker,
  t: { delegationId: string; userId: string; agentId: string; actorChain: string[]; parent?: Task },
): Promise<string> {
  const now = tb.clock.now();
  const id = newId('tsk');
  await tb.broker.deps.db.write((tx) =>
    tb.broker.deps.tasks.insert(
      {
        id,
        delegationId: t.delegationId,
        userId: t.userId,
        agentId: t.agentId,
        actorChain: t.actorChain,
        parentTaskId: t.parent?.id ?? null,
        rootTaskId: t.parent?.rootTaskId ?? id,
        depth: t.parent ? t.parent.depth + 1 : 0,
        state: 'working',
        createdAt: now,
        deadline: now + 3600,
        endedAt: null,
        endReason: null,
        externalIds: {},
      },
      tx,
    ),
  );
  return id;
}
