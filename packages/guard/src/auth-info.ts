import type { VerifiedAccess } from './guard.js';

/**
 * The MCP SDKs' `AuthInfo` (1.x `@modelcontextprotocol/sdk`, 2.x `@modelcontextprotocol/server`),
 * typed here by shape so the guard needs neither SDK: what their transports hand to tool handlers
 * as `extra.authInfo` / `ctx.authInfo`. `extra.access` is the guard's verified token.
 */
export interface GuardAuthInfo {
  token: string;
  clientId: string;
  scopes: string[];
  expiresAt: number;
  resource: URL;
  extra: { access: VerifiedAccess; [key: string]: unknown };
}

/** The `AuthInfo` of a verified request (`authorization` is the header it carried). */
export function toAuthInfo(access: VerifiedAccess, authorization: string, resource: string): GuardAuthInfo {
  return {
    token: authorization.replace(/^\S+\s+/, '').trim(),
    clientId: access.clientId,
    scopes: access.scopes,
    expiresAt: access.claims.exp,
    resource: new URL(resource),
    extra: { access },
  };
}

/** The verified token behind an `AuthInfo` the guard made (in an MCP tool handler), or null. */
export function accessOf(authInfo: { extra?: Record<string, unknown> } | undefined): VerifiedAccess | null {
  const access = authInfo?.extra?.access as VerifiedAccess | undefined;
  return access?.ok === true ? access : null;
}
