import { Hono } from 'hono';
import { z } from 'zod';
import { OAuthError } from '../../core/errors.js';
import type { ClientAuthenticator } from '../../identity/client-auth.js';
import type { TokenService } from '../../services/token-service.js';
import { authenticateClient } from '../middleware/client-auth.js';
import { param, parseParams, readForm } from '../params.js';
import { type AppEnv, NO_STORE } from '../types.js';

const TokenParams = z.object({ token: param(8192), token_type_hint: param(64).optional() });

/** Revocation (RFC 7009) and introspection (RFC 7662), both client-authenticated. */
export function tokenManagementRoutes(deps: { tokens: TokenService; auth: ClientAuthenticator }) {
  return new Hono<AppEnv>()
    .post('/revoke', async (c) => {
      const form = await readForm(c);
      const { client } = await authenticateClient(c, form, deps.auth);
      const p = parseParams(TokenParams, form);
      await deps.tokens.revoke(p.token, p.token_type_hint, client, c.var.requestId);
      return c.body(null, 200, NO_STORE);
    })
    .post('/introspect', async (c) => {
      const form = await readForm(c);
      const auth = await authenticateClient(c, form, deps.auth);
      // RFC 7662 §2.1: the caller must be authorized; a public client proves nothing.
      if (auth.method === 'none') {
        throw new OAuthError('invalid_client', 'introspection requires client authentication');
      }
      const p = parseParams(TokenParams, form);
      return c.json(await deps.tokens.introspect(p.token, auth.client), 200, NO_STORE);
    });
}
