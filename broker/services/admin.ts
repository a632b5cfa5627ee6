import {
  AUTH_METHOD,
  canonicalizeResource,
  ERRAND_SCOPE,
  formatScope,
  GRANT_TYPE,
  isScopeToken,
} from '@errand/protocol';
import { z } from 'zod';
import type { Db, Tx } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { GrantStore } from '../../db/stores/grant-store.js';
import type { UserStore } from '../../db/stores/user-store.js';
import { assuranceLevel, type Client, credentialKindOf, redirectUriProblem } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import { exchangeRulesOf } from '../core/exchange-rule.js';
import type { Clock } from '../core/ports.js';
import { hashPassword } from '../identity/passwords.js';
import { hashSecret, newId, newSecret } from '../tokens/random.js';
import { userView } from './api-views.js';
import type { TaskService } from './tasks.js';

export { CreateResourceSchema, createResource } from './resources.js';

export const ScopeList = z.array(z.string().max(128).refine(isScopeToken, 'is not a valid scope token')).max(100);

const GrantTypeList = z
  .array(
    z.enum([
      GRANT_TYPE.authorizationCode,
      GRANT_TYPE.refreshToken,
      GRANT_TYPE.clientCredentials,
      GRANT_TYPE.tokenExchange,
      GRANT_TYPE.ciba,
    ]),
  )
  .min(1)
  .max(5);

export const CreateClientSchema = z
  .object({
    /** `admin_service`: automation calling the admin API with `errand:admin` tokens (README "Admin API"). */
    kind: z.enum(['agent', 'mcp_client', 'resource_server', 'admin_service']),
    name: z.string().min(1).max(200),
    owner_id: z.string().max(100).optional(),
    token_endpoint_auth_method: z
      .enum([
        AUTH_METHOD.privateKeyJwt,
        AUTH_METHOD.workloadFederation,
        AUTH_METHOD.none,
        AUTH_METHOD.clientSecretBasic,
        AUTH_METHOD.clientSecretPost,
      ])
      .default(AUTH_METHOD.privateKeyJwt),
    /** RFC 9449 §5.2: every token request of this client must carry a DPoP proof. */
    dpop_bound_access_tokens: z.boolean().optional(),
    /** Shared secrets are a risk Errand flags; an administrator must opt in per client. */
    allow_static_secret: z.boolean().default(false),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) }).optional(),
    jwks_uri: z.url().max(2048).optional(),
    redirect_uris: z.array(z.string().max(2048)).max(20).default([]),
    grant_types: GrantTypeList.optional(),
    scope: ScopeList.optional(),
    resources: z.array(z.string().max(2048)).max(50).default([]),
  })
  .strict();

export const UpdateClientSchema = z
  .object({
    status: z.enum(['active', 'disabled']).optional(),
    owner_id: z.string().max(100).nullable().optional(),
    name: z.string().min(1).max(200).optional(),
    /** null: no client-level limit (the resources' scopes bound it). */
    scope: ScopeList.nullable().optional(),
    grant_types: GrantTypeList.optional(),
    resources: z.array(z.string().max(2048)).max(50).optional(),
  })
  .strict();

export const CreateUserSchema = z
  .object({
    username: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, 'may use letters, digits and . _ @ - (up to 64)'),
    password: z.string().min(12, 'must have at least 12 characters').max(512),
    role: z.enum(['user', 'admin']).default('user'),
    display_name: z.string().max(200).optional(),
  })
  .strict();

export interface AdminDeps {
  db: Db;
  clients: ClientStore;
  users: UserStore;
  audit: AuditStore;
  grants: GrantStore;
  taskService: TaskService;
  clock: Clock;
}

/** The wire view of a client: never the secret hash. */
export function clientView(c: Client) {
  return {
    client_id: c.id,
    kind: c.kind,
    name: c.name,
    owner_id: c.ownerId,
    source: c.source,
    status: c.status,
    token_endpoint_auth_method: c.authMethod,
    credential_kind: credentialKindOf(c.authMethod),
    static_secret: credentialKindOf(c.authMethod) === 'client_secret',
    redirect_uris: c.redirectUris,
    grant_types: c.grantTypes,
    scope: c.scope ? formatScope(c.scope) : null,
    resources: c.resources,
    jwks_uri: c.jwksUri,
    jwks: c.jwks,
    assurance_level: assuranceLevel(c),
    trusted_issuer_id: c.trustedIssuerId ?? null,
    dpop_bound_access_tokens: c.metadata.dpop_bound_access_tokens === true,
    exchange_rules: exchangeRulesOf(c).map((r) => ({
      resource: r.resource,
      scopes: r.scopes,
      max_token_ttl: r.maxTokenTtl,
    })),
    created_at: c.createdAt,
    last_used_at: c.lastUsedAt,
    expires_at: c.expiresAt,
    quarantined_at: c.quarantinedAt ?? null,
  };
}

