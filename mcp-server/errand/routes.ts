import { hostHeaderValidation } from '@modelcontextprotocol/hono';
import {
  getOAuthProtectedResourceMetadataUrl,
  isJsonContentType,
  localhostAllowedHostnames,
} from '@modelcontextprotocol/server';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { OAuthError } from '../../broker/core/errors.js';
import type { AppDeps } from '../../broker/http/app.js';
import { type AppEnv, NO_STORE } from '../../broker/http/types.js';
import { TokenMinter } from '../../broker/tokens/access-token.js';
import { authenticate, bearerChallenge, missingScopes, toAuthInfo } from './auth.js';
import { LegacyCapabilities } from './capabilities.js';
import { ERRAND_SCOPES, MCP_PATH, mcpResourceId, mcpUrl, scopeForTool } from './resource.js';
import { createErrandMcpHandler } from './server.js';

const LOOPBACK = new Set(localhostAllowedHostnames());

/** Scopes the JSON-RPC message(s) of a body need: `tools/call` names its tool (MCP-Auth §Scope Challenge). */
function neededScopes(body: unknown): string[] {
  const messages = Array.isArray(body) ? body : [body];
  const needed = new Set<string>();
  for (const m of messages) {
    if (typeof m !== 'object' || m === null || (m as { method?: unknown }).method !== 'tools/call') continue;
    const name = (m as { params?: { name?: unknown } }).params?.name;
    const scope = typeof name === 'string' ? scopeForTool(name) : null;
    if (scope) needed.add(scope);
  }
  return [...needed];
}

/** MCP Streamable HTTP §Security: a present Origin must be Errand's own (browsers send one cross-site). */
function originCheck(allowedOrigin: string): MiddlewareHandler<AppEnv> {
  return async function mcpOriginCheck(c, next) {
    const origin = c.req.header('origin');
    if (origin !== undefined && origin !== allowedOrigin) {
      return c.json(
        { jsonrpc: '2.0', error: { code: -32000, message: 'Forbidden: Origin not allowed' }, id: null },
        403,
      );
    }
    await next();
  };
}

/**
 * Errand's own MCP endpoint at `<issuer>/mcp` as an OAuth resource server (MCP-Auth, RFC 9728):
 * its Protected Resource Metadata, Host and Origin checks, bearer tokens issued for it alone, a
 * 403 scope challenge decided from the JSON-RPC body, then the SDK's dual-era handler.
 */
export function errandMcpRoutes(deps: AppDeps) {
  const { issuer } = deps.config;
  const endpoint = mcpUrl(issuer);
  const resource = mcpResourceId(issuer);
  const resourceMetadataUrl = getOAuthProtectedResourceMetadataUrl(new URL(endpoint));
  const minter = new TokenMinter({ keys: deps.keys, issuer, clock: deps.clock });
  const legacyCapabilities = new LegacyCapabilities();
  const handler = createErrandMcpHandler(deps, legacyCapabilities);
  const issuerUrl = new URL(issuer);
  // DNS-rebinding protection as the SDK's Hono app does it, for the issuer's host name.
  const allowedHosts = LOOPBACK.has(issuerUrl.hostname) ? [...LOOPBACK] : [issuerUrl.hostname];

  const challenge = (c: Context<AppEnv>, status: 401 | 403, err: OAuthError | null, scope: readonly string[]) =>
    c.json(
      err ? err.toBody() : { error: 'unauthorized', error_description: `an access token for ${endpoint} is required` },
      status,
      {
        ...NO_STORE,
        'WWW-Authenticate': bearerChallenge({
          resourceMetadataUrl,
          scope,
          ...(err ? { error: err.code as 'invalid_token' | 'insufficient_scope', description: err.message } : {}),
        }),
      },
    );

  const app = new Hono<AppEnv>();
  // RFC 9728 §3: the path-specific metadata for <issuer>/mcp (no offline_access: MCP-Auth §Refresh Tokens).
  app.get(new URL(resourceMetadataUrl).pathname, (c) =>
    c.json(
      {
        resource: endpoint,
        authorization_servers: [issuer],
        scopes_supported: [...ERRAND_SCOPES],
        bearer_methods_supported: ['header'],
        resource_name: 'Errand',
      },
      200,
      { 'Cache-Control': 'public, max-age=300' },
    ),
  );
  app.use(MCP_PATH, hostHeaderValidation(allowedHosts), originCheck(issuerUrl.origin));
  app.all(MCP_PATH, async (c) => {
    const authorization = c.req.header('authorization');
    if (!authorization) return challenge(c, 401, null, ERRAND_SCOPES);
    let caller: Awaited<ReturnType<typeof authenticate>>;
    try {
      caller = await authenticate(deps, minter, resource, authorization);
    } catch (err) {
      if (err instanceof OAuthError) {
        c.var.log.info('mcp.token_rejected', { description: err.message });
        return challenge(c, 401, err, ERRAND_SCOPES);
      }
      throw err;
    }

    // The body is read from a clone and handed over parsed; an unparsable one is left to the SDK.
    let body: unknown;
    if (c.req.method === 'POST' && isJsonContentType(c.req.header('content-type'))) {
      try {
        body = JSON.parse(await c.req.raw.clone().text());
      } catch {
        body = undefined;
      }
    }
    const needed = neededScopes(body);
    if (missingScopes(caller, needed).length > 0) {
      return challenge(
        c,
        403,
        new OAuthError('insufficient_scope', `this tool needs the scope ${needed.join(' ')}`),
        needed,
      );
    }
    if (body !== undefined) legacyCapabilities.observe(body, caller.jti, caller.expiresAt, deps.clock.now());
    const token = authorization.replace(/^Bearer +/i, '').trim();
    const authInfo = toAuthInfo(caller, token, { resource, resourceMetadataUrl, requestId: c.var.requestId });
    return handler.fetch(c.req.raw, { authInfo, ...(body !== undefined ? { parsedBody: body } : {}) });
  });
  return app;
}
