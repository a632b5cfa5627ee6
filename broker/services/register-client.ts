import { formatScope } from '@errand/protocol';
import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { InitialAccessTokenStore } from '../../db/stores/initial-access-token-store.js';
import type { Client } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { ClientKeyError, type ClientKeys } from '../identity/client-keys.js';
import { validateAgentMetadata, validateSelfServiceMetadata } from '../identity/client-metadata.js';
import type { Logger } from '../log.js';
import { newId } from '../tokens/random.js';
import { type ClientAdmission, recordRuleAdmission, startingQuarantine } from './admission.js';
import { findUsableInitialAccessToken, invalidInitialAccessToken } from './initial-access-tokens.js';

export interface RegisterDeps {
  db: Db;
  clients: ClientStore;
  audit: AuditStore;
  clock: Clock;
  maxClients: number;
  unusedTtl: number;
  initialAccessTokens: InitialAccessTokenStore;
  /** Fetches an agent's `jwks_uri` under the SSRF rules when it registers. */
  keys: Pick<ClientKeys, 'load'>;
  /** Asked whether a new registration starts admitted (README "Quarantine of new registrations and findings"); default: never. */
  admission?: ClientAdmission;
}

/**
 * Dynamic Client Registration (RFC 7591). Open registration (no initial access token) is bounded:
 * a cap on registered clients, and registrations never used expire after `unusedTtl` so they cannot
 * fill the database. With an initial access token (RFC 7591 §3) an agent registers itself.
 */
export async function registerClient(
  deps: RegisterDeps,
  metadata: unknown,
  ctx: { requestId: string; log: Logger; initialAccessToken?: string | undefined },
) {
  if (ctx.initialAccessToken !== undefined)
    return registerAgent(deps, metadata, { ...ctx, token: ctx.initialAccessToken });
  const m = validateSelfServiceMetadata(metadata);
  const now = deps.clock.now();
  const client: Client = {
    id: newId('cli'),
    kind: 'mcp_client',
    name: m.name,
    ownerId: null,
    source: 'dcr',
    status: 'active',
    authMethod: m.authMethod,
    secretHash: null,
    jwks: m.jwks,
    jwksUri: m.jwksUri,
    redirectUris: m.redirectUris,
    grantTypes: m.grantTypes,
    scope: m.scope,
    resources: [],
    applicationType: m.applicationType,
    metadata: m.display,
    createdAt: now,
    lastUsedAt: null,
    expiresAt: now + deps.unusedTtl,
    cachedUntil: null,
  };
  // Quarantined until an administrator or the admission rule admits it.
  client.quarantinedAt = await startingQuarantine(deps.admission, client, now);
  await deps.clients.pruneUnused(now);
  await deps.db.write(async (tx) => {
    if ((await deps.clients.countActiveBySource('dcr', tx)) >= deps.maxClients) {
      throw new OAuthError('temporarily_unavailable', 'the registration capacity is reached; try again later', {
        headers: { 'Retry-After': '3600' },
      });
    }
    await deps.clients.insert(client, tx);
    await deps.audit.append(
      {
        type: 'client.registered',
        result: 'allowed',
        clientId: client.id,
        requestId: ctx.requestId,
        details: { source: 'dcr', name: client.name, quarantined: client.quarantinedAt !== null },
      },
      now,
      tx,
    );
    if (client.quarantinedAt === null) await recordRuleAdmission(deps.audit, client, ctx.requestId, now, tx);
  });
  return registrationResponse(client, now);
}

/**
 * An agent registering itself with an initial access token: it lands `pending` until an
 * administrator approves it, or `active` when the token carries the auto-approve rule. Its metadata
 * must stay within the token's rules; the token's use is counted in the same transaction.
 */
async function registerAgent(
  deps: RegisterDeps,
  metadata: unknown,
  ctx: { requestId: string; log: Logger; token: string },
) {
  const found = await findUsableInitialAccessToken(deps, ctx.token);
  if ('refused' in found) {
    ctx.log.info('initial_access_token.refused', { reason: found.refused });
    throw invalidInitialAccessToken();
  }
  const { token } = found;
  const m = validateAgentMetadata(metadata, token);
  if (m.jwksUri) {
    try {
      await deps.keys.load(m.jwksUri, 'the agent');
    } catch (err) {
      if (err instanceof ClientKeyError) throw new OAuthError('invalid_client_metadata', `jwks_uri: ${err.message}`);
      throw err;
    }
  }
  const now = deps.clock.now();
  const client: Client = {
    id: newId('cli'),
    kind: 'agent',
    name: m.name,
    // The administrator who issued the token answers for the agents it registers.
    ownerId: token.createdBy,
    source: 'dcr',
    status: token.autoApprove ? 'active' : 'pending',
    authMethod: m.authMethod,
    secretHash: null,
    jwks: m.jwks,
    jwksUri: m.jwksUri,
    redirectUris: [],
    grantTypes: m.grantTypes,
    scope: m.scope,
    resources: [],
    applicationType: null,
    metadata: m.display,
    createdAt: now,
    lastUsedAt: null,
    // Bounded by the token's uses and reviewed by an administrator: not pruned as an unused registration.
    expiresAt: null,
    cachedUntil: null,
  };
  // Quarantined like any self-registration: approving a pending agent admits it too (client-approval.ts);
  // an auto-approved one waits for an administrator or the admission rule.
  client.quarantinedAt = await startingQuarantine(deps.admission, client, now);
  await deps.db.write(async (tx) => {
    // Counted atomically: a token revoked, expired or used up since the check above is refused here.
    if (!(await deps.initialAccessTokens.consume(token.id, now, tx))) throw invalidInitialAccessToken();
    await deps.clients.insert(client, tx);
    const details = { initialAccessTokenId: token.id };
    await deps.audit.append(
      { type: 'initial_access_token.used', result: 'allowed', clientId: client.id, requestId: ctx.requestId, details },
      now,
      tx,
    );
    await deps.audit.append(
      {
        type: 'client.registered',
        result: 'allowed',
        userId: token.createdBy,
        clientId: client.id,
        requestId: ctx.requestId,
        details: {
          ...details,
          source: 'dcr',
          kind: 'agent',
          name: client.name,
          status: client.status,
          quarantined: client.quarantinedAt !== null,
        },
      },
      now,
      tx,
    );
    if (client.quarantinedAt === null) await recordRuleAdmission(deps.audit, client, ctx.requestId, now, tx);
    if (token.autoApprove) {
      await deps.audit.append(
        {
          type: 'client.approved',
          result: 'allowed',
          userId: token.createdBy,
          clientId: client.id,
          reason: 'auto_approve',
          requestId: ctx.requestId,
          details,
        },
        now,
        tx,
      );
    }
  });
  return { ...registrationResponse(client, now), status: client.status };
}

/** RFC 7591 §3.2.1: the client id plus the registered metadata; no secret is ever issued here. */
function registrationResponse(client: Client, now: number) {
  const isAgent = client.kind === 'agent';
  return {
    client_id: client.id,
    client_id_issued_at: now,
    client_name: client.name,
    ...(isAgent ? {} : { redirect_uris: client.redirectUris }),
    grant_types: client.grantTypes,
    response_types: isAgent ? [] : ['code'],
    token_endpoint_auth_method: client.authMethod,
    ...(client.scope ? { scope: formatScope(client.scope) } : {}),
    ...(client.jwksUri ? { jwks_uri: client.jwksUri } : {}),
    ...(client.jwks ? { jwks: client.jwks } : {}),
    ...(client.applicationType ? { application_type: client.applicationType } : {}),
    ...client.metadata,
  };
}
