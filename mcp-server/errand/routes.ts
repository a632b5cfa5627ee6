import { DPOP, ERRAND_SCOPES, isToolAllowed, PATHS, toolCallNames } from '@errand/protocol';
import { hostHeaderValidation } from '@modelcontextprotocol/hono';
import {
  getOAuthProtectedResourceMetadataUrl,
  isJsonContentType,
  localhostAllowedHostnames,
} from '@modelcontextprotocol/server';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import type { Engine } from '../../broker/engine.js';
import { type AppEnv, NO_STORE } from '../../broker/http/types.js';
import { mcpResourceId, mcpUrl } from '../../broker/services/built-in-resources.js';
import { type AccessFailure, accessChallenge, missingScopes } from '../../broker/services/resource-access.js';
import { toAuthInfo } from './auth.js';
import { LegacyCapabilities } from './capabilities.js';
import { createErrandMcpHandler } from './server.js';
import type { ErrandMcpDeps } from './tool-env.js';
import { scopeForTool } from './tool-scopes.js';

const LOOPBACK = new Set(localhostAllowedHostnames());

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
 * Errand's own MCP endpoint at `<issuer>/mcp` as an OAuth resource server (MCP Authorization,
 * RFC 9728): its Protected Resource Metadata, Host and Origin checks, the engine's token checks
 * (tokens issued for this endpoint alone, DPoP when bound), a 403 challenge decided from the
 * JSON-RPC body (each called tool's scope and tool grant), then the SDK's dual-era handler.
 */
export function errandMcpRoutes(deps: ErrandMcpDeps & Pick<Engine, 'access'>) {
  const { issuer } = deps.config;
  const endpoint = { resource: mcpResourceId(issuer), url: mcpUrl(issuer) };
  const resourceMetadataUrl = getOAuthProtectedResourceMetadataUrl(new URL(endpoint.url));
  const legacyCapabilities = new LegacyCapabilities();
  const handler = createErrandMcpHandler(deps, legacyCapabilities);
  const issuerUrl = new URL(issuer);
  // DNS-rebinding protection as the SDK's Hono app does it, for the issuer's host name.
  const allowedHosts = LOOPBACK.has(issuerUrl.hostname) ? [...LOOPBACK] : [issuerUrl.hostname];

  const refuse = (c: Context<AppEnv>, failure: AccessFailure, scope: readonly string[]) =>
    c.json(
      { error: failure.omitError ? 'unauthorized' : failure.error, error_description: failure.description },
      failure.status,
      { ...NO_STORE, 'WWW-Authenticate': accessChallenge(resourceMetadataUrl, scope, failure) },
    );
  const insufficient = (description: string): AccessFailure => ({
    status: 403,
    error: 'insufficient_scope',
    description,
    dpop: false,
  });

  const app = new Hono<AppEnv>();
  // RFC 9728 §3: the path-specific metadata for <issuer>/mcp (no offline_access: MCP Authorization).
  app.get(new URL(resourceMetadataUrl).pathname, (c) =>
    c.json(
      {
        resource: endpoint.url,
        authorization_servers: [issuer],
        scopes_supported: [...ERRAND_SCOPES],
        bearer_methods_supported: ['header'],
        resource_name: 'Errand',
        dpop_signing_alg_values_supported: [...DPOP.algs],
      },
      200,
      { 'Cache-Control': 'public, max-age=300' },
    ),
  );
  app.use(PATHS.mcp, hostHeaderValidation(allowedHosts), originCheck(issuerUrl.origin));
  app.all(PATHS.mcp, async (c) => {
    const authorization = c.req.header('authorization');
    const verified = await deps.access.verify(
      { authorization, dpop: c.req.header(DPOP.header), method: c.req.method },
      endpoint,
    );
    if (!verified.ok) {
      if (!verified.failure.omitError)
        c.var.log.info('mcp.token_rejected', { description: verified.failure.description });
      return refuse(c, verified.failure, ERRAND_SCOPES);
    }
    const caller = { ...verified.caller, door: 'mcp' as const, address: c.var.address };

    // The body is read from a clone and handed over parsed; an unparsable one is left to the SDK.
    let body: unknown;
    if (c.req.method === 'POST' && isJsonContentType(c.req.header('content-type'))) {
      try {
        body = JSON.parse(await c.req.raw.clone().text());
      } catch {
        body = undefined;
      }
    }
    // MCP Authorization §Scope Challenge: every scope the called tools need, and their tool grants.
    const tools = toolCallNames(body);
    const needed = [...new Set(tools.map(scopeForTool).filter((s): s is string => s !== null))];
    if (missingScopes(caller, needed).length > 0) {
      return refuse(c, insufficient(`this tool needs the scope ${needed.join(' ')}`), needed);
    }
    const notGranted = tools.filter((t) => !isToolAllowed(caller.tools, t));
    if (notGranted.length > 0) {
      return refuse(
        c,
        insufficient(`the access token does not grant the tool ${notGranted.join(', ')} (authorization_details)`),
        needed,
      );
    }
    if (body !== undefined) legacyCapabilities.observe(body, caller.jti, caller.expiresAt, deps.clock.now());
    const token = (authorization ?? '').replace(/^\S+ +/, '').trim();
    const authInfo = toAuthInfo(caller, token, {
      resource: endpoint.resource,
      resourceMetadataUrl,
      requestId: c.var.requestId,
    });
    return handler.fetch(c.req.raw, { authInfo, ...(body !== undefined ? { parsedBody: body } : {}) });
  });
  return app;
}
