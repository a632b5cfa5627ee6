import {
  canonicalizeResource,
  ERRAND_SCOPE,
  ERRAND_SCOPES,
  OIDC_SCOPE,
  PATHS,
  USERINFO_SCOPES,
} from '@errand/protocol';
import type { ClientStore } from '../../db/stores/client-store.js';
import { newId } from '../tokens/random.js';

/**
 * Errand's own protected endpoints, `<issuer>/mcp`, `<issuer>/a2a`, `<issuer>/userinfo` and the admin
 * API `<issuer>/api/admin` (for admin service clients' tokens, README "Admin API"): resources
 * like any other (tokens are issued for exactly one of them, RFC 8707), registered at start-up.
 */
const BUILT_IN = [
  { path: PATHS.mcp, name: 'Errand MCP', scopes: ERRAND_SCOPES, public: true },
  { path: PATHS.a2a, name: 'Errand A2A', scopes: ERRAND_SCOPES, public: true },
  { path: PATHS.userinfo, name: 'Errand UserInfo', scopes: USERINFO_SCOPES, public: true },
  // Only admin service clients, which administrators create, get tokens for it.
  { path: PATHS.adminApi, name: 'Errand admin API', scopes: [ERRAND_SCOPE.admin], public: false },
] as const;

/** What the approval page says each built-in scope allows. */
const BUILT_IN_DESCRIPTIONS: Record<string, string> = {
  [ERRAND_SCOPE.delegate]: 'Ask you for delegations and hand parts of its work to sub-agents',
  [ERRAND_SCOPE.tasks]: 'Start, follow and end the tasks it does for you',
  [OIDC_SCOPE.openid]: 'Know who you are (your account id at Errand)',
  [OIDC_SCOPE.profile]: 'See your username and display name',
};

/** Whether `url` is one of Errand's own endpoints (which cannot be deleted). */
export function isBuiltInResource(url: string, issuer: string): boolean {
  return BUILT_IN.some(({ path }) => canonicalizeResource(`${issuer}${path}`) === url);
}

/**
 * Whether `url` is one of Errand's own endpoints that quarantined clients may still use (README
 * "Quarantine of new registrations and findings"): MCP, A2A and UserInfo, where what a client can do
 * is decided by a person's delegation or consent anyway. Always public: the flag cannot be cleared.
 */
export function isPublicBuiltInResource(url: string, issuer: string): boolean {
  return BUILT_IN.some(({ path, public: open }) => open && canonicalizeResource(`${issuer}${path}`) === url);
}

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
  clients: Pick<ClientStore, 'getResource' | 'insertResource' | 'describeIfUndescribed' | 'markPublic'>,
  issuer: string,
  now: number,
): Promise<void> {
  for (const { path, name, scopes, public: open } of BUILT_IN) {
    const url = resourceId(`${issuer}${path}`);
    const scopeDescriptions = Object.fromEntries(scopes.map((s) => [s, BUILT_IN_DESCRIPTIONS[s] ?? s]));
    if (await clients.getResource(url)) {
      // Created before scopes had descriptions: describe them once; an administrator's own stay.
      await clients.describeIfUndescribed(url, scopeDescriptions);
      // Created before resources had a public flag (or by an administrator at this URL).
      if (open) await clients.markPublic(url);
      continue;
    }
    try {
      await clients.insertResource({
        id: newId('res'),
        url,
        name,
        scopes: [...scopes],
        scopeDescriptions,
        public: open,
        createdAt: now,
      });
    } catch (err) {
      // Another broker process sharing the database may have inserted it meanwhile.
      if (!(await clients.getResource(url))) throw err;
    }
  }
}
