import { buildChallenge, type ProofReplay, verifyDpopProof } from '@errand/guard';
import { CLAIM, DPOP, ERRAND_SCOPE, parseScope, toolsAllowedAt } from '@errand/protocol';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { GrantStore } from '../../db/stores/grant-store.js';
import type { User, UserStore } from '../../db/stores/user-store.js';
import { isAssuranceLevel } from '../core/assurance.js';
import type { AssuranceLevel, Client } from '../core/client.js';
import type { Clock } from '../core/ports.js';
import type { TokenMinter } from '../tokens/access-token.js';
import type { PolicyDoor } from './policy/entities.js';

/**
 * Who calls one of Errand's own protected endpoints (`/mcp`, `/a2a`, `/userinfo`, `/api/admin`), as its access token and the
 * request established it. Every operation behind those endpoints decides from this, never from
 * the wire.
 */
export interface Caller {
  /** The token's client: the agent (or MCP client) making the call. */
  client: Client;
  /** The person the token speaks for; null when the client acts as itself (client_credentials). */
  user: User | null;
  /** The token's `sub`: a user id, or the client itself. */
  subject: string;
  scopes: string[];
  /** Tools the token allows at this endpoint (RFC 9396 `mcp_tool`); null: scopes alone decide. */
  tools: string[] | null;
  /** The assurance level the client authenticated at when it obtained the token. */
  assurance: AssuranceLevel | null;
  /** The key this request proved possession of (RFC 9449 §7), when the token is DPoP-bound. */
  dpopJkt: string | null;
  jti: string;
  expiresAt: number;
  /** The door the call came through and the caller's address, set by the door (policies read them). */
  door?: PolicyDoor;
  address?: string;
}

/** A refused request: the status, the error for the body and the challenge, and whether DPoP was involved. */
export interface AccessFailure {
  status: 401 | 403;
  error: 'invalid_request' | 'invalid_token' | 'invalid_dpop_proof' | 'insufficient_scope';
  description: string;
  /** The challenge also names the DPoP scheme (RFC 9449 §7.1). */
  dpop: boolean;
  /** No credentials at all: the challenge carries no error code (RFC 6750 §3.1). */
  omitError?: boolean;
}

/** What the verifier looks at in an HTTP request. */
export interface AccessRequest {
  authorization: string | null | undefined;
  dpop: string | null | undefined;
  method: string;
  /**
   * The request's URL without query or fragment, as the client addressed it (the DPoP proof's `htu`,
   * RFC 9449 §4.3), for an endpoint with many paths (the admin API); the endpoint's URL otherwise.
   */
  url?: string;
}

/** One of Errand's own protected endpoints: the resource id tokens carry and the URL clients call. */
export interface ProtectedEndpoint {
  resource: string;
  url: string;
}

export interface ResourceAccessDeps {
  minter: TokenMinter;
  grants: Pick<GrantStore, 'getToken'>;
  clients: Pick<ClientStore, 'get'>;
  users: Pick<UserStore, 'get'>;
  clock: Clock;
  clockSkew: number;
  /** Where DPoP proof `jti`s are remembered, across every broker process (RFC 9449 §11.1). */
  replay: ProofReplay;
}

const INVALID = 'the access token is invalid, expired or revoked';
// RFC 6750 §2.1 and RFC 9449 §7.1: `Bearer <b64token>` or `DPoP <b64token>`.
const AUTHORIZATION = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i;
// How old a DPoP proof may be at a resource (RFC 9449 §11.1).
const PROOF_MAX_AGE = 300;

const fail = (
  status: 401 | 403,
  error: AccessFailure['error'],
  description: string,
  dpop = false,
): { ok: false; failure: AccessFailure } => ({ ok: false, failure: { status, error, description, dpop } });

/**
 * The resource-server checks for Errand's own endpoints, in one place: an Errand-signed, unexpired
 * access token whose row exists and is not revoked (as introspection decides), issued for exactly
 * this endpoint (no passthrough), held by an active client for an active user, and — when the
 * token is DPoP-bound — presented with the DPoP scheme and a fresh proof by its key (RFC 9449 §7),
 * exactly as the guard checks other resource servers' tokens.
 */
export class ResourceAccess {
  constructor(private readonly deps: ResourceAccessDeps) {}

