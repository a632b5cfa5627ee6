import { canonicalizeResource, ERRAND_SCOPE, formatScope, parseScope, scopesOutside } from '@errand/protocol';
import type { ClientStore, Resource } from '../../db/stores/client-store.js';
import type { Client } from '../core/client.js';
import { OAuthError } from '../core/errors.js';

/** Canonical forms of `resource` parameters; a malformed one is invalid_target (RFC 8707 §2). */
export function canonicalResources(raw: string | string[] | undefined): string[] {
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  if (list.length > 10) throw new OAuthError('invalid_target', 'too many resource parameters');
  const out: string[] = [];
  for (const r of list) {
    const canonical = canonicalizeResource(r);
    if (!canonical)
      throw new OAuthError(
        'invalid_target',
        `resource "${r.slice(0, 200)}" must be an absolute http(s) URI without a fragment`,
      );
    if (!out.includes(canonical)) out.push(canonical);
  }
  return out;
}

/** Every requested resource must be registered at Errand (RFC 8707 §2: else invalid_target). */
export async function lookUpResources(store: ClientStore, canonical: readonly string[]): Promise<Resource[]> {
  const found: Resource[] = [];
  for (const url of canonical) {
    const resource = await store.getResource(url);
    if (!resource)
      throw new OAuthError('invalid_target', `resource "${url}" is not known to this authorization server`);
    found.push(resource);
  }
  return found;
}

/** Errand issues one audience per token; picks it from the request and what the grant allows. */
export function pickAudience(requested: readonly string[], allowed: readonly string[] | null): string {
  if (requested.length > 1) throw new OAuthError('invalid_target', 'request one resource per access token');
  const [one] = requested;
  if (one !== undefined) {
    if (allowed && !allowed.includes(one)) {
      throw new OAuthError('invalid_target', `resource "${one}" was not part of this grant`);
    }
    return one;
  }
  if (allowed && allowed.length === 1 && allowed[0] !== undefined) return allowed[0];
  throw new OAuthError(
    'invalid_target',
    allowed && allowed.length > 1
      ? 'resource is required: this grant covers several resources'
      : 'resource is required: Errand issues audience-restricted tokens only',
  );
}

/**
 * The resource a request that names none is for (RFC 8707 §2 lets the authorization server pick a
 * default), so that ordinary OAuth clients that send no `resource` still get a token with exactly
 * one audience. `wanted` are the resource scopes the request names (or the client registered):
 * the configured default resource when it offers all of them (or when nothing is named), else the
 * one registered resource that offers all of them. Anything else is ambiguous or unknown, and the
 * error says what to send.
 */
export async function defaultResource(
  deps: { clients: Pick<ClientStore, 'listResources'>; defaultResource: string | null },
  wanted: readonly string[],
): Promise<string> {
  const all = await deps.clients.listResources();
  const configured = deps.defaultResource ? all.find((r) => r.url === deps.defaultResource) : undefined;
  if (wanted.length === 0) {
    if (configured) return configured.url;
    throw new OAuthError(
      'invalid_target',
      'resource is required: name the API or MCP server the token is for (RFC 8707), or a scope it offers',
    );
  }
  if (configured && scopesOutside(wanted, configured.scopes).length === 0) return configured.url;
  const candidates = all.filter((r) => scopesOutside(wanted, r.scopes).length === 0);
  const [only] = candidates;
  if (candidates.length === 1 && only) return only.url;
  const scope = formatScope(wanted);
  throw new OAuthError(
    'invalid_target',
    candidates.length === 0
      ? `resource is required: no single resource offers scope "${scope}"; request one resource per token`
      : `resource is required: scope "${scope}" is offered by several resources; name one with the resource parameter`,
  );
}

/** Parses a scope parameter; malformed scope is invalid_scope (RFC 6749 §5.2). */
export function requestedScope(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const parsed = parseScope(raw);
  if (!parsed) throw new OAuthError('invalid_scope', 'scope must be space-separated scope tokens');
  return parsed;
}

/**
 * Scopes a client may receive for a resource: within the resource's catalogue and, when the client
 * registered a scope list, within that list. Anything outside is invalid_scope, never silently dropped.
 */
export function checkScope(
  requested: readonly string[],
  resource: Resource,
  client: Pick<Client, 'scope' | 'kind'>,
): void {
  checkAdminScope(requested, client, true);
  const unknown = scopesOutside(requested, resource.scopes);
  if (unknown.length > 0) {
    throw new OAuthError('invalid_scope', `scope "${formatScope(unknown)}" is not offered by resource ${resource.url}`);
  }
  if (client.scope) {
    const notAllowed = scopesOutside(requested, client.scope);
    if (notAllowed.length > 0) {
      throw new OAuthError('invalid_scope', `scope "${formatScope(notAllowed)}" is not allowed for this client`);
    }
  }
}

/**
 * `errand:admin` opens the admin API (README "Admin API"): only a client an administrator created as
 * an admin service may hold it, and only as itself (client_credentials). No person can delegate it and
 * no registered agent, MCP client or resource server can ask for it, whatever scopes it registered.
 */
export function checkAdminScope(requested: readonly string[], client: Pick<Client, 'kind'>, asItself: boolean): void {
  if (!requested.includes(ERRAND_SCOPE.admin)) return;
  if (client.kind !== 'admin_service' || !asItself) {
    throw new OAuthError(
      'invalid_scope',
      `scope "${ERRAND_SCOPE.admin}" is only for admin service clients, through client_credentials`,
    );
  }
}
