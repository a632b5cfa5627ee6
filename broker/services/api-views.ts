import { ASSURANCE_LEVELS } from '@errand/protocol';
import { z } from 'zod';
import type { AuditEvent } from '../../db/stores/audit-store.js';
import type { Resource } from '../../db/stores/client-store.js';
import type { User } from '../../db/stores/user-store.js';
import type { KeyInfo } from '../tokens/key-ring.js';

/**
 * What the admin and user APIs answer, as zod schemas (the OpenAPI document is generated from them,
 * README "Admin API") and the views that turn domain objects into those snake_case bodies. The
 * views of clients, tasks, delegations, peers, issuers and initial access tokens live beside their
 * services; their schemas are here, and a test checks real responses against them.
 */

const Time = z.number().int().describe('epoch seconds');
const Id = z.string();
const Assurance = z.enum(ASSURANCE_LEVELS);
const Jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())) });

export const ExchangeRuleViewSchema = z
  .object({ resource: z.string(), scopes: z.array(z.string()), max_token_ttl: z.number().int() })
  .strict();

export const ClientViewSchema = z
  .object({
    client_id: Id,
    kind: z.enum(['agent', 'mcp_client', 'resource_server', 'admin_service']),
    name: z.string(),
    owner_id: Id.nullable(),
    source: z.enum(['admin', 'dcr', 'cimd']),
    status: z.enum(['active', 'pending', 'disabled', 'expired']),
    token_endpoint_auth_method: z.string(),
    credential_kind: z.enum(['private_key_jwt', 'workload_federation', 'none', 'client_secret']),
    static_secret: z.boolean(),
    redirect_uris: z.array(z.string()),
    grant_types: z.array(z.string()),
    scope: z.string().nullable().describe('space-separated; null: any scope of a known resource, with consent'),
    resources: z.array(z.string()),
    jwks_uri: z.string().nullable(),
    jwks: Jwks.nullable(),
    assurance_level: Assurance.nullable(),
    trusted_issuer_id: Id.nullable(),
    dpop_bound_access_tokens: z.boolean(),
    exchange_rules: z.array(ExchangeRuleViewSchema),
    created_at: Time,
    last_used_at: Time.nullable(),
    expires_at: Time.nullable(),
    // Agents only (README "Agent lifecycle: owners, certification and right-sizing").
    owner_status: z.enum(['active', 'missing', 'disabled', 'deleted']).optional(),
    owner_lapsed_at: Time.nullable().optional().describe('when maintenance first saw the owner lapse'),
    suspended_reason: z
      .enum(['owner_lapsed', 'certification_lapsed', 'certification_removed'])
      .nullable()
      .optional()
      .describe('why Errand suspended this disabled agent'),
    /** Set while a self-registered client waits to be admitted (README "Quarantine of new registrations and findings"). */
    quarantined_at: Time.nullable(),
  })
  .strict();

/** A client as created: a static secret, when one was issued, is in this response only. */
export const CreatedClientSchema = ClientViewSchema.extend({
  client_secret: z.string().optional(),
  client_secret_expires_at: z.literal(0).optional(),
}).strict();

export const TaskViewSchema = z
  .object({
    task_id: Id,
    delegation_id: Id,
    user_id: Id,
    agent_id: Id,
    actor_chain: z.array(Id),
    parent_task_id: Id.nullable(),
    root_task_id: Id,
    depth: z.number().int(),
    state: z.string(),
    created_at: Time,
    deadline: Time,
    ended_at: Time.nullable(),
    end_reason: z.string().nullable(),
    external_ids: z.record(z.string(), z.string()),
  })
  .strict();

export const TaskTreeViewSchema = TaskViewSchema.extend({ tree: z.array(TaskViewSchema) }).strict();

/** RFC 9396 authorization details, as the client sent them. */
const AuthorizationDetails = z.array(z.record(z.string(), z.unknown())).nullable();

export const DelegationViewSchema = z
  .object({
    delegation_id: Id,
    user_id: Id,
    agent_id: Id,
    status: z.enum(['pending', 'active', 'denied', 'revoked']),
    source: z.enum(['consent', 'ciba', 'exchange_rule']),
    binding_message: z.string().nullable(),
    requested: z
      .object({
        scopes: z.record(z.string(), z.array(z.string())).describe('resource URL → scopes'),
        authorization_details: AuthorizationDetails,
        max_depth: z.number().int(),
        max_token_ttl: z.number().int(),
        expires_in: z.number().int(),
        sub_agents: z.array(Id).nullable(),
        min_assurance: Assurance.nullable(),
      })
      .strict(),
    scopes: z.record(z.string(), z.array(z.string())).describe('resource URL → scopes'),
    authorization_details: AuthorizationDetails,
    max_depth: z.number().int(),
    max_token_ttl: z.number().int(),
    sub_agents: z.array(Id).nullable(),
    min_assurance: Assurance.nullable(),
    expires_at: Time,
    created_at: Time,
    decided_at: Time.nullable(),
    revoked_at: Time.nullable(),
  })
  .strict();

export const PeerViewSchema = z
  .object({
    peer_id: Id,
    card_url: z.string(),
    name: z.string(),
    endpoint: z.string(),
    signature_verified: z.boolean(),
    signature_kid: z.string().nullable(),
    risk: z.literal('unsigned_card').nullable(),
    skills: z.array(
      z
        .object({
          id: z.string(),
          name: z.string(),
          description: z.string(),
          tags: z.array(z.string()),
          scope: z.string().nullable(),
        })
        .strict(),
    ),
    security_schemes: z.record(z.string(), z.unknown()).describe("the Agent Card's schemes, as published"),
    security_requirements: z.array(z.record(z.string(), z.array(z.string()))),
    scopes: z.array(z.string()),
    created_at: Time,
    updated_at: Time,
  })
  .strict();

