import { toolCallNames } from '@errand/protocol';
import type { Context, MiddlewareHandler } from 'hono';
import { describeTools, type GuardFailure } from './challenge.js';
import type { Guard, VerifiedAccess } from './guard.js';

/**
 * Hono environment of an MCP endpoint behind `guardMcpMiddleware`: `c.var.auth` holds the verified
 * token and `c.var.parsedBody` the JSON-RPC body it checked (the name `@modelcontextprotocol/hono`
 * uses, so the MCP handler runs exactly what was authorized).
 */
export type GuardMcpEnv = { Variables: { auth: VerifiedAccess; parsedBody?: unknown } };

/** What an MCP endpoint's tools need. */
export interface GuardMcpOptions {
  /**
   * The scope (or scopes) each tool needs, e.g. `{ list_notes: 'notes:read', write_note: 'notes:write' }`.
   * A call to a tool not listed here is refused (400): list every tool the server offers (`[]` for none).
   */
  toolScopes: Readonly<Record<string, string | readonly string[]>>;
  /** Scopes every request needs, tool call or not (`initialize`, `tools/list`, …). */
  scopes?: readonly string[];
  /** The URL clients send requests to (the DPoP `htu`, RFC 9449 §4.3); defaults to the request URL. */
  url?: string;
  /** The largest request body read, in bytes (default 4 MiB). */
  maxBodyBytes?: number;
}

const DEFAULT_MAX_BODY = 4 * 1024 * 1024;
const NO_STORE = { 'Cache-Control': 'no-store' };

type Body = { ok: true; value: unknown } | { ok: false; status: 400 | 413; description: string };

/** Reads the body from a clone (the handler can still read the original), at most `max` bytes. */
async function readBody(c: Context<GuardMcpEnv>, max: number): Promise<Body> {
  const parsed = c.get('parsedBody');
  if (parsed !== undefined) return { ok: true, value: parsed };
  const raw = c.req.raw;
  if (raw.body === null) return { ok: true, value: undefined };
  const tooLarge: Body = { ok: false, status: 413, description: `the request body must not exceed ${max} bytes` };
  if (Number(raw.headers.get('content-length') ?? 0) > max) return tooLarge;
  const reader = raw.clone().body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    size += r.value.byteLength;
    if (size > max) {
      await reader.cancel();
      return tooLarge;
    }
    text += decoder.decode(r.value, { stream: true });
  }
  text += decoder.decode();
  if (text.trim() === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    // Whatever the guard cannot read, it cannot authorize: the handler never sees it.
    return { ok: false, status: 400, description: 'the request body must be JSON-RPC (JSON)' };
  }
}

/**
 * Middleware for an MCP endpoint (Streamable HTTP): reads the JSON-RPC body, single message or
 * batch, and lets it through only if the token carries the scopes of every tool it calls (MCP
 * Authorization §Scope Challenge Handling) and its `mcp_tool` details (RFC 9396), if any, grant
 * each of those tools. A refusal is 403 `insufficient_scope` with a challenge naming what is missing
 * (RFC 6750 §3.1); nothing in the request runs.
 *
 * @example
 * ```ts
 * const app = new Hono<GuardMcpEnv>();
 * app.route('/', protectedResourceMetadataRoute(guard));
 * app.all('/mcp', guardMcpMiddleware(guard, { toolScopes: { list_notes: 'notes:read', write_note: 'notes:write' } }), (c) =>
 *   mcpHandler.fetch(c.req.raw, { authInfo: toAuthInfo(c.var.auth), parsedBody: c.var.parsedBody }),
 * );
 * ```
 */
export function guardMcpMiddleware(guard: Guard, opts: GuardMcpOptions): MiddlewareHandler<GuardMcpEnv> {
  // Object.hasOwn: a tool named like an Object.prototype member (`constructor`) is not listed.
  const isListed = (tool: string) => Object.hasOwn(opts.toolScopes, tool);
  const scopesOf = (tool: string): readonly string[] => {
    const s = isListed(tool) ? opts.toolScopes[tool] : undefined;
    return typeof s === 'string' ? [s] : (s ?? []);
  };
  const refuse = (c: Context<GuardMcpEnv>, f: GuardFailure) =>
    c.json({ error: f.error, error_description: f.description }, f.status, {
      'WWW-Authenticate': f.wwwAuthenticate,
      ...NO_STORE,
    });

  return async function requireMcpAccess(c, next) {
    const body = await readBody(c, opts.maxBodyBytes ?? DEFAULT_MAX_BODY);
    if (!body.ok)
      return c.json({ error: 'invalid_request', error_description: body.description }, body.status, NO_STORE);
    const called = [...new Set(toolCallNames(body.value))];
    const needed = new Set(opts.scopes ?? []);
    for (const tool of called) for (const s of scopesOf(tool)) needed.add(s);

    const result = await guard.verify(
      {
        authorization: c.req.header('authorization'),
        dpop: c.req.header('dpop'),
        method: c.req.method,
        url: opts.url ?? c.req.url,
      },
      { scopes: [...needed], tools: called },
    );
    if (!result.ok) return refuse(c, result);
    // Fail closed on a tool whose scopes are unknown; no token could fix that, so it is not a
    // challenge (RFC 6750 §3.1 invalid_request).
    const unlisted = called.filter((tool) => !isListed(tool));
    if (unlisted.length > 0) {
      const description = `${describeTools(unlisted)} ${unlisted.length === 1 ? 'is' : 'are'} not offered at this resource`;
      return c.json({ error: 'invalid_request', error_description: description }, 400, NO_STORE);
    }
    c.set('auth', result);
    if (body.value !== undefined) c.set('parsedBody', body.value);
    await next();
  };
}
