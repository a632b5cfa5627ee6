import { Hono } from 'hono';
import type { GrantRegistry } from '../../grants/index.js';
import type { ClientAuthenticator } from '../../identity/client-auth.js';
import { authenticateClient } from '../middleware/client-auth.js';
import { parseParams, readForm } from '../params.js';
import { type AppEnv, NO_STORE } from '../types.js';

/** The token endpoint (RFC 6749 §3.2): authenticate, pick the grant, let it decide. */
export function tokenRoutes(deps: {
  grants: GrantRegistry;
  auth: ClientAuthenticator;
  touch: (id: string) => Promise<void>;
}) {
  return new Hono<AppEnv>().post('/token', async (c) => {
    const form = await readForm(c);
    const grant = deps.grants.select(form.grant_type);
    const client = await authenticateClient(c, form, deps.auth);
    const body = await grant.handle(parseParams(grant.params, form), {
      client,
      log: c.var.log,
      requestId: c.var.requestId,
    });
    await deps.touch(client.client.id);
    c.var.log.info('token.issued', { clientId: client.client.id, grantType: grant.type });
    return c.json(body, 200, NO_STORE);
  });
}
