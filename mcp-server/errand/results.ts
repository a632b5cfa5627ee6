import { type CallToolResult, type InputRequiredResult, ProtocolError } from '@modelcontextprotocol/server';
import { storageRefusal } from '../../broker/http/on-error.js';
import type { Refusal as EngineRefusal, RefusalCode, Result } from '../../broker/services/agent-refusals.js';
import type { ToolEnv } from './tool-env.js';

/** A structured "no" as the tools return it: what went wrong, what is missing, and how to get it. */
export interface ToolRefusal {
  error: string;
  error_description: string;
  missing?: Record<string, unknown>;
  how: string;
}

/** A structured result with the same JSON in a text block (MCP Tools §Structured Content). */
export function success<T extends Record<string, unknown>>(data: T): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(data) }], structuredContent: data };
}

/** The `_meta` key under which a refusal carries its machine-readable form. */
export const REFUSAL_META_KEY = 'errand/refusal';

/**
 * A refusal as an `isError` result, so the model can correct itself (MCP Tools §Error Handling):
 * the reason, what is missing and how to get it as text, and the same as data in `_meta`. It has no
 * `structuredContent`: that must conform to the tool's output schema (MCP Tools §Output Schema),
 * which describes a success, and clients that validate it (SDK 1.x `callTool`) would throw instead
 * of showing the reason.
 */
export function refusal(r: ToolRefusal): CallToolResult {
  return {
    content: [{ type: 'text', text: refusalText(r) }],
    isError: true,
    _meta: { [REFUSAL_META_KEY]: { ...r } },
  };
}

function refusalText(r: ToolRefusal): string {
  const lines = [`refused (${r.error}): ${r.error_description}`];
  if (r.missing) lines.push(`missing: ${JSON.stringify(r.missing)}`);
  lines.push(`what to do: ${r.how}`);
  return lines.join('\n');
}

/** What the agent can do about a refusal, worded for the MCP tools. */
const HOW: Record<Exclude<RefusalCode, 'refused'>, string> = {
  insufficient_scope: 'get an access token for this endpoint with the scope named in missing',
  client_not_allowed: 'use a confidential agent registered for token exchange (ask an administrator)',
  user_required: 'call request_delegation again with user set',
  other_user: 'omit user: the request goes to the user the access token speaks for',
  unknown_user: 'check the username with the person and call again',
  too_many_unknown: 'wait, then call again with a username you have checked with the person',
  no_delegation:
    'call request_delegation for this resource and scope, have the user approve it, then call start_task with its delegation_id',
  approval_pending: 'ask the user to approve the request at the approval URL, then call start_task again',
  delegation_inactive: 'call request_delegation for a new delegation',
  no_task: 'call start_task under an active delegation, or list_tasks to find your tasks',
  not_root_task: 'ask the agent that handed you the sub-task for a new token',
  unknown_sub_agent: 'ask an administrator to register the sub-agent, then call again with its client id',
  actor_required: "have the sub-agent sign an actor token and pass it as actor_token (see the README's Actor tokens)",
  actor_mismatch: 'pass the actor token of the agent named in sub_agent_id',
};

/** Guidance for a refusal the engine carries as a plain protocol error, by its error code. */
export type Guidance = (error: string) => Pick<ToolRefusal, 'how' | 'missing'>;

/** A tool's answer for an engine result: the value through `ok`, a refusal worded for MCP otherwise. */
export function answer<T>(
  result: Result<T>,
  ok: (value: T) => CallToolResult,
  guidance: Guidance = () => ({ how: 'correct the arguments and call again' }),
): CallToolResult {
  if (result.ok) return ok(result.value);
  return refusal(worded(result.refusal, guidance));
}

function worded(r: EngineRefusal, guidance: Guidance): ToolRefusal {
  const extra = r.code === 'refused' ? guidance(r.error) : { how: HOW[r.code] };
  const missing = r.missing || extra.missing ? { ...extra.missing, ...r.missing } : undefined;
  return { error: r.error, error_description: r.description, ...(missing ? { missing } : {}), how: extra.how };
}

/**
 * Runs a tool body. Protocol errors (URL elicitation, -32602) pass to the SDK; storage that is
 * temporarily unavailable, or text the database cannot hold, is answered as such; anything else thrown is a bug: logged with the
 * request id and answered with a fixed description.
 */
export async function guarded(
  env: ToolEnv,
  body: () => Promise<CallToolResult | InputRequiredResult>,
): Promise<CallToolResult | InputRequiredResult> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    const refused = storageRefusal(err);
    if (refused?.code === 'invalid_request') {
      return refusal({ error: refused.code, error_description: refused.message, how: 'remove the NUL character' });
    }
    env.deps.log.error('mcp.tool_failed', { err, requestId: env.requestId });
    if (refused) {
      return refusal({
        error: refused.code,
        error_description: refused.message,
        how: `try again in ${refused.headers['Retry-After']} seconds`,
      });
    }
    return refusal({
      error: 'server_error',
      error_description: 'an internal error occurred; it has been logged',
      how: 'try again later',
    });
  }
}

/** What to do about a refused exchange, by its error code. */
export function exchangeGuidance(target: { resource?: string | undefined; scope?: string | undefined }): Guidance {
  return (error) => {
    switch (error) {
      case 'invalid_target':
        return {
          missing: { resource: target.resource ?? 'a resource the delegation covers' },
          how: 'pass a resource the delegation covers (see list_delegations), or call request_delegation for this resource',
        };
      case 'invalid_scope':
        return {
          missing: { scope: target.scope ?? null },
          how: 'ask only for scopes the delegation grants (see list_delegations), or call request_delegation for more',
        };
      default:
        return { how: 'check the delegation and task with list_delegations and list_tasks, then call again' };
    }
  };
}
