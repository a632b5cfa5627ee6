import { createServer, type Server } from 'node:http';
import { type CryptoKey, exportJWK, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  addResource,
  adminApi,
  discover,
  insecure,
  startBroker,
  type TestBroker,
  verifyAccessToken,
} from './fixtures.js';

/**
 * Agents that register themselves (RFC 7591 with an initial access token, §3) and wait for an
 * administrator's approval, through the real HTTP surface. oauth4webapi registers the agent
 * (`dynamicClientRegistrationRequest` with its `initialAccessToken` option) and then authenticates
 * it with private_key_jwt for client_credentials, unmodified.
 */

const RESOURCE = 'https://notes.example.test/mcp';
const CLIENT_CREDENTIALS = 'client_credentials';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const CIBA = 'urn:openid:params:grant-type:ciba';

type Api = Awaited<ReturnType<typeof adminApi>>;

interface AgentKey {
  privateKey: CryptoKey;
  jwk: Record<string, unknown>;
  kid: string;
}

async function agentKey(kid = `k-${Math.random().toString(36).slice(2, 8)}`): Promise<AgentKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, kid, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

/** Issues an initial access token through the admin API; returns the value (shown once) and its view. */
async function issueToken(api: Api, body: Record<string, unknown> = {}) {
  const res = await api.call('POST', '/api/admin/initial-access-tokens', { name: 'fleet onboarding', ...body });
  expect(res.status, await res.clone().text()).toBe(201);
  expect(res.headers.get('cache-control')).toBe('no-store');
  const issued = (await res.json()) as { id: string; initial_access_token: string; state: string; uses: number };
  return issued;
}

function agentMetadata(key: AgentKey, extra: Record<string, unknown> = {}) {
  return {
    client_name: 'Fleet agent',
    token_endpoint_auth_method: 'private_key_jwt',
    grant_types: [CLIENT_CREDENTIALS],
    jwks: { keys: [key.jwk] },
    scope: 'notes:read',
    ...extra,
  };
}

async function register(as: oauth.AuthorizationServer, metadata: Record<string, unknown>, token?: string) {
  return oauth.dynamicClientRegistrationRequest(as, metadata as Partial<oauth.OmitSymbolProperties<oauth.Client>>, {
    ...insecure,
    ...(token !== undefined ? { initialAccessToken: token } : {}),
  });
}

/** client_credentials as the agent, with its own key (RFC 7523), as oauth4webapi sends it. */
async function clientCredentials(as: oauth.AuthorizationServer, clientId: string, key: AgentKey) {
  const res = await oauth.clientCredentialsGrantRequest(
    as,
    { client_id: clientId },
    oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }),
    new URLSearchParams({ resource: RESOURCE, scope: 'notes:read' }),
    insecure,
  );
  return oauth.processClientCredentialsResponse(as, { client_id: clientId }, res);
}

async function clientCount(api: Api): Promise<number> {
  return ((await (await api.call('GET', '/api/admin/clients')).json()) as { clients: unknown[] }).clients.length;
}

async function auditTypes(api: Api, query: string): Promise<string[]> {
  const res = await api.call('GET', `/api/admin/audit?${query}`);
  return ((await res.json()) as { events: { type: string }[] }).events.map((e) => e.type);
}

async function tokenView(api: Api, id: string) {
  return (await (await api.call('GET', `/api/admin/initial-access-tokens/${id}`)).json()) as {
    state: string;
    uses: number;
  };
}

/** A refused registration: oauth4webapi's error, and nothing stored. */
async function refusedRegistration(api: Api, send: () => Promise<Response>) {
  const before = await clientCount(api);
  const res = await send();
  const err = await oauth.processDynamicClientRegistrationResponse(res).then(
    () => null,
    (e: unknown) => e,
  );
  expect(await clientCount(api)).toBe(before);
  return { res, err };
}

/** RFC 6750 §3.1 through oauth4webapi: a 401 Bearer challenge with error="invalid_token". */
function expectInvalidTokenChallenge(err: unknown) {
  expect(err).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
  const challenge = err as oauth.WWWAuthenticateChallengeError;
  expect(challenge.status).toBe(401);
  const [first] = challenge.cause;
  expect(first?.scheme).toBe('bearer');
  expect(first?.parameters.error).toBe('invalid_token');
}

/** RFC 7591 §3.2.2 through oauth4webapi: 400 with the error code in the body. */
function expectMetadataError(err: unknown, code = 'invalid_client_metadata') {
  expect(err).toBeInstanceOf(oauth.ResponseBodyError);
  const body = err as oauth.ResponseBodyError;
  expect(body.status).toBe(400);
  expect(body.error).toBe(code);
  return body.error_description ?? '';
}

