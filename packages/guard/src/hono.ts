import { Hono, type MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import type { Guard, VerifiedAccess, VerifyRequirements } from './guard.js';
import { refusalOf } from './mcp.js';
import { METADATA_CACHE_CONTROL } from './metadata.js';

/**
 * Hono adapters (`@errand/guard/hono`; `hono` is an optional peer dependency of the guard).
 *
 * @example
 * ```ts
 * const app = new Hono<GuardEnv>();
 * app.route('/', protectedResourceMetadataRoute(guard));
 * app.post('/api/notes', guardMiddleware(guard, { scopes: ['notes:write'] }), (c) => c.json({ user: c.var.auth.sub }));
 * ```
 */

export type { GuardMcpOptions } from './mcp.js';
export { type GuardMcpEnv, guardMcpMiddleware } from './mcp-middleware.js';

/** Hono environment of routes behind `guardMiddleware`: `c.var.auth` holds the verified token. */
export type GuardEnv = { Variables: { auth: VerifiedAccess } };

/**
 * Middleware that lets a request through only with a valid access token carrying `scopes` and
 * granting `tools`, if given (for a route that is one tool; MCP endpoints use `guardMcpMiddleware`).
 */
export function guardMiddleware(guard: Guard, opts: VerifyRequirements = {}): MiddlewareHandler<GuardEnv> {
  return async function requireAccessToken(c, next) {
    const result = await guard.verify(
      {
        authorization: c.req.header('authorization'),
        dpop: c.req.header('dpop'),
        method: c.req.method,
        url: c.req.url,
      },
      opts,
    );
    if (!result.ok) {
      const refusal = refusalOf(result);
      return c.json(refusal.body, result.status, refusal.headers);
    }
    c.set('auth', result);
    await next();
  };
}

/** A Hono app serving the guard's RFC 9728 metadata at its path-specific well-known URL (CORS open). */
export function protectedResourceMetadataRoute(guard: Guard): Hono {
  const app = new Hono();
  // Browser-based MCP clients fetch this cross-origin and send MCP-Protocol-Version.
  app.use(
    guard.metadataPath,
    cors({ origin: '*', allowMethods: ['GET', 'OPTIONS'], allowHeaders: ['MCP-Protocol-Version', 'Content-Type'] }),
  );
  app.get(guard.metadataPath, (c) =>
    c.json(guard.protectedResourceMetadata(), 200, { 'Cache-Control': METADATA_CACHE_CONTROL }),
  );
  return app;
}