export const TrustedIssuerViewSchema = z
  .object({
    id: Id,
    kind: z.enum(['oidc', 'spiffe', 'kubernetes', 'ci']),
    name: z.string(),
    issuer: z.string(),
    jwks_uri: z.string().nullable(),
    jwks: Jwks.nullable(),
    audience: z.string(),
    max_lifetime: z.number().int(),
    rules: z.array(
      z
        .object({
          match: z.record(z.string(), z.array(z.string())).describe('claim path → patterns'),
          agent_id: Id,
          assurance: Assurance,
          attestation: z.object({ claim: z.string(), value: z.string() }).strict().optional(),
        })
        .strict(),
    ),
    status: z.enum(['active', 'disabled']),
    created_at: Time,
  })
  .strict();

export const InitialAccessTokenViewSchema = z
  .object({
    id: Id,
    name: z.string(),
    state: z.string(),
    created_by: Id,
    created_at: Time,
    expires_at: Time.nullable(),
    max_uses: z.number().int().nullable(),
    uses: z.number().int(),
    auto_approve: z.boolean(),
    scope: z.array(z.string()).nullable(),
    grant_types: z.array(z.string()).nullable(),
    revoked_at: Time.nullable(),
  })
  .strict();

/** An initial access token as issued: its value is in this response only. */
export const IssuedInitialAccessTokenSchema = InitialAccessTokenViewSchema.extend({
  initial_access_token: z.string(),
}).strict();

export const UserViewSchema = z
  .object({
    id: Id,
    username: z.string(),
    display_name: z.string().nullable(),
    role: z.enum(['user', 'admin']),
    /** `disabled` people cannot sign in (README "People"). */
    status: z.enum(['active', 'disabled']),
    created_at: Time,
    disabled_at: Time.nullable(),
    locked_until: Time.nullable(),
  })
  .strict();

/** A person's account without its password hash or sign-in counters. */
export function userView(u: User): z.infer<typeof UserViewSchema> {
  return {
    id: u.id,
    username: u.username,
    display_name: u.displayName,
    role: u.role,
    status: u.disabledAt === null ? 'active' : 'disabled',
    created_at: u.createdAt,
    disabled_at: u.disabledAt,
    locked_until: u.lockedUntil,
  };
}

export const ResourceViewSchema = z
  .object({
    id: Id,
    url: z.string(),
    name: z.string(),
    scopes: z.array(z.string()),
    /** What each scope allows, in words, for the approval page (scopes without one are absent). */
    scope_descriptions: z.record(z.string(), z.string()),
    min_assurance: Assurance.nullable(),
    /** Quarantined clients may still get tokens for it. */
    public: z.boolean(),
    created_at: Time,
  })
  .strict();

export function resourceView(r: Resource): z.infer<typeof ResourceViewSchema> {
  return {
    id: r.id,
    url: r.url,
    name: r.name,
    scopes: r.scopes,
    scope_descriptions: r.scopeDescriptions ?? {},
    min_assurance: r.minAssurance ?? null,
    public: r.public ?? false,
    created_at: r.createdAt,
  };
}

export const KeyViewSchema = z
  .object({
    kid: z.string(),
    alg: z.string(),
    created_at: Time,
    activates_at: Time,
    state: z.enum(['next', 'current', 'previous']),
  })
  .strict();

export function keyView(k: KeyInfo): z.infer<typeof KeyViewSchema> {
  return { kid: k.kid, alg: k.alg, created_at: k.createdAt, activates_at: k.activatesAt, state: k.state };
}

export const KeyRotationViewSchema = z.object({ kid: z.string(), activates_at: Time }).strict();

export function keyRotationView(r: { kid: string; activatesAt: number }): z.infer<typeof KeyRotationViewSchema> {
  return { kid: r.kid, activates_at: r.activatesAt };
}

/**
 * An audit event: snake_case envelope, `details` as recorded. `user_id` is who acted or on whose
 * behalf: a person's id, or for admin API calls made with a token, the admin service client's id.
 */
export const AuditEventViewSchema = z
  .object({
    id: Id,
    at: Time,
    type: z.string(),
    result: z.enum(['allowed', 'denied']),
    user_id: Id.nullable(),
    client_id: Id.nullable(),
    actor_chain: z.array(Id),
    task_id: Id.nullable(),
    delegation_id: Id.nullable(),
    audience: z.string().nullable(),
    scope: z.string().nullable(),
    reason: z.string().nullable(),
    request_id: z.string().nullable(),
    details: z.record(z.string(), z.unknown()).describe('event-specific, as recorded'),
  })
  .strict();

export function auditEventView(e: AuditEvent): z.infer<typeof AuditEventViewSchema> {
  return {
    id: e.id,
    at: e.at,
    type: e.type,
    result: e.result,
    user_id: e.userId,
    client_id: e.clientId,
    actor_chain: e.actorChain,
    task_id: e.taskId,
    delegation_id: e.delegationId,
    audience: e.audience,
    scope: e.scope,
    reason: e.reason,
    request_id: e.requestId,
    details: e.details,
  };
}

/** `POST /api/session`: the JSON sign-in for scripts (the route reads these two fields). */
export const SignInSchema = z.object({ username: z.string().min(1), password: z.string().min(1) });

export const SessionViewSchema = z
  .object({
    user_id: Id,
    role: z.enum(['user', 'admin']),
    csrf_token: z.string().describe('send it as X-CSRF-Token on POST, PUT, PATCH and DELETE'),
  })
  .strict();

/** The body of every refusal of the admin and user APIs (README "Admin API"). */
export const ApiErrorSchema = z.object({ error: z.string(), error_description: z.string() });
