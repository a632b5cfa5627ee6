/**
 * Errand guard (`@errand/guard`): the resource-server side of Errand, for tool servers running in
 * their own process. It speaks only the wire (RFC 8414 discovery, JWKS, RFC 9068 tokens, DPoP, the
 * Token Status List, Errand's revocation push channel) and imports nothing of the broker.
 *
 * This entry point has the guard and the Fetch API adapters; `@errand/guard/node` has Node `http`
 * and Express middleware, `@errand/guard/hono` the Hono middleware.
 *
 * @example
 * ```ts
 * import { createGuard, guardFetch, guardMcpFetch } from '@errand/guard';
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
 * // A Fetch handler (Workers, Bun, Deno, `serve({ fetch })`): the RFC 9728 metadata, then the token check.
 * const api = guardFetch(guard, (req, access) => Response.json({ user: access.sub }), { scopes: ['notes:read'] });
 *
 * // An MCP endpoint: every tools/call needs its tool's scope, and the tool must be one the token's
 * // RFC 9396 mcp_tool details grant here (when it carries any).
 * const mcp = guardMcpFetch(guard, (req, ctx) => mcpHandler.fetch(req, ctx), {
 *   toolScopes: { list_notes: 'notes:read', write_note: 'notes:write' },
 * });
 * ```
 */

export type { GuardAuthInfo } from './auth-info.js';
/** The MCP SDKs' `AuthInfo` of a verified request, and the verified token back from it. */
export { accessOf, toAuthInfo } from './auth-info.js';
export type { AuthzenCheck, AuthzenCheckOptions, AuthzenClientAuth, AuthzenOutcome } from './authzen.js';
/** Asks Errand's policy decision point (OpenID AuthZEN) before each MCP tool call (`authzen` option). */
export { authzenCheck } from './authzen.js';
export type { ChallengeInput, GuardErrorCode, GuardFailure } from './challenge.js';
/** Builds a `WWW-Authenticate` value (Bearer, or DPoP + Bearer). */
export { buildChallenge } from './challenge.js';
export type { AuthorizationServerMetadata } from './discovery.js';
export type { DpopProofCheck, DpopResult, ProofReplay } from './dpop.js';
/** DPoP proof verification (RFC 9449 §4.3), its replay cache, the `ath` hash and accepted algorithms. */
export { accessTokenHash, DPOP_ALGS, ReplayCache, verifyDpopProof } from './dpop.js';
export type { FetchHandler, GuardedMcpContext } from './fetch.js';
/** Fetch API adapters: a guarded handler, a guarded MCP endpoint, the RFC 9728 metadata response. */
export { guardFetch, guardMcpFetch, protectedResourceMetadataResponse, refusalResponse } from './fetch.js';
export type { GuardOptions, GuardRequest, GuardResult, VerifiedAccess, VerifyRequirements } from './guard.js';
/**
 * The guard: `createGuard(options)` returns a `Guard` with `verify(req, { scopes, tools })`, `mayCallTool`,
 * `protectedResourceMetadata`, `connect`, `onRevoked`.
 */
export { createGuard, Guard } from './guard.js';
export type { BodyResult, GuardDecision, GuardMcpOptions, Refusal } from './mcp.js';
/** MCP endpoints, framework-free: every `tools/call` of a JSON-RPC body (or batch) checked for its scopes and tool grant. */
export { authorizeMcpRequest, parseJsonText, readJsonBody, refusalOf } from './mcp.js';
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
