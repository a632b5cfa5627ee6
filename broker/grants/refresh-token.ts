import { GRANT_TYPE } from '@errand/protocol';
import { z } from 'zod';
import { OAuthError } from '../core/errors.js';
import { param } from '../core/params.js';
import { canonicalResources, pickAudience, requestedScope } from '../services/resource-policy.js';
import type { TokenService } from '../services/token-service.js';
import type { Grant } from './types.js';

const Params = z.object({
  refresh_token: param(512),
  scope: param(2048).optional(),
  resource: z.array(z.string()).optional(),
});

/** `refresh_token` with rotation, reuse detection and a grace window for concurrent refreshes. */
export function refreshTokenGrant(deps: { tokens: TokenService }): Grant<typeof Params> {
  return {
    type: GRANT_TYPE.refreshToken,
    params: Params,
    async handle(p, ctx) {
      const { client } = ctx.client;
      if (!client.grantTypes.includes(GRANT_TYPE.refreshToken)) {
        throw new OAuthError('unauthorized_client', 'this client is not allowed to use refresh_token');
      }
      const requested = canonicalResources(p.resource);
      return deps.tokens.refresh({
        refreshToken: p.refresh_token,
        clientId: client.id,
        scope: requestedScope(p.scope),
        audience: (row) => pickAudience(requested, row.resources),
        requestId: ctx.requestId,
        assurance: ctx.client.assurance,
        dpopJkt: ctx.dpop?.jkt ?? null,
      });
    },
  };
}
