import { OIDC_SCOPE, PATHS } from '@errand/protocol';
import { type Context, Hono } from 'hono';
import { cors } from 'hono/cors';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { userinfoResourceId } from '../../services/built-in-resources.js';
import { type AccessFailure, accessChallenge, type ResourceAccess } from '../../services/resource-access.js';
import { profileClaims } from '../../tokens/id-token.js';
import { type AppEnv, NO_STORE } from '../types.js';

/**
 * The UserInfo endpoint (OpenID Connect Core §5.3): `sub` and the claims of the scopes the access
 * token holds (`profile`: `name`, `preferred_username`). It is a resource like any other: the token
 * must have been issued for `<issuer>/userinfo` (one audience per token, RFC 8707) and speak for a
 * person; a DPoP-bound token needs its proof (RFC 9449 §7).
 */
export function userinfoRoutes(deps: { issuer: string; access: ResourceAccess }) {
  const endpoint = { resource: userinfoResourceId(deps.issuer), url: `${deps.issuer}${PATHS.userinfo}` };
  const refuse = (failure: AccessFailure) =>
    new Response(
      JSON.stringify(failure.omitError ? {} : { error: failure.error, error_description: failure.description }),
      {
        status: failure.status as ContentfulStatusCode,
        headers: {
          ...NO_STORE,
          'Content-Type': 'application/json',
          // RFC 6750 §3: the challenge names the scope the endpoint needs; there is no resource metadata URL.
          'WWW-Authenticate': accessChallenge('', [OIDC_SCOPE.openid], failure),
        },
      },
    );
  const handler = async (c: Context<AppEnv>) => {
    const verified = await deps.access.verify(
      { authorization: c.req.header('authorization'), dpop: c.req.header('dpop'), method: c.req.method },
      endpoint,
    );
    if (!verified.ok) return refuse(verified.failure);
    const { caller } = verified;
    if (!caller.user) {
      return refuse({
        status: 401,
        error: 'invalid_token',
        description: 'the access token speaks for no person (client_credentials)',
        dpop: false,
      });
    }
    if (!caller.scopes.includes(OIDC_SCOPE.openid)) {
      return refuse({
        status: 403,
        error: 'insufficient_scope',
        description: 'the access token was not issued with the openid scope',
        dpop: false,
      });
    }
    return c.json({ sub: caller.user.id, ...profileClaims(caller.user, caller.scopes) }, 200, NO_STORE);
  };
  return (
    new Hono<AppEnv>()
      // Browser-based clients call it cross-origin with their token (no cookies).
      .use(
        PATHS.userinfo,
        cors({ origin: '*', allowMethods: ['GET', 'POST'], allowHeaders: ['Authorization', 'DPoP'] }),
      )
      .get(PATHS.userinfo, handler)
      .post(PATHS.userinfo, handler)
  );
}
