import { DETAILS_TYPE } from './protocol.js';
import { canonicalizeResource } from './resource.js';

/**
 * Tool-level grants (RFC 9396 `authorization_details` of type `mcp_tool`) as a resource server
 * reads them from a token. The broker, its own protected endpoints and the guard all decide with
 * these two functions, so "which tools may this token call here" has one answer.
 */

/**
 * The tools a token's `authorization_details` allow at `resource`: `null` when no `mcp_tool` entry
 * names the resource (scopes alone decide), otherwise the union of the matching entries' actions —
 * possibly empty, which allows no tool. A malformed `mcp_tool` entry allows nothing (fail closed).
 */
export function toolsAllowedAt(details: unknown, resource: string): string[] | null {
  if (details === undefined || details === null) return null;
  if (!Array.isArray(details)) return [];
  const here = canonicalizeResource(resource) ?? resource;
  let allowed: Set<string> | null = null;
  for (const entry of details) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { type, locations, actions } = entry as { type?: unknown; locations?: unknown; actions?: unknown };
    if (type !== DETAILS_TYPE.mcpTool) continue;
    if (!Array.isArray(locations) || !Array.isArray(actions)) return [];
    const matches = locations.some((l) => typeof l === 'string' && (canonicalizeResource(l) ?? l) === here);
    if (!matches) continue;
    allowed ??= new Set();
    for (const a of actions) if (typeof a === 'string') allowed.add(a);
  }
  return allowed === null ? null : [...allowed];
}

/** Whether `tool` may be called under `allowed` (the result of `toolsAllowedAt`). */
export function isToolAllowed(allowed: readonly string[] | null, tool: string): boolean {
  return allowed === null || allowed.includes(tool);
}

/**
 * The tool names a JSON-RPC body calls (`tools/call`, MCP Tools §Calling Tools), for a single
 * message or a batch. Messages that are not tool calls, or name no tool, are ignored.
 */
export function toolCallNames(body: unknown): string[] {
  const messages = Array.isArray(body) ? body : [body];
  const names: string[] = [];
  for (const m of messages) {
    if (typeof m !== 'object' || m === null || (m as { method?: unknown }).method !== 'tools/call') continue;
    const name = (m as { params?: { name?: unknown } }).params?.name;
    if (typeof name === 'string') names.push(name);
  }
  return names;
}
