/**
 * Errand guard: the resource-server side of Errand, for tool servers running in their own process.
 * It speaks only the wire (RFC 8414 discovery, JWKS, RFC 9068 tokens, DPoP, the Token Status List,
 * Errand's revocation push channel) and imports nothing of the broker but pure helpers.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { createGuard, guardMcpMiddleware, guardMiddleware, protectedResourceMetadataRoute, type GuardEnv, type GuardMcpEnv } from '../../../broker/guard/broker/guard/index.js';
 *
 * const guard = createGuard({
 *   issuer: 'https://errand.example',
 *   resource: 'https://tools.example/mcp',
 *   scopesSupported: ['notes:read', 'notes:write'],
 *   // optional: sub-second revocation over Errand's push channel (a resource_server client)
 *   push: { clientId: 'rs_…', privateKey, kid: 'k1' },
 * });
 * await guard.connect(); // only with `push`
 *
 * const app = new Hono<GuardEnv>();
 * app.route('/', protectedResourceMetadataRoute(guard)); // /.well-known/oauth-protected-resource/mcp
 * app.post('/api/notes', guardMiddleware(guard, { scopes: ['notes:read'] }), (c) =>
 *   c.json({ user: c.var.auth.sub, agent: c.var.auth.clientId, task: c.var.auth.taskId, tools: c.var.auth.tools }),
 * );
 *
 * // An MCP endpoint: every tools/call needs its tool's scope, and the tool must be one the token's
 * // RFC 9396 mcp_tool details grant here (when it carries any).
 * const mcp = new Hono<GuardMcpEnv>();
 * mcp.all('/mcp', guardMcpMiddleware(guard, { toolScopes: { list_notes: 'notes:read', write_note: 'notes:write' } }), (c) =>
 *   mcpHandler.fetch(c.req.raw, { parsedBody: c.var.parsedBody }),
 * );
 * ```
 */

export type { ChallengeInput, GuardErrorCode, GuardFailure } from './challenge.js';
/** Builds a `WWW-Authenticate` value (Bearer, or DPoP + Bearer). */
export { buildChallenge } from './challenge.js';
export type { AuthorizationServerMetadata } from './discovery.js';
export type { DpopProofCheck, DpopResult, ProofReplay } from './dpop.js';
/** DPoP proof verification (RFC 9449 §4.3), its replay cache, the `ath` hash and accepted algorithms. */
export { accessTokenHash, DPOP_ALGS, ReplayCache, verifyDpopProof } from './dpop.js';
export type { GuardOptions, GuardRequest, GuardResult, VerifiedAccess, VerifyRequirements } from './guard.js';
/**
 * The guard: `createGuard(options)` returns a `Guard` with `verify(req, { scopes, tools })`, `mayCallTool`,
 * `protectedResourceMetadata`, `connect`, `onRevoked`.
 */
export { createGuard, Guard } from './guard.js';
export type { GuardEnv } from './hono.js';
/** Hono adapters: the auth middleware and the RFC 9728 metadata route. */
export { guardMiddleware, protectedResourceMetadataRoute } from './hono.js';
export type { GuardMcpEnv, GuardMcpOptions } from './mcp-middleware.js';
/** MCP endpoints: every `tools/call` of a JSON-RPC body (or batch) checked for its scopes and tool grant. */
export { guardMcpMiddleware } from './mcp-middleware.js';
export type { ProtectedResourceMetadata } from './metadata.js';
/** Well-known locations: RFC 9728 metadata path for a resource, RFC 8414 metadata URL for an issuer. */
export { authorizationServerMetadataUrl, protectedResourceMetadataPath } from './metadata.js';
export type { PushOptions, RevokedNotice } from './push.js';
/** The push channel's path and the CAEP event type it carries. */
export { CAEP_SESSION_REVOKED, REVOCATION_EVENTS_PATH } from './push.js';
/** Status list decoding (Status List §4.1): inflate `lst`, read the bits at an index. */
export { inflateStatusList, readStatusAt } from './status-list.js';
export type { AccessTokenClaims } from './verify.js';
/** Access token checks without the request around them, the accepted algorithms, and scope coverage. */
export { ACCESS_TOKEN_ALGS, checkAccessToken, scopeCovers } from './verify.js';
