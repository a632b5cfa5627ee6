import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { Client } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { formatScope } from '../core/scopes.js';
import { validateSelfServiceMetadata } from '../identity/client-metadata.js';
import { newId } from '../tokens/random.js';

export interface RegisterDeps {
  db: Db;
  clients: ClientStore;
  audit: AuditStore;
  clock: Clock;
  maxClients: number;
  unusedTtl: number;
}

/**
 * Dynamic Client Registration (RFC 7591). Open registration is bounded: a cap on registered
 * clients, and registrations never used expire after `unusedTtl` so they cannot fill the database.
 */
export async function registerClient(deps: RegisterDeps, metadata: unknown, requestId: string) {
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
        requestId,
        details: { source: 'dcr', name: client.name },
      },
      now,
      tx,
    );
  });
  // RFC 7591 §3.2.1: the client id plus the registered metadata; no secret is ever issued here.
  return {
    client_id: client.id,
    client_id_issued_at: now,
    client_name: client.name,
    redirect_uris: client.redirectUris,
    grant_types: client.grantTypes,
    response_types: ['code'],
    token_endpoint_auth_method: client.authMethod,
    ...(client.scope ? { scope: formatScope(client.scope) } : {}),
    ...(client.jwksUri ? { jwks_uri: client.jwksUri } : {}),
    ...(client.jwks ? { jwks: client.jwks } : {}),
    ...(client.applicationType ? { application_type: client.applicationType } : {}),
    ...client.metadata,
  };
}
