import { GRANT_TYPE, PATHS } from '@errand/protocol';
import { Hono } from 'hono';
import type { ClientStore } from '../../../db/stores/client-store.js';
import { isConfidential } from '../../core/client.js';
import { OAuthError } from '../../core/errors.js';
import type { ClientAuthenticator } from '../../identity/client-auth.js';
import { delegationAskFromForm, readDelegationRequest } from '../../services/delegation-ask.js';
import type { DelegationLimits, DelegationService } from '../../services/delegations.js';
import type { UserLookup } from '../../services/user-lookup.js';
import { authenticateClient } from '../middleware/client-auth.js';
import { readForm, singleValues } from '../params.js';
import { type AppEnv, NO_STORE } from '../types.js';

// CIBA §7.1: binding messages are short, plain text shown on the user's device.
const BINDING_MESSAGE = /^[\p{L}\p{N}\p{P}\p{Zs}]{1,64}$/u;

/**
 * The backchannel authentication endpoint (OpenID CIBA Core §7, poll mode): an agent asks a user
 * for a delegation without a browser. The user decides in Errand (user API or UI).
 */
export function backchannelRoutes(deps: {
  auth: ClientAuthenticator;
  users: UserLookup;
  clients: ClientStore;
  delegations: DelegationService;
  limits: DelegationLimits;
}) {
  return new Hono<AppEnv>().post(PATHS.backchannel, async (c) => {
    const form = await readForm(c);
    const { client } = await authenticateClient(c, form, deps.auth);
    if (!isConfidential(client) || !client.grantTypes.includes(GRANT_TYPE.ciba)) {
      throw new OAuthError('unauthorized_client', 'this client is not allowed to use CIBA');
    }
    const p = singleValues(form);
    // CIBA §7.1: scope must contain openid; exactly one hint.
    if (!(p.scope ?? '').split(' ').includes('openid'))
      throw new OAuthError('invalid_scope', 'scope must include openid');
    const hints = [p.login_hint, p.login_hint_token, p.id_token_hint].filter((h) => h !== undefined);
    if (hints.length !== 1)
      throw new OAuthError('invalid_request', 'send exactly one of login_hint, login_hint_token, id_token_hint');
    if (!p.login_hint) throw new OAuthError('invalid_request', 'only login_hint (the username) is supported');
    if (p.binding_message !== undefined && !BINDING_MESSAGE.test(p.binding_message)) {
      throw new OAuthError('invalid_binding_message', 'binding_message must be 1-64 characters of plain text');
    }
    let requestedExpiry: number | null = null;
    if (p.requested_expiry !== undefined) {
      if (!/^\d{1,6}$/.test(p.requested_expiry) || Number(p.requested_expiry) < 1) {
        throw new OAuthError('invalid_request', 'requested_expiry must be a positive whole number of seconds');
      }
      requestedExpiry = Number(p.requested_expiry);
    }
    const found = await deps.users.resolve(client.id, p.login_hint);
    if (!found.ok && found.reason === 'too_many_unknown') {
      throw new OAuthError('rate_limited', 'too many requests named unknown users; try again later', {
        headers: { 'Retry-After': String(found.retryAfter) },
      });
    }
    // CIBA Core §13: unknown_user_id (each client gets only a few of these per window).
    if (!found.ok) throw new OAuthError('unknown_user_id', 'login_hint does not name a known user');
    const user = found.user;
    const ask = delegationAskFromForm(form, ['openid']);
    const asked = await readDelegationRequest({ clients: deps.clients, limits: deps.limits }, ask, client);
    const result = await deps.delegations.request({
      client,
      userId: user.id,
      asked,
      source: 'ciba',
      bindingMessage: p.binding_message ?? null,
      requestedExpiry,
      requestId: c.var.requestId,
      door: { door: 'backchannel', address: c.var.address },
    });
    c.var.log.info('delegation.requested', { clientId: client.id, delegationId: result.delegation.id, source: 'ciba' });
    return c.json(
      { auth_req_id: result.authReqId, expires_in: result.expiresIn, interval: result.interval },
      200,
      NO_STORE,
    );
  });
}
