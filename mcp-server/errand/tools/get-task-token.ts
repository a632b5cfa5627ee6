import type { McpServer } from '@modelcontextprotocol/server';
import { RenewTaskTokenArgs, TaskTokenOutputSchema, taskTokenOutput } from '../../../broker/services/agent-args.js';
import { answer, exchangeGuidance, guarded, success } from '../results.js';
import type { ToolEnv } from '../tool-env.js';

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
      inputSchema: RenewTaskTokenArgs,
      outputSchema: TaskTokenOutputSchema,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    async (args) =>
      guarded(env, async () =>
        answer(
          await deps.agentOps.renewTaskToken(
            caller,
            { taskId: args.task_id, resource: args.resource, scope: args.scope },
            env.requestId,
          ),
          (issued) => success(taskTokenOutput(issued)),
          exchangeGuidance(args),
        ),
      ),
  );
}
