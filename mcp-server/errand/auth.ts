import type { AuthInfo } from '@modelcontextprotocol/server';
import type { Client } from '../../broker/core/client.js';
import { OAuthError } from '../../broker/core/errors.js';
import { parseScope } from '../../broker/core/scopes.js';
import type { AppDeps } from '../../broker/http/app.js';
import type { TokenMinter } from '../../broker/tokens/access-token.js';
import { ERRAND_SCOPES } from './resource.js';

export type User = NonNullable<Awaited<ReturnType<AppDeps['users']['get']>>>;

/** Who calls a tool: the agent (the token's client), the user if the token has one, and the grant. */
export interface Caller {
  agent: Client;
  user: User | null;
  /** The token's `sub`: a user id, or the agent itself (client_credentials). */
  subject: string;
  scopes: string[];
  jti: string;
  expiresAt: number;
}

export type AuthDeps = Pick<AppDeps, 'grants' | 'clients' | 'users' | 'clock'>;

const INVALID = 'the access token is invalid, expired or revoked';
// RFC 6750 §2.1: b64token; anything else in the header is not a bearer token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const CALLER = 'errand.caller';
const REQUEST_ID = 'errand.requestId';

/**
 * Verifies a bearer token for Errand's MCP endpoint the way introspection does: an Errand-signed,
 * unexpired access token whose row exists and is not revoked, issued for exactly this resource
 * (no passthrough, MCP-Auth §Token Handling), held by an active client.
 */
export async function authenticate(
  deps: AuthDeps,
  minter: TokenMinter,
  resource: string,
  authorization: string,
): Promise<Caller> {
  const token = BEARER.exec(authorization)?.[1];
  if (!token) throw new OAuthError('invalid_token', 'send the access token as Authorization: Bearer <token>');
  const verified = minter.verify(token);
  if (!verified) throw new OAuthError('invalid_token', INVALID);
  const row = await deps.grants.getToken(verified.jti);
  const now = deps.clock.now();
  if (!row || row.revokedAt !== null || row.expiresAt <= now) throw new OAuthError('invalid_token', INVALID);
  if (row.audience !== resource || verified.claims.aud !== resource) {
    throw new OAuthError('invalid_token', `the access token was not issued for ${resource}`);
  }
  const agent = await deps.clients.get(row.clientId);
  if (agent?.status !== 'active') throw new OAuthError('invalid_token', INVALID);
  const user = row.subject !== agent.id ? await deps.users.get(row.subject) : null;
  if (user && user.disabledAt !== null) throw new OAuthError('invalid_token', INVALID);
  return {
    agent,
    user,
    subject: row.subject,
    scopes: parseScope(row.scope) ?? [],
    jti: row.jti,
    expiresAt: row.expiresAt,
  };
}

/** The SDK's view of a verified caller; the Errand caller rides along in `extra`. */
export function toAuthInfo(
  caller: Caller,
  token: string,
  opts: { resource: string; resourceMetadataUrl: string; requestId: string },
): AuthInfo {
  return {
    token,
    clientId: caller.agent.id,
    scopes: caller.scopes,
    expiresAt: caller.expiresAt,
    resource: new URL(opts.resource),
    resourceMetadataUrl: opts.resourceMetadataUrl,
    extra: { [CALLER]: caller, [REQUEST_ID]: opts.requestId },
  };
}

/** The Errand caller and request id put into an AuthInfo by `toAuthInfo`. */
export function callerOf(authInfo: AuthInfo | undefined): { caller: Caller; requestId: string } | null {
  const caller = authInfo?.extra?.[CALLER] as Caller | undefined;
  const requestId = authInfo?.extra?.[REQUEST_ID];
  return caller && typeof requestId === 'string' ? { caller, requestId } : null;
}

/** Which scopes the caller lacks of `needed`. */
export function missingScopes(caller: Caller, needed: readonly string[]): string[] {
  return needed.filter((s) => !caller.scopes.includes(s));
}

/**
 * A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3, RFC 9728 §5.1). Without `error` it is the
 * answer to a request that carried no token; `scope` names every scope the operation needs
 * (MCP-Auth §Scope Selection Strategy), `resource_metadata` is on every challenge.
 */
export function bearerChallenge(opts: {
  resourceMetadataUrl: string;
  scope?: readonly string[];
  error?: 'invalid_token' | 'insufficient_scope';
  description?: string;
}): string {
  const parts: string[] = [];
  if (opts.error) parts.push(`error="${opts.error}"`);
  if (opts.error && opts.description) parts.push(`error_description="${opts.description.replace(/["\\]/g, "'")}"`);
  parts.push(`scope="${(opts.scope ?? ERRAND_SCOPES).join(' ')}"`);
  parts.push(`resource_metadata="${opts.resourceMetadataUrl}"`);
  return `Bearer ${parts.join(', ')}`;
}
