import { canonicalizeResource } from '../../broker/core/resource.js';
import type { AppDeps } from '../../broker/http/app.js';
import { newId } from '../../broker/tokens/random.js';

/** Errand's own MCP endpoint: its path below the issuer and the scopes it understands. */
export const MCP_PATH = '/mcp';

export const ERRAND_SCOPE = {
  /** Ask users for delegations and read them. */
  delegate: 'errand:delegate',
  /** Start, re-open, hand down and end tasks (task tokens). */
  tasks: 'errand:tasks',
} as const;

/** Every scope of the endpoint, in the order challenges and metadata list them. */
export const ERRAND_SCOPES = [ERRAND_SCOPE.delegate, ERRAND_SCOPE.tasks] as const;

/** The tools and the scope each needs; null = any valid token for the endpoint. */
export const TOOL_SCOPES = {
  whoami: null,
  request_delegation: ERRAND_SCOPE.delegate,
  list_delegations: ERRAND_SCOPE.delegate,
  start_task: ERRAND_SCOPE.tasks,
  get_task_token: ERRAND_SCOPE.tasks,
  delegate_to_subagent: ERRAND_SCOPE.tasks,
  end_task: ERRAND_SCOPE.tasks,
  list_tasks: ERRAND_SCOPE.tasks,
} as const satisfies Record<string, string | null>;
export type ToolName = keyof typeof TOOL_SCOPES;

/** The scope a tool needs, or null; unknown names need none (the SDK answers them with -32602). */
export function scopeForTool(name: string): string | null {
  return Object.hasOwn(TOOL_SCOPES, name) ? TOOL_SCOPES[name as ToolName] : null;
}

/** The endpoint URL as clients use it: `<issuer>/mcp` (MCP-Auth: the canonical server URI). */
export function mcpUrl(issuer: string): string {
  return `${issuer}${MCP_PATH}`;
}

/** The resource id tokens carry in `aud` (RFC 8707, compared in canonical form). */
export function mcpResourceId(issuer: string): string {
  const id = canonicalizeResource(mcpUrl(issuer));
  if (!id) throw new Error(`the issuer ${issuer} does not give a valid MCP resource URL`);
  return id;
}

/**
 * Registers `<issuer>/mcp` as a resource with Errand's scopes when it is missing (start-up,
 * idempotent). A resource an administrator already created at that URL is left as it is.
 */
export async function ensureMcpResource(
  clients: Pick<AppDeps['clients'], 'getResource' | 'insertResource'>,
  issuer: string,
  now: number,
): Promise<void> {
  const url = mcpResourceId(issuer);
  if (await clients.getResource(url)) return;
  try {
    await clients.insertResource({
      id: newId('res'),
      url,
      name: 'Errand MCP',
      scopes: [...ERRAND_SCOPES],
      createdAt: now,
    });
  } catch (err) {
    // Another broker process sharing the database may have inserted it meanwhile.
    if (!(await clients.getResource(url))) throw err;
  }
}