describe('an agent registers itself with an initial access token', () => {
  let tb: TestBroker;
  let as: oauth.AuthorizationServer;
  let api: Api;

  beforeAll(async () => {
    tb = await startBroker({ ERRAND_DCR_RATE_LIMIT: '1000' });
    api = await adminApi(tb);
    await addResource(api, RESOURCE, ['notes:read', 'notes:write', 'notes:admin']);
    as = await discover(tb);
  });
  afterAll(() => tb.close());

  test('happy path: registered pending (201, RFC 7591 §3.2.1), refused until approved, then client_credentials works', async () => {
    const issued = await issueToken(api, { scope: ['notes:read', 'notes:write'] });
    expect(issued.initial_access_token).toMatch(/^eiat_/);
    expect(issued.state).toBe('active');
    const key = await agentKey();

    const res = await register(as, agentMetadata(key), issued.initial_access_token);
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const registered = await oauth.processDynamicClientRegistrationResponse(res);
    expect(registered.client_id).toMatch(/^cli_/);
    expect(typeof registered.client_id_issued_at).toBe('number');
    expect(registered).toMatchObject({
      client_name: 'Fleet agent',
      token_endpoint_auth_method: 'private_key_jwt',
      grant_types: [CLIENT_CREDENTIALS],
      jwks: { keys: [key.jwk] },
      scope: 'notes:read',
      status: 'pending',
    });
    expect(registered).not.toHaveProperty('client_secret');
    expect(registered).not.toHaveProperty('redirect_uris');
    expect(registered).not.toHaveProperty('registration_access_token');

    // A pending agent cannot obtain tokens.
    const pending = await clientCredentials(as, registered.client_id, key).then(
      () => null,
      (e: unknown) => e,
    );
    expect(pending).toBeInstanceOf(oauth.ResponseBodyError);
    expect((pending as oauth.ResponseBodyError).status).toBe(401);
    expect((pending as oauth.ResponseBodyError).error).toBe('invalid_client');
    expect((pending as oauth.ResponseBodyError).error_description).toBe('the client is awaiting approval');

    // The administrator sees it pending, as an agent owned by whoever issued the token.
    const view = (await (await api.call('GET', `/api/admin/clients/${registered.client_id}`)).json()) as Record<
      string,
      unknown
    >;
    expect(view).toMatchObject({ kind: 'agent', source: 'dcr', status: 'pending', owner_id: api.admin.id });
    expect(view.expires_at).toBeNull();

    const approved = await api.call('POST', `/api/admin/clients/${registered.client_id}/approve`);
    expect(approved.status).toBe(200);
    expect(await approved.json()).toMatchObject({ status: 'active' });
    // Deciding twice is a conflict.
    expect((await api.call('POST', `/api/admin/clients/${registered.client_id}/approve`)).status).toBe(409);

    const tokens = await clientCredentials(as, registered.client_id, key);
    expect(tokens.scope).toBe('notes:read');
    const { payload } = await verifyAccessToken(as, tokens.access_token, RESOURCE);
    expect(payload).toMatchObject({ sub: registered.client_id, client_id: registered.client_id });

    expect(await tokenView(api, issued.id)).toMatchObject({ uses: 1, state: 'active' });
    expect(await auditTypes(api, `client_id=${registered.client_id}`)).toEqual(
      expect.arrayContaining(['initial_access_token.used', 'client.registered', 'client.approved', 'token.issued']),
    );
    expect(await auditTypes(api, 'type=initial_access_token.issued')).not.toHaveLength(0);
  });

  test('grant types default to the token’s; a jwks_uri agent with token exchange and CIBA registers too', async () => {
    const issued = await issueToken(api);
    const key = await agentKey();
    const registered = await oauth.processDynamicClientRegistrationResponse(
      await register(as, { client_name: 'No grants named', jwks: { keys: [key.jwk] } }, issued.initial_access_token),
    );
    expect(registered.grant_types).toEqual([CLIENT_CREDENTIALS, TOKEN_EXCHANGE, CIBA]);
    expect(registered.token_endpoint_auth_method).toBe('private_key_jwt');
    expect(registered.response_types).toEqual([]);
  });

  test('the auto-approve rule: the agent is active at once and the approval is audited as the rule’s', async () => {
    const issued = await issueToken(api, { auto_approve: true, max_uses: 5 });
    const key = await agentKey();
    const registered = await oauth.processDynamicClientRegistrationResponse(
      await register(as, agentMetadata(key), issued.initial_access_token),
    );
    expect(registered.status).toBe('active');
    // Active, but quarantined (README "Quarantine of new registrations and findings") until an administrator admits it.
    const quarantined = await clientCredentials(as, registered.client_id, key).then(
      () => null,
      (e: unknown) => e,
    );
    expect((quarantined as oauth.ResponseBodyError).error).toBe('invalid_target');
    expect((await api.call('POST', `/api/admin/clients/${registered.client_id}/admit`)).status).toBe(200);
    const tokens = await clientCredentials(as, registered.client_id, key);
    expect(tokens.access_token).toBeTruthy();
    const res = await api.call('GET', `/api/admin/audit?client_id=${registered.client_id}&type=client.approved`);
    const [event] = ((await res.json()) as { events: { reason: string; user_id?: string }[] }).events;
    expect(event).toMatchObject({ reason: 'auto_approve' });
  });

  test('a rejected agent stays refused (disabled), and the rejection is audited', async () => {
    const issued = await issueToken(api);
    const key = await agentKey();
    const registered = await oauth.processDynamicClientRegistrationResponse(
      await register(as, agentMetadata(key), issued.initial_access_token),
    );
    // A pending agent is decided by approve/reject, not by PATCHing its status.
    const patched = await api.call('PATCH', `/api/admin/clients/${registered.client_id}`, { status: 'active' });
    expect(patched.status).toBe(409);
    const rejected = await api.call('POST', `/api/admin/clients/${registered.client_id}/reject`);
    expect(await rejected.json()).toMatchObject({ status: 'disabled' });
    const err = await clientCredentials(as, registered.client_id, key).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as oauth.ResponseBodyError).error).toBe('invalid_client');
    expect(await auditTypes(api, `client_id=${registered.client_id}`)).toContain('client.rejected');
  });

  test('a wrong, expired, revoked or used-up initial access token is 401 invalid_token, and nothing is stored', async () => {
    const key = await agentKey();
    const wrong = await refusedRegistration(api, () => register(as, agentMetadata(key), 'eiat_not-a-real-token'));
    expectInvalidTokenChallenge(wrong.err);
    expect(
      await wrong.res
        .clone()
        .json()
        .catch(() => ({})),
    ).not.toHaveProperty('client_id');

    const expiring = await issueToken(api, { expires_in: 60 });
    tb.clock.advance(61);
    try {
      const expired = await refusedRegistration(api, () =>
        register(as, agentMetadata(key), expiring.initial_access_token),
      );
      expectInvalidTokenChallenge(expired.err);
      expect(await tokenView(api, expiring.id)).toMatchObject({ state: 'expired', uses: 0 });
    } finally {
      tb.clock.advance(-61);
    }

    const revokedToken = await issueToken(api);
    const revoked = await api.call('POST', `/api/admin/initial-access-tokens/${revokedToken.id}/revoke`);
    expect(await revoked.json()).toMatchObject({ state: 'revoked' });
    expectInvalidTokenChallenge(
      (await refusedRegistration(api, () => register(as, agentMetadata(key), revokedToken.initial_access_token))).err,
    );
    expect(await auditTypes(api, 'type=initial_access_token.revoked')).toHaveLength(1);

    const once = await issueToken(api, { max_uses: 1 });
    expect((await register(as, agentMetadata(key), once.initial_access_token)).status).toBe(201);
    expectInvalidTokenChallenge(
      (await refusedRegistration(api, () => register(as, agentMetadata(key), once.initial_access_token))).err,
    );
    expect(await tokenView(api, once.id)).toMatchObject({ state: 'used_up', uses: 1 });
  });

  test('max_uses holds under concurrent registrations: of 5 at once with max_uses 2, exactly 2 succeed', async () => {
    const issued = await issueToken(api, { max_uses: 2 });
    const key = await agentKey();
    const statuses = await Promise.all(
      Array.from({ length: 5 }, () =>
        register(as, agentMetadata(key), issued.initial_access_token).then((r) => r.status),
      ),
    );
    expect(statuses.filter((s) => s === 201)).toHaveLength(2);
    expect(statuses.filter((s) => s === 401)).toHaveLength(3);
    expect(await tokenView(api, issued.id)).toMatchObject({ uses: 2, state: 'used_up' });
  });

  test('metadata outside the token’s rules is invalid_client_metadata, and the use is not counted', async () => {
    const issued = await issueToken(api, { scope: ['notes:read'], grant_types: [CLIENT_CREDENTIALS] });
    const key = await agentKey();
    const cases: [Record<string, unknown>, string][] = [
      [agentMetadata(key, { scope: 'notes:read notes:admin' }), 'notes:admin'],
      [agentMetadata(key, { grant_types: [CLIENT_CREDENTIALS, CIBA] }), CIBA],
      [
        agentMetadata(key, { grant_types: ['authorization_code'], redirect_uris: ['https://a.example.test/cb'] }),
        'authorization_code',
      ],
      [agentMetadata(key, { redirect_uris: ['https://a.example.test/cb'] }), 'redirect_uris'],
    ];
    for (const [metadata, named] of cases) {
      const { err } = await refusedRegistration(api, () => register(as, metadata, issued.initial_access_token));
      expect(expectMetadataError(err)).toContain(named);
    }
    expect(await tokenView(api, issued.id)).toMatchObject({ uses: 0 });
  });

  test('public (none) and shared-secret methods are refused for agents; keys are required', async () => {
    const issued = await issueToken(api);
    const key = await agentKey();
    for (const method of ['none', 'client_secret_basic', 'client_secret_post']) {
      const { err } = await refusedRegistration(api, () =>
        register(as, agentMetadata(key, { token_endpoint_auth_method: method }), issued.initial_access_token),
      );
      expect(expectMetadataError(err)).toContain(method);
    }
    const { err } = await refusedRegistration(api, () =>
      register(as, agentMetadata(key, { jwks: undefined }), issued.initial_access_token),
    );
    expect(expectMetadataError(err)).toContain('jwks');
  });

  test('a jwks_uri on a private, loopback or link-local address is refused (SSRF), before any key is used', async () => {
    const issued = await issueToken(api);
    const key = await agentKey();
    for (const uri of [
      'https://127.0.0.1/jwks.json',
      'https://10.0.0.7/jwks.json',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/jwks.json',
    ]) {
      const { err } = await refusedRegistration(api, () =>
        register(as, agentMetadata(key, { jwks: undefined, jwks_uri: uri }), issued.initial_access_token),
      );
      expect(expectMetadataError(err)).toMatch(/jwks_uri: .*forbidden address/);
    }
    expect(await tokenView(api, issued.id)).toMatchObject({ uses: 0 });
  });

  test('without an initial access token an agent registration stays refused: invalid_client_metadata naming the token', async () => {
    const key = await agentKey();
    const { err } = await refusedRegistration(api, () => register(as, agentMetadata(key)));
    expect(expectMetadataError(err)).toContain('initial access token');
  });

  test('the admin API never shows a token’s value again, and checks what it issues', async () => {
    const issued = await issueToken(api, { max_uses: 3 });
    const list = await (await api.call('GET', '/api/admin/initial-access-tokens')).text();
    expect(list).toContain(issued.id);
    expect(list).not.toContain(issued.initial_access_token);
    expect(list).not.toMatch(/token_hash|tokenHash/);
    for (const bad of [
      { expires_in: 10 },
      { max_uses: 0 },
      { grant_types: ['authorization_code'] },
      { scope: ['not a scope'] },
      { surprise: true },
    ]) {
      const res = await api.call('POST', '/api/admin/initial-access-tokens', { name: 'x', ...bad });
      expect(res.status, JSON.stringify(bad)).toBe(400);
    }
    expect((await api.call('POST', '/api/admin/initial-access-tokens/iat_nope/revoke')).status).toBe(404);
  });
});

