import { type GuardAuthInfo, toAuthInfo } from './auth-info.js';
import type { Guard, VerifiedAccess, VerifyRequirements } from './guard.js';
import {
  authorizeMcpRequest,
  DEFAULT_MAX_BODY,
  type GuardMcpOptions,
  type Refusal,
  readJsonBody,
  refusalOf,
} from './mcp.js';
import { METADATA_CACHE_CONTROL, METADATA_CORS_HEADERS } from './metadata.js';

/**
 * Fetch API adapters: wrap a `(request: Request) => Response` handler, the shape Deno, Bun,
 * Cloudflare Workers, `@hono/node-server`'s `serve({ fetch })` and the MCP SDK 2.x transports use.
 */

/** A Fetch handler. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** What a guarded MCP handler receives beside the request (the 2.x MCP SDK's `handleRequest` options). */
export interface GuardedMcpContext {
  authInfo: GuardAuthInfo;
  /** The JSON-RPC body the guard checked; hand it to the transport so it runs exactly that. */
  parsedBody?: unknown;
}

/** The JSON answer of a refusal. */
export function refusalResponse(refusal: Refusal): Response {
  return Response.json(refusal.body, { status: refusal.status, headers: refusal.headers });
}

/**
 * The RFC 9728 metadata document (GET) or its CORS preflight (OPTIONS) when `request` is for the
 * guard's metadata path; null for any other request.
 */
export function protectedResourceMetadataResponse(guard: Guard, request: Request): Response | null {
  if (new URL(request.url).pathname !== guard.metadataPath) return null;
  if (request.method === 'OPTIONS') return new Response(null, { status: 204, headers: METADATA_CORS_HEADERS });
  if (request.method !== 'GET' && request.method !== 'HEAD') return null;
  return Response.json(guard.protectedResourceMetadata(), {
    headers: { ...METADATA_CORS_HEADERS, 'Cache-Control': METADATA_CACHE_CONTROL },
  });
}

/**
 * Wraps a Fetch handler: it serves the guard's RFC 9728 metadata, and lets other requests through
 * only with a valid access token carrying `opts.scopes` (and granting `opts.tools`); `handler` gets
 * the verified token. A refusal is 401/403 with the `WWW-Authenticate` challenge (RFC 6750 §3,
 * RFC 9728 §5.1).
 *
 * @example
 * ```ts
 * const handler = guardFetch(guard, (req, access) => Response.json({ user: access.sub }), { scopes: ['notes:read'] });
 * serve({ fetch: handler, port: 8790 }); // or: export default { fetch: handler } (Workers, Bun, Deno)
 * ```
 */
export function guardFetch(
  guard: Guard,
  handler: (request: Request, access: VerifiedAccess) => Response | Promise<Response>,
  opts: VerifyRequirements & { url?: string } = {},
): FetchHandler {
  return async function guardedFetch(request) {
    const metadata = protectedResourceMetadataResponse(guard, request);
    if (metadata) return metadata;
    const result = await guard.verify(
      {
        authorization: request.headers.get('authorization'),
        dpop: request.headers.get('dpop'),
        method: request.method,
        url: opts.url ?? request.url,
      },
      opts,
    );
    if (!result.ok) return refusalResponse(refusalOf(result));
    return handler(request, result);
  };
}

/** The chunks of a request body, read from a copy so the handler can still read the original. */
async function* chunksOf(request: Request): AsyncGenerator<Uint8Array> {
  const reader = request.clone().body?.getReader();
  if (!reader) return;
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read()) yield r.value;
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/**
 * Wraps an MCP endpoint's Fetch handler (Streamable HTTP, e.g. the 2.x SDK's
 * `WebStandardStreamableHTTPServerTransport` or `createMcpHandler`): it serves the RFC 9728
 * metadata and lets a request through only if its token may make every `tools/call` in it
 * (see `authorizeMcpRequest`). `handler` gets the MCP `AuthInfo` and the parsed body.
 *
 * @example
 * ```ts
 * const mcp = createMcpHandler(() => buildServer());
 * const handler = guardMcpFetch(guard, (req, ctx) => mcp.fetch(req, ctx), { toolScopes: { list_notes: 'notes:read' } });
 * ```
 */
export function guardMcpFetch(
  guard: Guard,
  handler: (request: Request, ctx: GuardedMcpContext) => Response | Promise<Response>,
  opts: GuardMcpOptions,
): FetchHandler {
  const max = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  return async function guardedMcpFetch(request) {
    const metadata = protectedResourceMetadataResponse(guard, request);
    if (metadata) return metadata;
    const declared = Number(request.headers.get('content-length') ?? 0);
    const body = await readJsonBody(chunksOf(request), declared, max);
    if (!body.ok) return refusalResponse(body.refusal);
    const authorization = request.headers.get('authorization');
    const decision = await authorizeMcpRequest(
      guard,
      { authorization, dpop: request.headers.get('dpop'), method: request.method, url: request.url },
      body.value,
      opts,
    );
    if (!decision.ok) return refusalResponse(decision.refusal);
    const authInfo = toAuthInfo(decision.access, authorization ?? '', guard.resource);
    return handler(request, body.value === undefined ? { authInfo } : { authInfo, parsedBody: body.value });
  };
}
