/**
 * Errand's wire vocabulary, shared by the broker, `@errand/guard` and `@errand/agent`: protocol
 * constants (grant and token types, claim names, paths), scope strings (RFC 6749 §3.3), resource
 * indicators (RFC 8707), tool grants (RFC 9396 `mcp_tool`), the actor chain (RFC 8693 §4.1) and a
 * compact JWS signer/verifier. Pure functions: no I/O beyond `node:crypto`.
 */
export * from './act-chain.js';
export * from './jws.js';
export * from './protocol.js';
export * from './resource.js';
export * from './scopes.js';
export * from './tool-grants.js';
