import {
  CLIENT_CAPABILITIES_META_KEY,
  inputRequired,
  type McpServer,
  type ServerContext,
  UrlElicitationRequiredError,
} from '@modelcontextprotocol/server';
import { z } from 'zod';
import { delegationAskOf, RequestDelegationArgs } from '../../../broker/services/agent-args.js';
import { type RequestState, sealRequestState, stateBinding } from '../request-state.js';
import { answer, guarded, success } from '../results.js';
import type { ToolEnv } from '../tool-env.js';

export const RequestDelegationOutputSchema = z.object({
  delegation_id: z.string(),
  status: z.enum(['pending', 'active', 'denied', 'revoked']),
  approval_url: z.string(),
  message: z.string(),
});

const DeclaredCapabilities = z.looseObject({
  elicitation: z.looseObject({ url: z.looseObject({}).optional() }).optional(),
});

/** Modern era: whether this request's envelope declares URL-mode elicitation. */
function declaresUrlElicitation(ctx: ServerContext): boolean {
  const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
  const parsed = DeclaredCapabilities.safeParse(envelope?.[CLIENT_CAPABILITIES_META_KEY]);
  return parsed.success && parsed.data.elicitation?.url !== undefined;
}

/**
 * `request_delegation`: asks a user (by Errand's approval page) for a delegation, as a CIBA request
 * without a poll handle. The user is told through URL elicitation when the client takes it (in its
 * era's wiring), otherwise the approval link comes back in the result.
 */
export function registerRequestDelegation(server: McpServer, env: ToolEnv): void {
  const { deps, caller } = env;
  const binding = stateBinding(caller.client.id, caller.subject);
  const view = (d: { id: string; status: z.infer<typeof RequestDelegationOutputSchema>['status'] }) =>
    success({
      delegation_id: d.id,
      status: d.status,
      approval_url: env.approvalUrl,
      message:
        d.status === 'pending'
          ? 'Ask the user to review and approve the request at approval_url; then call list_delegations or start_task.'
          : `The delegation is ${d.status}.`,
    } satisfies z.infer<typeof RequestDelegationOutputSchema>);

  server.registerTool(
    'request_delegation',
    {
      title: 'Request a delegation',
      description:
        'Asks a user to delegate access to resources (with scopes and limits) to you. The request waits for the ' +
        "user's approval in Errand: the result gives the delegation_id and the approval_url to show the user.",
      inputSchema: RequestDelegationArgs,
      outputSchema: RequestDelegationOutputSchema,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    async (args, ctx) =>
      guarded(env, async () => {
        // 2026-07-28 retry after the elicitation: the sealed state names the delegation already created.
        const state = ctx.mcpReq.requestState<RequestState>();
        if (state && typeof state === 'object') {
          const d = await deps.agentOps.delegationFor(caller, state.delegationId);
          if (!d) throw new Error('request state names a foreign delegation');
          return view(d);
        }
        const asked = await deps.agentOps.requestDelegation(
          caller,
          { user: args.user, ask: delegationAskOf(args), bindingMessage: args.binding_message ?? null },
          env.requestId,
        );
        if (!asked.ok) {
          return answer(asked, view, (error) => ({
            ...(error === 'invalid_target' ? { missing: { resources: args.resources } } : {}),
            how:
              error === 'invalid_target'
                ? 'name resources registered at Errand (ask an administrator to register a new one)'
                : error === 'invalid_scope'
                  ? 'ask only for scopes the named resources offer and this client may request'
                  : 'correct the request and call request_delegation again',
          }));
        }
        const { delegation, created } = asked.value;
        if (created) {
          deps.log.info('delegation.requested', {
            clientId: caller.client.id,
            delegationId: delegation.id,
            via: 'mcp',
          });
        }
        if (delegation.status !== 'pending') return view(delegation);

        // MCP Elicitation §Safe URL Handling: the URL is Errand's own page, with no token or user id in it.
        const message = `${caller.client.name} asks you for a delegation. Review and approve it in Errand.`;
        if (env.era === 'modern' && declaresUrlElicitation(ctx)) {
          return inputRequired({
            inputRequests: { approval: inputRequired.elicitUrl({ message, url: env.approvalUrl }) },
            requestState: sealRequestState(deps.box, binding, delegation.id, deps.clock.now()),
          });
        }
        if (env.era === 'legacy' && env.legacyUrlElicitation) {
          throw new UrlElicitationRequiredError(
            [{ mode: 'url', message, url: env.approvalUrl, elicitationId: delegation.id }],
            `delegation ${delegation.id} waits for the user's approval at ${env.approvalUrl}`,
          );
        }
        return view(delegation);
      }),
  );
}
