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

export const StartTaskInputSchema = z.strictObject({
  delegation_id: z.string().min(1).max(100).describe('An active delegation you hold (see list_delegations).'),
  resource: ResourceArg,
  scope: ScopeArg.optional(),
  ttl: z.number().int().positive().optional().describe('Task lifetime in seconds (capped by Errand).'),
});

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
      inputSchema: StartTaskInputSchema,
      outputSchema: TaskTokenOutputSchema,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    async (args) =>
      guarded(env, exchangeGuidance(args), async () => {
        // Guidance only: the exchange below decides, with the same rules as the token endpoint.
        const d = await deps.delegations.get(args.delegation_id);
        if (!d || d.agentId !== caller.agent.id) {
          return refusal({
            error: 'no_delegation',
            error_description: `no delegation ${args.delegation_id} is held by this agent`,
            missing: { delegation: { resource: args.resource, scope: args.scope ?? null } },
            how: 'call request_delegation for this resource and scope, have the user approve it, then call start_task with its delegation_id',
          });
        }
        if (d.status === 'pending') {
          return refusal({
            error: 'approval_pending',
            error_description: 'the user has not approved the delegation yet',
            missing: { approval: env.approvalUrl },
            how: 'ask the user to approve the request at the approval URL, then call start_task again',
          });
        }
        if (d.status !== 'active') {
          return refusal({
            error: `delegation_${d.status}`,
            error_description: `the delegation is ${d.status}`,
            missing: { delegation: { resource: args.resource, scope: args.scope ?? null } },
            how: 'call request_delegation for a new delegation',
          });
        }
        const target = exchangeTarget(args.resource, args.scope);
        const issued = await deps.exchange.exchangeOnBehalf({
          client: caller.agent,
          actor: null,
          subject: { delegationId: d.id },
          audience: target.audience,
          scope: target.scope,
          tools: null,
          task: args.ttl === undefined ? null : { taskId: null, ttl: args.ttl, externalIds: {} },
          requestId: env.requestId,
        });
        return success(taskTokenOutput(issued));
      }),
  );
}
