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
    const registered = await registerClient(deps, body, {
      requestId: c.var.requestId,
      log: c.var.log,
      initialAccessToken: initialAccessToken(c.req.header('authorization')),
    });
    c.var.log.info('client.registered', { clientId: registered.client_id, source: 'dcr' });
    return c.json(registered, 201, NO_STORE);
  });
}

/**
 * The initial access token of an RFC 7591 §3 registration, sent as an RFC 6750 §2.1 bearer token;
 * undefined without an Authorization header (open registration).
 */
function initialAccessToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header.trim());
  if (!match?.[1]) {
    const description = 'the Authorization header must be "Bearer <initial access token>"';
    throw new OAuthError('invalid_request', description, {
      headers: { 'WWW-Authenticate': `Bearer error="invalid_request", error_description="${description}"` },
    });
  }
  return match[1];
}
