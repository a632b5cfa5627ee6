import type { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { EndTaskArgs } from '../../../broker/services/agent-args.js';
import { answer, guarded, success } from '../results.js';
import type { ToolEnv } from '../tool-env.js';

export const EndTaskOutputSchema = z.object({
  task_id: z.string(),
  state: z.string(),
  ended_at: z.number().int().nullable(),
  end_reason: z.string().nullable(),
});

/** `end_task`: ends a task and its sub-tasks; every token issued for them stops working at once. */
export function registerEndTask(server: McpServer, env: ToolEnv): void {
  const { deps, caller } = env;
  server.registerTool(
    'end_task',
    {
      title: 'End a task',
      description:
        'Ends a task you take part in, with all its sub-tasks. Every token issued for them is revoked immediately.',
      inputSchema: EndTaskArgs,
      outputSchema: EndTaskOutputSchema,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    },
    async (args) =>
      guarded(env, async () =>
        answer(
          await deps.agentOps.endTask(caller, { taskId: args.task_id, state: args.state }, env.requestId),
          (task) =>
            success({
              task_id: task.id,
              state: task.state,
              ended_at: task.endedAt,
              end_reason: task.endReason,
            } satisfies z.infer<typeof EndTaskOutputSchema>),
          (error) => ({
            how:
              error === 'not_found'
                ? 'pass a task_id from start_task or list_tasks'
                : 'nothing to do: the task has already ended',
          }),
        ),
      ),
  );
}
