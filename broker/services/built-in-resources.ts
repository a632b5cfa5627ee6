import { canonicalizeResource, ERRAND_SCOPE, ERRAND_SCOPES, PATHS, USERINFO_SCOPES } from '@errand/protocol';
import type { ClientStore } from '../../db/stores/client-store.js';
import { newId } from '../tokens/random.js';

/**
 * Errand's own protected endpoints, `<issuer>/mcp`, `<issuer>/a2a`, `<issuer>/userinfo` and the admin
 * API `<issuer>/api/admin` (for admin service clients' tokens, README "Admin API"): resources
 * like any other (tokens are issued for exactly one of them, RFC 8707), registered at start-up.
 */
const BUILT_IN = [
  { path: PATHS.mcp, name: 'Errand MCP', scopes: ERRAND_SCOPES },
  { path: PATHS.a2a, name: 'Errand A2A', scopes: ERRAND_SCOPES },
  { path: PATHS.userinfo, name: 'Errand UserInfo', scopes: USERINFO_SCOPES },
  { path: PATHS.adminApi, name: 'Errand admin API', scopes: [ERRAND_SCOPE.admin] },
] as const;

/** The endpoint URL as clients use it: `<issuer>/mcp` (the canonical server URI MCP clients send). */
export function mcpUrl(issuer: string): string {
  return `${issuer}${PATHS.mcp}`;
}

/** The resource id of the UserInfo endpoint (OIDC Core §5.3): the audience of tokens it accepts. */
export function userinfoResourceId(issuer: string): string {
  return resourceId(`${issuer}${PATHS.userinfo}`);
}

/** The resource id of the admin API (`<issuer>/api/admin`): the audience of admin service clients' tokens. */
export function adminApiResourceId(issuer: string): string {
  return resourceId(`${issuer}${PATHS.adminApi}`);
}

/** The A2A endpoint URL as clients use it. */
export function a2aUrl(issuer: string): string {
  return `${issuer}${PATHS.a2a}`;
}

function resourceId(url: string): string {
  const id = canonicalizeResource(url);
  if (!id) throw new Error(`the issuer does not give a valid resource URL (${url})`);
  return id;
}

/** The resource id tokens for the MCP endpoint carry in `aud` (RFC 8707, canonical form). */
export function mcpResourceId(issuer: string): string {
  return resourceId(mcpUrl(issuer));
}

/** The resource id tokens for the A2A endpoint carry in `aud`. */
export function a2aResourceId(issuer: string): string {
  return resourceId(a2aUrl(issuer));
}

/**
 * Registers the built-in resources with Errand's scopes where they are missing (start-up,
 * idempotent). A resource an administrator already created at such a URL is left as it is.
 */
export async function ensureBuiltInResources(
  clients: Pick<ClientStore, 'getResource' | 'insertResource'>,
  issuer: string,
  now: number,
): Promise<void> {
  for (const { path, name, scopes } of BUILT_IN) {
    const url = resourceId(`${issuer}${path}`);
    if (await clients.getResource(url)) continue;
    try {
      await clients.insertResource({ id: newId('res'), url, name, scopes: [...scopes], createdAt: now });
    } catch (err) {
      // Another broker process sharing the database may have inserted it meanwhile.
      if (!(await clients.getResource(url))) throw err;
    }
  }
}
