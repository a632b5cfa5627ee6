import type { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { delegateToSubagent } from '../../../broker/services/agent-tasks.js';
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

export const DelegateToSubagentInputSchema = z.strictObject({
  task_id: z.string().min(1).max(100).describe('Your live task to hand part of.'),
  sub_agent_id: z.string().min(1).max(2048).describe('Client id of the agent that will act.'),
  resource: ResourceArg.optional(),
  scope: ScopeArg.optional(),
});

/**
 * `delegate_to_subagent`: a sub-task for another agent below the caller's task, with a token for it
 * whose `act` is sub-agent ← caller (RFC 8693 §4.1) and never more than the parent holds.
 */
export function registerDelegateToSubagent(server: McpServer, env: ToolEnv): void {
  const { deps, caller } = env;
  server.registerTool(
    'delegate_to_subagent',
    {
      title: 'Delegate to a sub-agent',
      description:
        'Creates a sub-task of your task for another agent and returns an access token for it to use, narrowed ' +
        'to resource and scope if given. The delegation must allow that agent and one more level of depth.',
      inputSchema: DelegateToSubagentInputSchema,
      outputSchema: TaskTokenOutputSchema,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    async (args) =>
      guarded(env, exchangeGuidance(args), async () => {
        const target = exchangeTarget(args.resource, args.scope);
        const result = await delegateToSubagent(deps, {
          agent: caller.agent,
          taskId: args.task_id,
          subAgentId: args.sub_agent_id,
          audience: target.audience,
          scope: target.scope,
          requestId: env.requestId,
        });
        if (!result.ok && result.reason === 'no_task') {
          return refusal({
            error: 'no_task',
            error_description: `no task ${args.task_id} is held by this agent`,
            missing: { task: 'a task_id from start_task' },
            how: 'call start_task under an active delegation, or list_tasks to find your tasks',
          });
        }
        if (!result.ok) {
          return refusal({
            error: 'unknown_sub_agent',
            error_description: `no client ${args.sub_agent_id} is registered at Errand`,
            missing: { sub_agent_id: 'the client id of a registered agent' },
            how: 'ask an administrator to register the sub-agent, then call again with its client id',
          });
        }
        const { issued } = result;
        return success(taskTokenOutput(issued));
      }),
  );
}
