import { ERRAND_SCOPE, PATHS } from '@errand/protocol';
import type { MiddlewareHandler } from 'hono';
import { OAuthError } from '../../core/errors.js';
import { adminApiResourceId } from '../../services/built-in-resources.js';
import {
  type AccessFailure,
  accessChallenge,
  type ResourceAccess,
  verifyAdminAccess,
} from '../../services/resource-access.js';
import { API_CREDENTIALS } from '../api.js';
import type { AppEnv } from '../types.js';

/** RFC 9728 §3.1: the admin API's Protected Resource Metadata (`…/oauth-protected-resource/api/admin`). */
export function adminApiResourceMetadataUrl(issuer: string): string {
  const url = new URL(`${issuer}${PATHS.adminApi}`);
  return `${url.origin}/.well-known/oauth-protected-resource${url.pathname}`;
}

/** The `WWW-Authenticate` challenge of the admin API (RFC 6750 §3, RFC 9728 §5.1, RFC 9449 §7.1). */
export function adminChallenge(issuer: string, failure: AccessFailure | null): string {
  return accessChallenge(adminApiResourceMetadataUrl(issuer), [ERRAND_SCOPE.admin], failure);
}

/**
 * Admin API tokens (README "Admin API"): a request to `/api/admin/*` that carries `Authorization`
 * is decided by its access token alone, checked as every Errand endpoint checks tokens
 * (services/resource-access.ts); the admin service client it was issued to becomes the caller
 * (`adminClient`). A request without `Authorization` goes on to the session check in `requireAdmin`,
 * or, with no session either, gets 401 and the challenge that says where to get a token.
 */
export function adminTokenAuth(deps: { access: ResourceAccess; issuer: string }): MiddlewareHandler<AppEnv> {
  const endpoint = { resource: adminApiResourceId(deps.issuer), url: `${deps.issuer}${PATHS.adminApi}` };
  return async function adminTokenAuthMiddleware(c, next) {
    const authorization = c.req.header('authorization');
    if (authorization === undefined) {
      if (c.get('user')) return next(); // requireAdmin decides on the session
      // RFC 6750 §3.1: no credentials at all, so a challenge without an error code.
      throw new OAuthError('unauthorized', `${API_CREDENTIALS.session} or ${API_CREDENTIALS.token}`, {
        headers: { 'WWW-Authenticate': adminChallenge(deps.issuer, null) },
      });
    }
    const verified = await verifyAdminAccess(
      deps.access,
      { authorization, dpop: c.req.header('dpop'), method: c.req.method, url: `${deps.issuer}${c.req.path}` },
      endpoint,
    );
    if (!verified.ok) {
      const { failure } = verified;
      throw new OAuthError(failure.error, failure.description, {
        status: failure.status,
        headers: { 'WWW-Authenticate': adminChallenge(deps.issuer, failure) },
      });
    }
    c.set('adminClient', verified.caller.client);
    c.set('clientId', verified.caller.client.id);
    await next();
  };
}