/** A client's key set holds public keys only (RFC 7517 §4: no private or symmetric members). */
export function checkPublicKeys(jwks: { keys: Record<string, unknown>[] } | undefined | null): void {
  for (const key of jwks?.keys ?? []) {
    if (['d', 'p', 'q', 'k'].some((m) => m in key)) {
      throw new OAuthError('invalid_client_metadata', 'jwks must hold public keys only');
    }
  }
}

/** Grant types a client with this authentication method and these redirect URIs may use. */
export function checkGrantTypes(method: Client['authMethod'], grantTypes: readonly string[], redirectUris: string[]) {
  const needsConfidential: readonly string[] = [
    GRANT_TYPE.clientCredentials,
    GRANT_TYPE.tokenExchange,
    GRANT_TYPE.ciba,
  ];
  if (method === AUTH_METHOD.none && grantTypes.some((g) => needsConfidential.includes(g))) {
    throw new OAuthError(
      'invalid_client_metadata',
      'client_credentials, token exchange and CIBA need a confidential client (not "none")',
    );
  }
  if (grantTypes.includes(GRANT_TYPE.authorizationCode) && redirectUris.length === 0) {
    throw new OAuthError('invalid_redirect_uri', 'authorization_code needs at least one redirect URI');
  }
}

/** Resource URLs in their canonical form (RFC 8707 §2), or the error naming the first bad one. */
export function canonicalResources(urls: string[]): string[] {
  return urls.map((r) => {
    const canonical = canonicalizeResource(r);
    if (!canonical) throw new OAuthError('invalid_client_metadata', `resources: "${r}" is not an absolute http(s) URL`);
    return canonical;
  });
}

/** Registers a client through the admin API. */
export async function createClient(
  deps: AdminDeps,
  input: z.output<typeof CreateClientSchema>,
  adminId: string,
  requestId: string,
  address?: string,
) {
  const method = input.token_endpoint_auth_method;
  const isSecret = method === AUTH_METHOD.clientSecretBasic || method === AUTH_METHOD.clientSecretPost;
  if (isSecret && !input.allow_static_secret) {
    throw new OAuthError(
      'invalid_client_metadata',
      `${method} issues a long-lived shared secret: set allow_static_secret to true to accept that risk, or use private_key_jwt`,
    );
  }
  if (method === AUTH_METHOD.privateKeyJwt && !input.jwks && !input.jwks_uri) {
    throw new OAuthError('invalid_client_metadata', 'private_key_jwt needs jwks or jwks_uri');
  }
  if (input.jwks && input.jwks_uri) throw new OAuthError('invalid_client_metadata', 'send jwks or jwks_uri, not both');
  if (method === AUTH_METHOD.workloadFederation) {
    // No secret and no key at Errand: a trusted issuer's rule vouches for the agent at each request.
    if (input.kind !== 'agent') {
      throw new OAuthError('invalid_client_metadata', 'workload_federation is for agents (kind "agent")');
    }
    if (input.jwks || input.jwks_uri) {
      throw new OAuthError('invalid_client_metadata', 'workload_federation takes no jwks or jwks_uri');
    }
  }
  if (input.kind === 'admin_service') checkAdminService(input);
  else if (input.scope?.includes(ERRAND_SCOPE.admin)) {
    throw new OAuthError('invalid_client_metadata', `scope "${ERRAND_SCOPE.admin}" is for kind "admin_service" only`);
  }
  checkPublicKeys(input.jwks);
  for (const uri of input.redirect_uris) {
    const problem = redirectUriProblem(uri);
    if (problem) throw new OAuthError('invalid_redirect_uri', problem);
  }
  const grantTypes =
    input.grant_types ??
    (input.kind === 'mcp_client'
      ? [GRANT_TYPE.authorizationCode, GRANT_TYPE.refreshToken]
      : input.kind === 'agent'
        ? [GRANT_TYPE.clientCredentials, GRANT_TYPE.tokenExchange, GRANT_TYPE.ciba]
        : [GRANT_TYPE.clientCredentials]);
  const scope = input.kind === 'admin_service' ? [ERRAND_SCOPE.admin] : (input.scope ?? null);
  checkGrantTypes(method, grantTypes, input.redirect_uris);
  const resources = canonicalResources(input.resources);
  if (input.owner_id && !(await deps.users.get(input.owner_id))) {
    throw new OAuthError('invalid_client_metadata', `owner_id: no user "${input.owner_id}"`);
  }
  const secret = isSecret ? newSecret('ecs_') : null;
  const now = deps.clock.now();
  const client: Client = {
    id: newId('cli'),
    kind: input.kind,
    name: input.name,
    // Owned by the person who created it; an admin service creating a client names no owner.
    ownerId: input.owner_id ?? ((await deps.users.get(adminId)) ? adminId : null),
    source: 'admin',
    status: 'active',
    authMethod: method,
    secretHash: secret ? hashSecret(secret) : null,
    jwks: input.jwks ?? null,
    jwksUri: input.jwks_uri ?? null,
    redirectUris: input.redirect_uris,
    grantTypes,
    scope,
    resources,
    applicationType: null,
    metadata: input.dpop_bound_access_tokens ? { dpop_bound_access_tokens: true } : {},
    createdAt: now,
    lastUsedAt: null,
    expiresAt: null,
    cachedUntil: null,
  };
  await deps.db.write(async (tx) => {
    await deps.clients.insert(client, tx);
    await deps.audit.append(
      {
        type: 'client.registered',
        result: 'allowed',
        userId: adminId,
        clientId: client.id,
        requestId,
        details: { source: 'admin', kind: client.kind, ...(address ? { address } : {}) },
      },
      now,
      tx,
    );
  });
  return { ...clientView(client), ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}) };
}

