import { Hono } from 'hono';
import { OAuthError } from '../../core/errors.js';
import {
  CreateInitialAccessTokenSchema,
  type InitialAccessTokenDeps,
  initialAccessTokenView,
  issueInitialAccessToken,
  revokeInitialAccessToken,
} from '../../services/initial-access-tokens.js';
import { jsonBody } from '../api.js';
import { parseParams } from '../params.js';
import { type AppEnv, NO_STORE } from '../types.js';
import { adminActorId, requireAdmin } from './admin-api.js';

/** Admin API for initial access tokens (RFC 7591 §3), with which agents register themselves. */
export function initialAccessTokenRoutes(deps: InitialAccessTokenDeps) {
  const app = new Hono<AppEnv>();
  const base = '/api/admin/initial-access-tokens';
  app.use(base, requireAdmin());
  app.use(`${base}/*`, requireAdmin());

  app.get(base, async (c) => {
    const now = deps.clock.now();
    const tokens = await deps.initialAccessTokens.list();
    return c.json({ initial_access_tokens: tokens.map((t) => initialAccessTokenView(t, now)) });
  });
  app.post(base, async (c) => {
    const input = parseParams(CreateInitialAccessTokenSchema, await jsonBody(c));
    const issued = await issueInitialAccessToken(deps, input, adminActorId(c), c.var.requestId);
    c.var.log.info('initial_access_token.issued', { initialAccessTokenId: issued.id });
    // The value is in this response only: never stored, never shown again.
    return c.json(issued, 201, NO_STORE);
  });
  app.get(`${base}/:id`, async (c) => {
    const token = await deps.initialAccessTokens.get(c.req.param('id'));
    if (!token) throw new OAuthError('not_found', 'no such initial access token');
    return c.json(initialAccessTokenView(token, deps.clock.now()));
  });
  app.post(`${base}/:id/revoke`, async (c) =>
    c.json(await revokeInitialAccessToken(deps, c.req.param('id'), adminActorId(c), c.var.requestId)),
  );
  return app;
}
