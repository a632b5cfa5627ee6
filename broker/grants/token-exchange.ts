import { GRANT_TYPE, TOKEN_TYPE } from '@errand/protocol';
import { z } from 'zod';
import { canExchange } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import { param } from '../core/params.js';
import type { ClientAuthenticator } from '../identity/client-auth.js';
import { parseAuthorizationDetails } from '../services/authorization-details.js';
import type { ExchangeService } from '../services/exchange-token.js';
import { canonicalResources, requestedScope } from '../services/resource-policy.js';
import type { Grant } from './types.js';

export const TokenExchangeParamsSchema = z
  .object({
    subject_token: param(8192),
    subject_token_type: param(256),
    actor_token: param(8192).optional(),
    actor_token_type: param(256).optional(),
    requested_token_type: param(256).optional(),
    resource: z.array(z.string()).optional(),
    audience: z.array(z.string()).optional(),
    scope: param(2048).optional(),
    authorization_details: param(8192).optional(),
  })
  // RFC 8693 §2.1: actor_token_type is required with actor_token and must not come without it.
  .refine((p) => !p.actor_token === !p.actor_token_type, {
    path: ['actor_token_type'],
    message: 'must be sent together with actor_token',
  });

/** RFC 8693 token exchange: per-task tokens from a delegation credential or a parent task token. */
export function tokenExchangeGrant(deps: {
  exchange: ExchangeService;
  auth: ClientAuthenticator;
}): Grant<typeof TokenExchangeParamsSchema> {
  return {
    type: GRANT_TYPE.tokenExchange,
    params: TokenExchangeParamsSchema,
    async handle(p, ctx) {
      const { client } = ctx.client;
      // The exchange service decides this for every door; asked first here so that a refused
      // client does not spend an actor token's one use.
      if (!canExchange(client)) {
        throw new OAuthError('unauthorized_client', 'this client is not allowed to use token exchange');
      }
      if (p.requested_token_type !== undefined && p.requested_token_type !== TOKEN_TYPE.accessToken) {
        throw new OAuthError('invalid_request', `requested_token_type must be ${TOKEN_TYPE.accessToken}`);
      }
      if (p.actor_token_type !== undefined && p.actor_token_type !== TOKEN_TYPE.jwt) {
        throw new OAuthError('invalid_request', `actor_token_type must be ${TOKEN_TYPE.jwt}`);
      }
      // `audience` names the target logically; Errand's targets are resources, so both mean the same.
      const targets = canonicalResources([...(p.resource ?? []), ...(p.audience ?? [])]);
      if (targets.length > 1) throw new OAuthError('invalid_target', 'request one resource per access token');
      const details = parseAuthorizationDetails(p.authorization_details, true);
      // The actor (RFC 8693 §4.1): a separate actor_token (a key-signed JWT or a workload token), or the client.
      const actor = p.actor_token ? await deps.auth.verifyActorToken(p.actor_token) : ctx.client;
      const response = await deps.exchange.exchange({
        client,
        actor: actor === ctx.client ? null : actor.client,
        actorAssurance: actor.assurance,
        actorWorkload: actor.workload ?? null,
        address: ctx.address ?? null,
        door: 'token',
        // RFC 9449: the token is bound to the key of this request's proof, the requester's own key.
        dpopJkt: ctx.dpop?.jkt ?? null,
        subjectToken: p.subject_token,
        subjectTokenType: p.subject_token_type,
        audience: targets[0] ?? null,
        scope: requestedScope(p.scope) ?? null,
        tools: details.tools,
        task: details.task,
        requestId: ctx.requestId,
      });
      return response;
    },
  };
}
