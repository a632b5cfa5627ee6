import type { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { answer, guarded, success } from '../results.js';
import type { ToolEnv } from '../tool-env.js';

export const TaskSchema = z.object({
  task_id: z.string(),
  delegation_id: z.string(),
  parent_task_id: z.string().nullable(),
  root_task_id: z.string(),
  depth: z.number().int(),
  state: z.string(),
  actor_chain: z.array(z.string()),
  created_at: z.number().int(),
  deadline: z.number().int(),
  ended_at: z.number().int().nullable(),
  end_reason: z.string().nullable(),
});

export const ListTasksOutputSchema = z.object({ tasks: z.array(TaskSchema) });

/** `list_tasks`: the caller agent's tasks, newest first. */
export function registerListTasks(server: McpServer, env: ToolEnv): void {
  const { deps, caller } = env;
  server.registerTool(
    'list_tasks',
    {
      title: 'List my tasks',
      description: 'Lists the tasks you hold (live and ended), with their state, deadline and delegation.',
      inputSchema: z.strictObject({}),
      outputSchema: ListTasksOutputSchema,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async () =>
      guarded(env, async () =>
        answer(await deps.agentOps.listTasks(caller), (tasks) =>
          success({
            tasks: tasks.map((t) => ({
              task_id: t.id,
              delegation_id: t.delegationId,
              parent_task_id: t.parentTaskId,
              root_task_id: t.rootTaskId,
              depth: t.depth,
              state: t.state,
              actor_chain: t.actorChain,
              created_at: t.createdAt,
              deadline: t.deadline,
              ended_at: t.endedAt,
              end_reason: t.endReason,
            })),
          } satisfies z.infer<typeof ListTasksOutputSchema>),
        ),
      ),
  );
}