describe('an agent with a jwks_uri', () => {
  let tb: TestBroker;
  let keyHost: Server;
  let keyHostUrl: string;
  let fetches = 0;
  const key = agentKey('rotating-1');

  beforeAll(async () => {
    const { jwk } = await key;
    keyHost = createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => keyHost.listen(0, '127.0.0.1', resolve));
    const address = keyHost.address();
    keyHostUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/jwks.json`;
    // Loopback key hosts are allowed only with the documented development setting.
    tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true' });
  });
  afterAll(async () => {
    await tb.close();
    await new Promise<void>((resolve) => keyHost.close(() => resolve()));
  });

  test('the jwks_uri is fetched at registration; after approval the agent authenticates with that key', async () => {
    const api = await adminApi(tb);
    await addResource(api, RESOURCE, ['notes:read']);
    const as = await discover(tb);
    const issued = await issueToken(api);
    const k = await key;
    const registered = await oauth.processDynamicClientRegistrationResponse(
      await register(as, agentMetadata(k, { jwks: undefined, jwks_uri: keyHostUrl }), issued.initial_access_token),
    );
    expect(registered.jwks_uri).toBe(keyHostUrl);
    expect(fetches).toBe(1);
    expect((await api.call('POST', `/api/admin/clients/${registered.client_id}/approve`)).status).toBe(200);
    expect((await clientCredentials(as, registered.client_id, k)).access_token).toBeTruthy();
  });
});
