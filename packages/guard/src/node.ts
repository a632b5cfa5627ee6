import type { IncomingMessage, ServerResponse } from 'node:http';
import { accessOf, type GuardAuthInfo, toAuthInfo } from './auth-info.js';
import type { Guard, VerifiedAccess, VerifyRequirements } from './guard.js';
import {
  authorizeMcpRequest,
  type BodyResult,
  DEFAULT_MAX_BODY,
  type GuardMcpOptions,
  type Refusal,
  readJsonBody,
  refusalOf,
} from './mcp.js';
import { METADATA_CACHE_CONTROL, METADATA_CORS_HEADERS } from './metadata.js';

/**
 * Node adapters (`@errand/guard/node`): connect-style middleware `(req, res, next)` over Node's own
 * `IncomingMessage` and `ServerResponse`, so the same functions serve a plain `http.createServer`
 * and Express (whose request and response extend those types; Express itself is not needed).
 * An accepted request gets `req.auth`, the MCP SDKs' `AuthInfo` shape, which the 1.x
 * `StreamableHTTPServerTransport.handleRequest(req, res, body)` passes on to tool handlers.
 */

/** A request as the middleware see it: Node's, plus what Express or the guard may add. */
export type GuardedRequest = IncomingMessage & { auth?: GuardAuthInfo; body?: unknown; originalUrl?: string };
/** Called to pass the request on, or with an error (Express's `next`). */
export type NextFunction = (err?: unknown) => void;
/** A connect-style middleware. */
export type NodeMiddleware = (req: GuardedRequest, res: ServerResponse, next: NextFunction) => Promise<void>;

/**
 * The token a guard middleware verified for this request, or null: typed access from a framework
 * whose request type does not know `req.auth` (Express).
 *
 * @example
 * ```ts
 * app.get('/api/notes', requireAccess(guard, { scopes: ['notes:read'] }), (req, res) => res.json({ user: requestAccess(req)?.sub }));
 * ```
 */
export function requestAccess(req: IncomingMessage): VerifiedAccess | null {
  return accessOf((req as GuardedRequest).auth);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  const payload = body === null ? '' : JSON.stringify(body);
  res.writeHead(status, { ...headers, ...(body === null ? {} : { 'Content-Type': 'application/json' }) });
  res.end(payload);
}

/** Writes a refusal (status, challenge, `{ error, error_description }`). */
export function sendRefusal(res: ServerResponse, refusal: Refusal): void {
  send(res, refusal.status, refusal.body, refusal.headers);
}

/** The URL the client addressed: the path as received (before any router stripped it) on the resource's origin. */
function requestUrl(guard: Guard, req: GuardedRequest): string {
  return new URL(req.originalUrl ?? req.url ?? '/', new URL(guard.resource).origin).href;
}

const header = (req: IncomingMessage, name: string): string | undefined => {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
};

/**
 * Serves the guard's RFC 9728 metadata at its path (GET, and the CORS preflight); passes every
 * other request on.
 *
 * @example
 * ```ts
 * app.use(protectedResourceMetadataHandler(guard)); // Express
 * ```
 */
export function protectedResourceMetadataHandler(guard: Guard): NodeMiddleware {
  return async function serveProtectedResourceMetadata(req, res, next) {
    const path = new URL(requestUrl(guard, req)).pathname;
    if (path !== guard.metadataPath) return next();
    if (req.method === 'OPTIONS') return send(res, 204, null, METADATA_CORS_HEADERS);
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    send(res, 200, guard.protectedResourceMetadata(), {
      ...METADATA_CORS_HEADERS,
      'Cache-Control': METADATA_CACHE_CONTROL,
    });
  };
}

/**
 * Lets a request through only with a valid access token carrying `opts.scopes` (and granting
 * `opts.tools`), setting `req.auth` (`req.auth.extra.access` is the verified token); otherwise
 * answers 401/403 with the `WWW-Authenticate` challenge (RFC 6750 §3, RFC 9728 §5.1).
 *
 * @example
 * ```ts
 * app.post('/api/notes', requireAccess(guard, { scopes: ['notes:write'] }), (req, res) => res.json({ user: req.auth.extra.access.sub }));
 * ```
 */
export function requireAccess(guard: Guard, opts: VerifyRequirements & { url?: string } = {}): NodeMiddleware {
  return async function requireAccessToken(req, res, next) {
    try {
      const authorization = header(req, 'authorization');
      const result = await guard.verify(
        {
          authorization,
          dpop: header(req, 'dpop'),
          method: req.method ?? 'GET',
          url: opts.url ?? requestUrl(guard, req),
        },
        opts,
      );
      if (!result.ok) return sendRefusal(res, refusalOf(result));
      req.auth = toAuthInfo(result, authorization ?? '', guard.resource);
    } catch (err) {
      return next(err);
    }
    next();
  };
}

/** The request's JSON body: the one a body parser (`express.json()`) left in `req.body`, or read here. */
function bodyOf(req: GuardedRequest, max: number): Promise<BodyResult> {
  if (req.body !== undefined) return Promise.resolve({ ok: true, value: req.body });
  return readJsonBody(req, Number(header(req, 'content-length') ?? 0), max);
}

/**
 * Middleware for an MCP endpoint (Streamable HTTP): reads the JSON-RPC body (or takes the one
 * `express.json()` parsed), and lets it through only if the token may make every `tools/call` in it
 * (see `authorizeMcpRequest`). Sets `req.auth` and `req.body`: pass `req.body` to the transport,
 * since the stream has been read.
 *
 * @example
 * ```ts
 * // @modelcontextprotocol/sdk 1.x behind Express
 * app.all('/mcp', requireMcpAccess(guard, { toolScopes: { list_notes: 'notes:read' } }), async (req, res) => {
 *   const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
 *   await buildServer().connect(transport);
 *   await transport.handleRequest(req, res, req.body);
 * });
 * ```
 */
export function requireMcpAccess(guard: Guard, opts: GuardMcpOptions): NodeMiddleware {
  const max = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  return async function requireMcpAccessToken(req, res, next) {
    try {
      const body = await bodyOf(req, max);
      if (!body.ok) return sendRefusal(res, body.refusal);
      const authorization = header(req, 'authorization');
      const decision = await authorizeMcpRequest(
        guard,
        { authorization, dpop: header(req, 'dpop'), method: req.method ?? 'GET', url: requestUrl(guard, req) },
        body.value,
        opts,
      );
      if (!decision.ok) return sendRefusal(res, decision.refusal);
      req.auth = toAuthInfo(decision.access, authorization ?? '', guard.resource);
      req.body = body.value;
    } catch (err) {
      return next(err);
    }
    next();
  };
}
