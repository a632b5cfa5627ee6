import { GRANT_TYPE } from '@errand/protocol';
import { z } from 'zod';
import { isConfidential } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import { param } from '../core/params.js';
import type { DelegationService } from '../services/delegations.js';
import type { Grant } from './types.js';

const Params = z.object({ auth_req_id: param(256) });

/**
 * The CIBA grant (poll mode, CIBA §10.1): once the user approves, the agent receives its delegation
 * credential (`token_type: Bearer`, though it opens no resource) and an ID token. No refresh token.
 */
export function cibaGrant(deps: { delegations: DelegationService }): Grant<typeof Params> {
  return {
    type: GRANT_TYPE.ciba,
    params: Params,
    async handle(p, ctx) {
      const { client } = ctx.client;
      if (!isConfidential(client) || !client.grantTypes.includes(GRANT_TYPE.ciba)) {
        throw new OAuthError('unauthorized_client', 'this client is not allowed to use CIBA');
      }
      const delegation = await deps.delegations.poll(client, p.auth_req_id, ctx.requestId);
      const credential = await deps.delegations.issueCredential(delegation, ctx.client.assurance);
      return {
        ...credential,
        scope: `openid ${credential.scope}`,
        id_token: deps.delegations.idToken(delegation),
      };
    },
  };
}
