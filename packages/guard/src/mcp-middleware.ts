import type { Context, MiddlewareHandler } from 'hono';
import type { Guard, VerifiedAccess } from './guard.js';
import { authorizeMcpRequest, DEFAULT_MAX_BODY, type GuardMcpOptions, type Refusal, readJsonBody } from './mcp.js';

/**
 * Hono environment of an MCP endpoint behind `guardMcpMiddleware`: `c.var.auth` holds the verified
 * token and `c.var.parsedBody` the JSON-RPC body it checked (the name `@modelcontextprotocol/hono`
 * uses, so the MCP handler runs exactly what was authorized).
 */
export type GuardMcpEnv = { Variables: { auth: VerifiedAccess; parsedBody?: unknown } };

/** The chunks of the request body, read from a copy (the handler can still read the original). */
async function* chunksOf(c: Context<GuardMcpEnv>): AsyncGenerator<Uint8Array> {
  const reader = c.req.raw.clone().body?.getReader();
  if (!reader) return;
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read()) yield r.value;
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

const reply = (c: Context<GuardMcpEnv>, r: Refusal) => c.json(r.body, r.status, r.headers);

/**
 * Hono middleware for an MCP endpoint (Streamable HTTP): reads the JSON-RPC body, single message or
 * batch, and lets it through only if the token may make every `tools/call` in it (see
 * `authorizeMcpRequest`); nothing in a refused request runs.
 *
 * @example
 * ```ts
 * const app = new Hono<GuardMcpEnv>();
 * app.route('/', protectedResourceMetadataRoute(guard));
 * app.all('/mcp', guardMcpMiddleware(guard, { toolScopes: { list_notes: 'notes:read', write_note: 'notes:write' } }), (c) =>
 *   mcpHandler.fetch(c.req.raw, { authInfo: toAuthInfo(c.var.auth, c.req.header('authorization') ?? '', guard.resource), parsedBody: c.var.parsedBody }),
 * );
 * ```
 */
export function guardMcpMiddleware(guard: Guard, opts: GuardMcpOptions): MiddlewareHandler<GuardMcpEnv> {
  const max = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  return async function requireMcpAccess(c, next) {
    const parsed = c.get('parsedBody');
    const body =
      parsed !== undefined
        ? { ok: true as const, value: parsed }
        : await readJsonBody(chunksOf(c), Number(c.req.header('content-length') ?? 0), max);
    if (!body.ok) return reply(c, body.refusal);
    const decision = await authorizeMcpRequest(
      guard,
      {
        authorization: c.req.header('authorization'),
        dpop: c.req.header('dpop'),
        method: c.req.method,
        url: c.req.url,
      },
      body.value,
      opts,
    );
    if (!decision.ok) return reply(c, decision.refusal);
    c.set('auth', decision.access);
    if (body.value !== undefined) c.set('parsedBody', body.value);
    await next();
  };
}
