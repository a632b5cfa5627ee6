import type { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { guarded, refusal, success } from '../results.js';
import {
  exchangeGuidance,
  exchangeTarget,
  ResourceArg,
  ScopeArg,
  TaskTokenOutputSchema,
  taskTokenOutput,
} from '../task-tokens.js';
import type { ToolEnv } from '../tool-env.js';

export const GetTaskTokenInputSchema = z.strictObject({
  task_id: z.string().min(1).max(100).describe('A live task you started (see list_tasks).'),
  resource: ResourceArg.optional(),
  scope: ScopeArg.optional(),
});

/** `get_task_token`: a fresh token for a task the agent started, for the same or another delegated resource. */
export function registerGetTaskToken(server: McpServer, env: ToolEnv): void {
  const { deps, caller } = env;
  server.registerTool(
    'get_task_token',
    {
      title: 'Get a task token',
      description:
        'Returns a new short-lived access token for a live task you started: when the previous one expired, or ' +
        'for another resource of the same delegation. The task deadline still bounds it.',
      inputSchema: GetTaskTokenInputSchema,
      outputSchema: TaskTokenOutputSchema,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    async (args) =>
      guarded(env, exchangeGuidance(args), async () => {
        const task = await deps.tasks.get(args.task_id);
        if (!task || task.agentId !== caller.agent.id) {
          return refusal({
            error: 'no_task',
            error_description: `no task ${args.task_id} is held by this agent`,
            missing: { task: 'a task_id from start_task' },
            how: 'call start_task under an active delegation, or list_tasks to find your tasks',
          });
        }
        const target = exchangeTarget(args.resource, args.scope);
        const issued = await deps.exchange.exchangeOnBehalf({
          client: caller.agent,
          actor: null,
          subject: { delegationId: task.delegationId },
          audience: target.audience,
          scope: target.scope,
          tools: null,
          task: { taskId: task.id, ttl: null, externalIds: {} },
          requestId: env.requestId,
        });
        return success(taskTokenOutput(issued));
      }),
  );
}