  async verify(
    req: AccessRequest,
    endpoint: ProtectedEndpoint,
  ): Promise<{ ok: true; caller: Caller } | { ok: false; failure: AccessFailure }> {
    const { deps } = this;
    if (!req.authorization) {
      return {
        ok: false,
        failure: {
          status: 401,
          error: 'invalid_request',
          description: `an access token for ${endpoint.url} is required`,
          dpop: false,
          omitError: true,
        },
      };
    }
    const match = AUTHORIZATION.exec(req.authorization);
    if (!match)
      return fail(401, 'invalid_token', 'send the access token as Authorization: Bearer <token> or DPoP <token>');
    const usesDpop = match[1]!.toLowerCase() === 'dpop';
    const token = match[2]!;

    const verified = deps.minter.verify(token);
    if (!verified) return fail(401, 'invalid_token', INVALID);
    const row = await deps.grants.getToken(verified.jti);
    const now = deps.clock.now();
    if (!row || row.revokedAt !== null || row.expiresAt <= now) return fail(401, 'invalid_token', INVALID);
    if (row.audience !== endpoint.resource || verified.claims.aud !== endpoint.resource) {
      return fail(401, 'invalid_token', `the access token was not issued for ${endpoint.url}`);
    }

    // RFC 9449 §7.1: a bound token needs the DPoP scheme and a proof by its key; no downgrade to Bearer.
    const cnf = verified.claims[CLAIM.confirmation] as { jkt?: unknown } | undefined;
    const jkt = typeof cnf?.jkt === 'string' ? cnf.jkt : null;
    if (jkt !== null) {
      if (!usesDpop) return fail(401, 'invalid_token', 'this token is DPoP-bound: use the DPoP scheme', true);
      const proof = await verifyDpopProof({
        proof: req.dpop,
        method: req.method,
        url: req.url ?? endpoint.url,
        accessToken: token,
        jkt,
        now,
        replay: deps.replay,
        clockSkew: deps.clockSkew,
        maxAge: PROOF_MAX_AGE,
      });
      if (!proof.ok) return fail(401, 'invalid_dpop_proof', proof.description, true);
    } else if (usesDpop) {
      return fail(401, 'invalid_token', 'this token is not DPoP-bound: use the Bearer scheme', true);
    }

    const client = await deps.clients.get(row.clientId);
    if (client?.status !== 'active') return fail(401, 'invalid_token', INVALID);
    const user = row.subject !== client.id ? await deps.users.get(row.subject) : null;
    if (row.subject !== client.id && (!user || user.disabledAt !== null)) return fail(401, 'invalid_token', INVALID);
    const assurance = verified.claims[CLAIM.assurance];
    return {
      ok: true,
      caller: {
        client,
        user,
        subject: row.subject,
        scopes: parseScope(row.scope) ?? [],
        tools: toolsAllowedAt(verified.claims[CLAIM.authorizationDetails], endpoint.resource),
        assurance: isAssuranceLevel(assurance) ? assurance : null,
        dpopJkt: jkt,
        jti: row.jti,
        expiresAt: row.expiresAt,
      },
    };
  }
}

/**
 * The admin API's extra conditions on top of `verify` (README "Admin API"): the token was issued to an
 * admin service client as itself, with `errand:admin`. Issuance already refuses anything else
 * (`checkAdminScope`); this is the second lock, at the door that matters.
 */
export async function verifyAdminAccess(
  access: Pick<ResourceAccess, 'verify'>,
  req: AccessRequest,
  endpoint: ProtectedEndpoint,
): Promise<{ ok: true; caller: Caller } | { ok: false; failure: AccessFailure }> {
  const verified = await access.verify(req, endpoint);
  if (!verified.ok) return verified;
  const { caller } = verified;
  const dpop = caller.dpopJkt !== null;
  if (caller.client.kind !== 'admin_service' || caller.user !== null || caller.subject !== caller.client.id)
    return fail(401, 'invalid_token', 'the access token was not issued to an admin service client', dpop);
  if (!caller.scopes.includes(ERRAND_SCOPE.admin))
    return fail(403, 'insufficient_scope', `the access token lacks the ${ERRAND_SCOPE.admin} scope`, dpop);
  return verified;
}

/** The scopes of `needed` the caller lacks. */
export function missingScopes(caller: Pick<Caller, 'scopes'>, needed: readonly string[]): string[] {
  return needed.filter((s) => !caller.scopes.includes(s));
}

/**
 * The `WWW-Authenticate` value for a refusal (RFC 6750 §3, RFC 9728 §5.1, RFC 9449 §7.1): the scopes
 * the operation needs and the metadata URL on every challenge, the error when there is one.
 */
export function accessChallenge(
  resourceMetadataUrl: string,
  scope: readonly string[],
  failure: AccessFailure | null,
): string {
  return buildChallenge({
    resourceMetadata: resourceMetadataUrl,
    scope,
    ...(failure && !failure.omitError ? { error: failure.error, description: failure.description } : {}),
    ...(failure?.dpop ? { dpopAlgs: DPOP.algs } : {}),
  });
}
