import { formatScope, OIDC_SCOPE, scopesOutside, USERINFO_SCOPES } from '@errand/protocol';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { Client } from '../core/client.js';
import { denialToError } from '../core/denials.js';
import { OAuthError } from '../core/errors.js';
import { quarantineDenial } from '../core/quarantine.js';
import {
  canonicalResources,
  checkAdminScope,
  defaultResource,
  lookUpResources,
  requestedScope,
} from './resource-policy.js';

/** What an authorization request is for, once Errand's defaults are applied. */
export interface AuthorizationTarget {
  /** Canonical resource URLs (RFC 8707); the token endpoint issues one audience per token. */
  resources: string[];
  /** Scopes of those resources; `openid` only where the resource offers it (the UserInfo endpoint). */
  scope: string[];
  /** OIDC Core §3.1.2.1: `openid` was asked, so the code also yields an ID token. */
  openid: boolean;
}

const isIdentityScope = (s: string) => (USERINFO_SCOPES as readonly string[]).includes(s);

/**
 * Resolves `resource` and `scope` of an authorization request with Errand's documented defaults
 * (README "Tokens"), so that ordinary OAuth and OpenID clients that send neither still work:
 *
 * - `openid` asks for an ID token; it is a scope of the UserInfo endpoint only, and is dropped from
 *   the scope of any other resource. A request for `openid` (and `profile`) alone is for UserInfo.
 * - No `resource`: the resource that offers every scope asked (or, without `scope`, every scope the
 *   client registered), else the configured default resource (RFC 8707 §2); ambiguity is an error.
 * - No `scope` (or only `openid`): the client's registered scopes that the resources offer, or, for a
 *   client that registered none, every scope they offer, shown on the consent page (RFC 6749 §3.3).
 */
export async function authorizationTarget(
  deps: { clients: ClientStore; defaultResource: string | null },
  client: Pick<Client, 'id' | 'scope' | 'kind' | 'quarantinedAt'>,
  raw: { resource: string | string[] | undefined; scope: string | undefined },
): Promise<AuthorizationTarget> {
  const asked = requestedScope(raw.scope);
  const openid = asked?.includes(OIDC_SCOPE.openid) ?? false;
  const askedForResources = asked?.filter((s) => s !== OIDC_SCOPE.openid) ?? [];
  let resources = canonicalResources(raw.resource);
  if (resources.length === 0) {
    const wanted = asked === undefined || askedForResources.length === 0 ? (client.scope ?? []) : askedForResources;
    resources = [
      openid && askedForResources.length === 0
        ? await defaultResource({ ...deps, defaultResource: null }, [OIDC_SCOPE.openid])
        : await defaultResource(deps, wanted),
    ];
  }
  const known = await lookUpResources(deps.clients, resources);
  // A quarantined client may be authorized for public resources only (README "Quarantine of new registrations and findings").
  for (const r of known) {
    const quarantined = quarantineDenial(client, r.url, r.public ?? false);
    if (quarantined) throw denialToError(quarantined);
  }
  const offered = [...new Set(known.flatMap((r) => r.scopes))];
  let scope = asked?.filter((s) => s !== OIDC_SCOPE.openid || offered.includes(s)) ?? [];
  if (scope.length === 0) {
    scope = client.scope ? client.scope.filter((s) => offered.includes(s)) : offered;
    if (openid && offered.includes(OIDC_SCOPE.openid) && !scope.includes(OIDC_SCOPE.openid))
      scope = [...scope, OIDC_SCOPE.openid];
    if (scope.length === 0) {
      throw new OAuthError(
        'invalid_scope',
        `scope is required: this client may ask for none of the scopes of ${resources.join(', ')}`,
      );
    }
  }
  checkAdminScope(scope, client, false);
  const unknown = scopesOutside(scope, offered);
  if (unknown.length)
    throw new OAuthError('invalid_scope', `scope "${formatScope(unknown)}" is not offered by the requested resources`);
  if (client.scope) {
    // The OpenID scopes concern the person, who consents; a client's list restricts API scopes.
    const notAllowed = scopesOutside(scope, client.scope).filter((s) => !isIdentityScope(s));
    if (notAllowed.length)
      throw new OAuthError('invalid_scope', `scope "${formatScope(notAllowed)}" is not allowed for this client`);
  }
  return { resources, scope: [...new Set(scope)].sort(), openid };
}
