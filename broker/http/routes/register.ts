import { Hono } from 'hono';
import { OAuthError } from '../../core/errors.js';
import type { RateLimiter } from '../../services/rate-limit.js';
import { type RegisterDeps, registerClient } from '../../services/register-client.js';
import { type AppEnv, NO_STORE } from '../types.js';

/** POST /register (RFC 7591 §3), rate-limited per source address. */
export function registerRoutes(
  deps: RegisterDeps & { limiter: RateLimiter; clientAddress: (c: import('hono').Context) => string },
) {
  return new Hono<AppEnv>().post('/register', async (c) => {
    const wait = deps.limiter.hit(deps.clientAddress(c));
    if (wait > 0) {
      throw new OAuthError('rate_limited', 'too many registrations from this address; try again later', {
        headers: { 'Retry-After': String(wait) },
      });
    }
    if (!/^application\/json(\s*;|$)/i.test(c.req.header('content-type') ?? '')) {
      throw new OAuthError('invalid_client_metadata', 'the body must be application/json');
    }
    const body = await c.req.json<unknown>().catch(() => {
      throw new OAuthError('invalid_client_metadata', 'the body is not valid JSON');
    });
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new OAuthError('invalid_client_metadata', 'the body must be a JSON object of client metadata');
    }
    const registered = await registerClient(deps, body, c.var.requestId);
    c.var.log.info('client.registered', { clientId: registered.client_id, source: 'dcr' });
    return c.json(registered, 201, NO_STORE);
  });
}
