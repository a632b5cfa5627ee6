import type { McpServer } from '@modelcontextprotocol/server';
import { DelegateToSubagentArgs, TaskTokenOutputSchema, taskTokenOutput } from '../../../broker/services/agent-args.js';
import { answer, exchangeGuidance, guarded, success } from '../results.js';
import type { ToolEnv } from '../tool-env.js';

/**
 * `delegate_to_subagent`: a sub-task for another agent below the caller's task, with a token for it
 * whose `act` is sub-agent ← caller (RFC 8693 §4.1) and never more than the task holds. The
 * sub-agent takes part through the actor token it signed.
 */
export function registerDelegateToSubagent(server: McpServer, env: ToolEnv): void {
  const { deps, caller } = env;
  server.registerTool(
    'delegate_to_subagent',
    {
      title: 'Delegate to a sub-agent',
      description:
        'Creates a sub-task of your task for another agent and returns an access token for it to use, narrowed ' +
        'to resource and scope if given. The sub-agent proves it takes part with actor_token (a JWT it signed). ' +
        'The delegation must allow that agent and one more level of depth.',
      inputSchema: DelegateToSubagentArgs,
      outputSchema: TaskTokenOutputSchema,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    async (args) =>
      guarded(env, async () =>
        answer(
          await deps.agentOps.delegateToSubagent(
            caller,
            {
              taskId: args.task_id,
              subAgentId: args.sub_agent_id,
              actorToken: args.actor_token,
              resource: args.resource,
              scope: args.scope,
            },
            env.requestId,
          ),
          (issued) => success(taskTokenOutput(issued)),
          exchangeGuidance(args),
        ),
      ),
  );
}
