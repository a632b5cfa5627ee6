import { canonicalizeResource, DETAILS_TYPE } from '@errand/protocol';
import { z } from 'zod';
import type { ToolDetail } from '../core/delegation.js';
import { OAuthError } from '../core/errors.js';

/**
 * RFC 9396 `authorization_details`. Errand knows two types: `mcp_tool` (named tools at one
 * resource) and, in token exchange only, `errand_task` (which task the token is for). Anything
 * else is `invalid_authorization_details` (§5).
 */
const Name = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.\-/:]+$/, 'must be a tool or task name');
const ToolSchema = z
  .object({
    type: z.literal(DETAILS_TYPE.mcpTool),
    locations: z.array(z.string().max(2048)).length(1),
    actions: z.array(Name).min(1).max(100),
  })
  .strict();
const TaskSchema = z
  .object({
    type: z.literal(DETAILS_TYPE.task),
    task_id: z.string().min(1).max(64).optional(),
    /** Requested lifetime of a new task, in seconds (capped by ERRAND_TASK_MAX_TTL). */
    ttl: z
      .number()
      .int()
      .min(1)
      .max(365 * 86_400)
      .optional(),
    /** External ids to record on a new task (an A2A or MCP task id). */
    external_ids: z.record(z.string().max(32), z.string().max(256)).optional(),
  })
  .strict();

export interface TaskDetail {
  taskId: string | null;
  ttl: number | null;
  externalIds: Record<string, string>;
}

export interface ParsedDetails {
  tools: ToolDetail[] | null;
  task: TaskDetail | null;
}

function fail(description: string): OAuthError {
  return new OAuthError('invalid_authorization_details', description);
}

/** Parses the parameter; `allowTask` is true only at the token endpoint's exchange. */
export function parseAuthorizationDetails(raw: string | undefined, allowTask: boolean): ParsedDetails {
  if (raw === undefined) return { tools: null, task: null };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw fail('authorization_details must be a JSON array');
  }
  if (!Array.isArray(value) || value.length === 0 || value.length > 20) {
    throw fail('authorization_details must be a JSON array of 1 to 20 objects');
  }
  const tools: ToolDetail[] = [];
  let task: TaskDetail | null = null;
  for (const entry of value) {
    const type = (entry as { type?: unknown })?.type;
    if (type === DETAILS_TYPE.mcpTool) {
      const parsed = ToolSchema.safeParse(entry);
      if (!parsed.success)
        throw fail(`mcp_tool: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
      const location = canonicalizeResource(parsed.data.locations[0]!);
      if (!location) throw fail('mcp_tool: locations must hold one absolute resource URL');
      if (tools.some((t) => t.locations[0] === location)) throw fail('mcp_tool: one entry per location');
      tools.push({ type: 'mcp_tool', locations: [location], actions: [...new Set(parsed.data.actions)].sort() });
    } else if (type === DETAILS_TYPE.task && allowTask) {
      const parsed = TaskSchema.safeParse(entry);
      if (!parsed.success)
        throw fail(`errand_task: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
      if (task) throw fail('errand_task: at most one entry');
      task = {
        taskId: parsed.data.task_id ?? null,
        ttl: parsed.data.ttl ?? null,
        externalIds: parsed.data.external_ids ?? {},
      };
    } else {
      throw fail(`authorization_details type "${String(type).slice(0, 64)}" is not supported`);
    }
  }
  return { tools: tools.length ? tools : null, task };
}
