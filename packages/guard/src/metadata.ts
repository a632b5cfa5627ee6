/** RFC 9728 Protected Resource Metadata and RFC 8414 discovery locations. */

const PRM_WELL_KNOWN = '/.well-known/oauth-protected-resource';
const AS_WELL_KNOWN = '/.well-known/oauth-authorization-server';

/** The RFC 9728 document a protected resource serves. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported?: string[];
  bearer_methods_supported: string[];
  resource_name?: string;
  dpop_signing_alg_values_supported: string[];
}

/** RFC 9728 §3.1: the well-known path with the resource's path appended (`/mcp` → `…/oauth-protected-resource/mcp`). */
export function protectedResourceMetadataPath(resource: string): string {
  const path = new URL(resource).pathname;
  return path === '/' ? PRM_WELL_KNOWN : `${PRM_WELL_KNOWN}${path}`;
}

/** RFC 8414 §3.1: the metadata URL of an issuer (its path, if any, goes after the well-known part). */
export function authorizationServerMetadataUrl(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}${AS_WELL_KNOWN}${path}`;
}

/** Whether a URL lies under the issuer (same origin, path below the issuer's); used for status lists and the push channel. */
export function isUnderIssuer(issuer: string, candidate: string): boolean {
  let url: URL;
  let base: URL;
  try {
    url = new URL(candidate);
    base = new URL(issuer);
  } catch {
    return false;
  }
  if (url.origin !== base.origin || url.username || url.password || candidate.includes('#')) return false;
  const prefix = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  return url.pathname.startsWith(prefix);
}

/**
 * Headers of the metadata document and its CORS preflight: browser-based MCP clients fetch it
 * cross-origin and send MCP-Protocol-Version.
 */
export const METADATA_CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, OPTIONS',
  'Access-Control-Allow-Headers': 'MCP-Protocol-Version, Content-Type',
} as const;
export const METADATA_CACHE_CONTROL = 'public, max-age=3600';
