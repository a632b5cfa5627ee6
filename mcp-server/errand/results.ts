import { type CallToolResult, type InputRequiredResult, ProtocolError } from '@modelcontextprotocol/server';
import { OAuthError } from '../../broker/core/errors.js';
import type { ToolEnv } from './tool-env.js';

/** A structured "no": what went wrong, what is missing, and how the agent can get it. */
export interface Refusal {
  error: string;
  error_description: string;
  missing?: Record<string, unknown>;
  how: string;
}

/** A structured result with the same JSON in a text block (MCP Tools §Structured Content). */
export function success<T extends Record<string, unknown>>(data: T): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(data) }], structuredContent: data };
}

/** A refusal as an `isError` result, so the model can correct itself (SEP-1303). */
export function refusal(r: Refusal): CallToolResult {
  return { ...success({ ...r }), isError: true };
}

/** How to get past a refused service call: extra guidance per error, given the OAuthError. */
export type Guidance = (err: OAuthError) => Pick<Refusal, 'how' | 'missing'>;

/**
 * Runs a tool body. Errors from services (OAuthError) become refusals with their code and
 * description; protocol errors (URL elicitation, -32602) pass to the SDK; anything else is a bug:
 * logged with the request id and answered with a fixed description.
 */
export async function guarded(
  env: ToolEnv,
  guidance: Guidance,
  body: () => Promise<CallToolResult | InputRequiredResult>,
): Promise<CallToolResult | InputRequiredResult> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    if (err instanceof OAuthError) {
      return refusal({ error: err.code, error_description: err.message, ...guidance(err) });
    }
    env.deps.log.error('mcp.tool_failed', { err, requestId: env.requestId });
    return refusal({
      error: 'server_error',
      error_description: 'an internal error occurred; it has been logged',
      how: 'try again later',
    });
  }
}
