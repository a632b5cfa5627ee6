import type { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { renewTaskToken } from '../../../broker/services/agent-tasks.js';
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
        const target = exchangeTarget(args.resource, args.scope);
        const renewed = await renewTaskToken(deps, {
          agent: caller.agent,
          taskId: args.task_id,
          audience: target.audience,
          scope: target.scope,
          requestId: env.requestId,
        });
        if (!renewed) {
          return refusal({
            error: 'no_task',
            error_description: `no task ${args.task_id} is held by this agent`,
            missing: { task: 'a task_id from start_task' },
            how: 'call start_task under an active delegation, or list_tasks to find your tasks',
          });
        }
        return success(taskTokenOutput(renewed.issued));
      }),
  );
}
