import { AGENT_OPERATIONS } from '../../broker/services/agent-ops.js';

/** The tools and the scope each needs (the engine's operation scopes); null = any valid token. */
export const TOOL_SCOPES = {
  whoami: null,
  request_delegation: AGENT_OPERATIONS.request_delegation,
  list_delegations: AGENT_OPERATIONS.list_delegations,
  start_task: AGENT_OPERATIONS.start_task,
  get_task_token: AGENT_OPERATIONS.renew_task_token,
  delegate_to_subagent: AGENT_OPERATIONS.delegate_to_subagent,
  end_task: AGENT_OPERATIONS.end_task,
  list_tasks: AGENT_OPERATIONS.list_tasks,
} as const satisfies Record<string, string | null>;
export type ToolName = keyof typeof TOOL_SCOPES;

/** The scope a tool needs, or null; unknown names need none (the SDK answers them with -32602). */
export function scopeForTool(name: string): string | null {
  return Object.hasOwn(TOOL_SCOPES, name) ? TOOL_SCOPES[name as ToolName] : null;
}