/**
 * An admin service (README "Admin API") is a confidential client that gets `errand:admin` tokens as
 * itself: client_credentials only, no redirect URIs, resources or other scopes.
 */
function checkAdminService(input: z.output<typeof CreateClientSchema>): void {
  const refuse = (why: string) => new OAuthError('invalid_client_metadata', `an admin_service client ${why}`);
  if (
    input.token_endpoint_auth_method === AUTH_METHOD.none ||
    input.token_endpoint_auth_method === AUTH_METHOD.workloadFederation
  )
    throw refuse('authenticates with private_key_jwt (or an opted-in client secret)');
  if (input.grant_types && (input.grant_types.length !== 1 || input.grant_types[0] !== GRANT_TYPE.clientCredentials))
    throw refuse('uses client_credentials only');
  if (input.scope && (input.scope.length !== 1 || input.scope[0] !== ERRAND_SCOPE.admin))
    throw refuse(`has scope "${ERRAND_SCOPE.admin}" only`);
  if (input.redirect_uris.length > 0 || input.resources.length > 0) throw refuse('takes no redirect_uris or resources');
}

/** Who made an administrative change, for its audit event: the administrator, the request and its source address. */
export interface AdminActor {
  adminId: string;
  requestId: string;
  /** Absent for changes made at the admin CLI (their audit events say `via: 'cli'`). */
  address?: string;
}

/** Creates a person's account; recorded as `user.created` with the administrator and source address. */
export async function createUser(deps: AdminDeps, input: z.output<typeof CreateUserSchema>, actor?: AdminActor) {
  if (await deps.users.findByUsername(input.username))
    throw new OAuthError('conflict', `user ${input.username} already exists`);
  const user = {
    id: newId('usr'),
    username: input.username,
    displayName: input.display_name ?? null,
    passwordHash: await hashPassword(input.password),
    role: input.role,
    createdAt: deps.clock.now(),
    disabledAt: null,
    failedSignins: 0,
    lockedUntil: null,
  };
  await deps.db.write(async (tx) => {
    await deps.users.insert(user, tx);
    await deps.audit.append(
      {
        type: 'user.created',
        result: 'allowed',
        userId: actor?.adminId ?? null,
        requestId: actor?.requestId ?? null,
        details: {
          created_user_id: user.id,
          username: user.username,
          role: user.role,
          ...(actor?.address ? { address: actor.address } : {}),
        },
      },
      user.createdAt,
      tx,
    );
  });
  return userView(user);
}

/**
 * Disables or re-enables a client. Disabling ends every task the agent acts in (with their subtrees)
 * and revokes every token it holds, in one transaction (README "Invariants", 4).
 */
export async function setClientStatus(
  deps: AdminDeps,
  id: string,
  status: 'active' | 'disabled',
  adminId: string,
  requestId: string,
  address?: string,
) {
  const client = await deps.clients.get(id);
  if (!client) throw new OAuthError('not_found', 'no such client');
  // A self-registered agent waiting for approval is decided by approve/reject (client-approval.ts).
  if (client.status === 'pending') {
    throw new OAuthError('conflict', 'the client is awaiting approval: approve or reject it instead');
  }
  if (client.status === status) return;
  const events = await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    if (status === 'active') await deps.clients.setStatus(id, status, tx);
    await deps.audit.append(
      {
        type: status === 'disabled' ? 'agent.disabled' : 'agent.enabled',
        result: 'allowed',
        userId: adminId,
        clientId: id,
        requestId,
        ...(address ? { details: { address } } : {}),
      },
      now,
      tx,
    );
    if (status !== 'disabled') return [];
    return disableClientInTx(deps, tx, id, now, requestId);
  });
  deps.taskService.flush(events);
}

/**
 * The one disable path (an administrator's, a lapsed owner's, a certification's): the client is
 * disabled, every task it acts in ends with its subtree (reason `agent_disabled`) and every token it
 * holds is revoked, inside the caller's transaction. The caller flushes the returned events after commit.
 */
export async function disableClientInTx(
  deps: Pick<AdminDeps, 'clients' | 'grants' | 'taskService'>,
  tx: Tx,
  id: string,
  now: number,
  requestId: string,
) {
  await deps.clients.setStatus(id, 'disabled', tx);
  const ended = await deps.taskService.endWhere(tx, { agentId: id }, 'agent_disabled', now, requestId);
  await deps.grants.revokeClientTokens(id, now, tx);
  return ended;
}
