import type { McpServer } from '@modelcontextprotocol/server';
import { StartTaskArgs, TaskTokenOutputSchema, taskTokenOutput } from '../../../broker/services/agent-args.js';
import { answer, exchangeGuidance, guarded, success } from '../results.js';
import type { ToolEnv } from '../tool-env.js';

/** `start_task`: a new task under a delegation, with its first task token (RFC 8693 exchange on behalf). */
export function registerStartTask(server: McpServer, env: ToolEnv): void {
  const { deps, caller } = env;
  server.registerTool(
    'start_task',
    {
      title: 'Start a task',
      description:
        'Starts a task under one of your delegations and returns a short-lived access token for one resource ' +
        '(narrowed to scope if given). Use the task_id with get_task_token, delegate_to_subagent and end_task.',
      inputSchema: StartTaskArgs,
      outputSchema: TaskTokenOutputSchema,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    async (args) =>
      guarded(env, async () =>
        answer(
          await deps.agentOps.startTask(
            caller,
            { delegationId: args.delegation_id, resource: args.resource, scope: args.scope, ttl: args.ttl },
            env.requestId,
          ),
          (issued) => success(taskTokenOutput(issued)),
          exchangeGuidance(args),
        ),
      ),
  );
}
