import { toolCallNames } from '@errand/protocol';
import type { AuthzenCheck } from './authzen.js';
import { describeTools, type GuardFailure } from './challenge.js';
import type { Guard, GuardRequest, VerifiedAccess } from './guard.js';

/**
 * The MCP side of the guard, free of any framework: which scopes and tool grants a JSON-RPC body
 * needs, and the answer to send when it is refused. The Fetch, Node/Express and Hono adapters read
 * the body their own way and decide here, so every adapter refuses the same requests.
 */

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
  /**
   * Ask Errand's policy decision point (AuthZEN) before each tool call, see `authzenCheck`: a call
   * its policies refuse is 403 `access_denied`; no answer is 503 (the call does not run).
   */
  authzen?: AuthzenCheck;
}

/** An HTTP answer refusing a request: status, `{ error, error_description }` body and headers. */
export interface Refusal {
  status: 400 | 401 | 403 | 413 | 503;
  body: { error: string; error_description: string };
  headers: Record<string, string>;
}

/** The outcome of checking a request: the verified token, or the refusal to send. */
export type GuardDecision = { ok: true; access: VerifiedAccess } | { ok: false; refusal: Refusal };

/** A JSON body read within a limit: its value (undefined when empty), or the refusal. */
export type BodyResult = { ok: true; value: unknown } | { ok: false; refusal: Refusal };

export const DEFAULT_MAX_BODY = 4 * 1024 * 1024;
export const NO_STORE = { 'Cache-Control': 'no-store' } as const;

/** The refusal answering a guard failure: its status, error and `WWW-Authenticate` challenge. */
export function refusalOf(f: GuardFailure): Refusal {
  return {
    status: f.status,
    body: { error: f.error, error_description: f.description },
    headers: { 'WWW-Authenticate': f.wwwAuthenticate, ...NO_STORE },
  };
}

function invalidRequest(status: 400 | 413, description: string): Refusal {
  return { status, body: { error: 'invalid_request', error_description: description }, headers: { ...NO_STORE } };
}

/**
 * Reads a JSON body from its chunks, at most `max` bytes (a larger declared or actual size is 413).
 * Whatever the guard cannot parse, it cannot authorize, so unparsable JSON is 400.
 */
export async function readJsonBody(
  chunks: AsyncIterable<Uint8Array>,
  declaredLength: number,
  max: number,
): Promise<BodyResult> {
  const tooLarge: BodyResult = {
    ok: false,
    refusal: invalidRequest(413, `the request body must not exceed ${max} bytes`),
  };
  if (declaredLength > max) return tooLarge;
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (size > max) return tooLarge;
    text += decoder.decode(chunk, { stream: true });
  }
  text += decoder.decode();
  return parseJsonText(text);
}

/** Parses a body already read as text (empty is `undefined`). */
export function parseJsonText(text: string): BodyResult {
  if (text.trim() === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, refusal: invalidRequest(400, 'the request body must be JSON-RPC (JSON)') };
  }
}

/**
 * Decides an MCP request (Streamable HTTP) from its headers and JSON-RPC body, single message or
 * batch: the token must carry the scopes of every tool it calls (MCP Authorization §Scope Challenge
 * Handling) and its `mcp_tool` details (RFC 9396), if any, must grant each of those tools. A refusal
 * is 403 `insufficient_scope` with a challenge naming what is missing (RFC 6750 §3.1).
 */
export async function authorizeMcpRequest(
  guard: Guard,
  req: GuardRequest,
  body: unknown,
  opts: GuardMcpOptions,
): Promise<GuardDecision> {
  // Object.hasOwn: a tool named like an Object.prototype member (`constructor`) is not listed.
  const isListed = (tool: string) => Object.hasOwn(opts.toolScopes, tool);
  const called = [...new Set(toolCallNames(body))];
  const needed = new Set(opts.scopes ?? []);
  for (const tool of called) {
    const s = isListed(tool) ? opts.toolScopes[tool] : undefined;
    for (const scope of typeof s === 'string' ? [s] : (s ?? [])) needed.add(scope);
  }
  const result = await guard.verify({ ...req, url: opts.url ?? req.url }, { scopes: [...needed], tools: called });
  if (!result.ok) return { ok: false, refusal: refusalOf(result) };
  // Fail closed on a tool whose scopes are unknown; no token could fix that, so it is not a
  // challenge (RFC 6750 §3.1 invalid_request).
  const unlisted = called.filter((tool) => !isListed(tool));
  if (unlisted.length > 0) {
    const description = `${describeTools(unlisted)} ${unlisted.length === 1 ? 'is' : 'are'} not offered at this resource`;
    return { ok: false, refusal: invalidRequest(400, description) };
  }
  if (opts.authzen && called.length > 0) {
    const outcome = await opts.authzen(result, guard.resource, called);
    if (!outcome.ok) {
      // No token would change the organisation's answer, so no challenge (not insufficient_scope).
      const error = outcome.status === 403 ? 'access_denied' : 'temporarily_unavailable';
      const body = { error, error_description: outcome.description };
      return { ok: false, refusal: { status: outcome.status, body, headers: { ...NO_STORE } } };
    }
  }
  return { ok: true, access: result };
}
