import {
  CLIENT_CAPABILITIES_META_KEY,
  inputRequired,
  type McpServer,
  type ServerContext,
  UrlElicitationRequiredError,
} from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { DelegationRequest } from '../../../broker/core/delegation.js';
import { delegationLimits } from '../../../broker/http/app.js';
import type { Form } from '../../../broker/http/params.js';
import { readDelegationRequest } from '../../../broker/services/delegations.js';
import { type RequestState, sealRequestState, stateBinding } from '../request-state.js';
import { guarded, refusal, success } from '../results.js';
import type { ToolEnv } from '../tool-env.js';

// CIBA §7.1, as at the backchannel endpoint: binding messages are short plain text.
const BINDING_MESSAGE = /^[\p{L}\p{N}\p{P}\p{Zs}]{1,64}$/u;
const count = z.number().int().nonnegative();

export const RequestDelegationInputSchema = z.strictObject({
  user: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('Username of the person to ask. Omit it when the access token already speaks for a user.'),
  resources: z
    .array(z.string().max(2048))
    .min(1)
    .max(10)
    .describe('Resource URLs (APIs, MCP servers) the delegation is for.'),
  scopes: z.array(z.string().min(1).max(128)).min(1).max(50).describe('Scopes wanted at those resources.'),
  max_depth: count.optional().describe('How many levels of sub-agents may act below you (default 0).'),
  max_token_ttl: count.optional().describe('Longest lifetime, in seconds, of a task token.'),
  expires_in: count.optional().describe('Lifetime of the delegation, in seconds.'),
  sub_agents: z.array(z.string().max(2048)).max(100).optional().describe('Client ids that may act below you.'),
  binding_message: z
    .string()
    .regex(BINDING_MESSAGE, 'must be 1-64 characters of plain text')
    .optional()
    .describe('A short text shown to the user with the request.'),
});

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

function toForm(args: z.infer<typeof RequestDelegationInputSchema>): Form {
  const form: Form = { resource: args.resources, scope: args.scopes.join(' ') };
  if (args.max_depth !== undefined) form.max_depth = String(args.max_depth);
  if (args.max_token_ttl !== undefined) form.max_token_ttl = String(args.max_token_ttl);
  if (args.expires_in !== undefined) form.delegation_expires_in = String(args.expires_in);
  if (args.sub_agents !== undefined) form.sub_agents = args.sub_agents.join(' ');
  return form;
}

/**
 * `request_delegation`: asks a user (by Errand's approval page) for a delegation, as a CIBA request
 * without a poll handle. The user is told through URL elicitation when the client takes it (in its
 * era's wiring), otherwise the approval link comes back in the result.
 */
export function registerRequestDelegation(server: McpServer, env: ToolEnv): void {
  const { deps, caller } = env;
  const binding = stateBinding(caller.agent.id, caller.subject);
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

  /** A repeat of the same request (a retry after an elicitation) gets the delegation it created. */
  const sameRecentRequest = async (userId: string, asked: DelegationRequest) => {
    const now = deps.clock.now();
    const mine = await deps.db.write((tx) => deps.delegations.listForAgent(caller.agent.id, tx));
    return mine.find(
      (d) =>
        d.userId === userId &&
        (d.status === 'pending' || d.status === 'active') &&
        now - d.createdAt < deps.config.delegation.cibaRequestTtl &&
        JSON.stringify(d.requested) === JSON.stringify(asked),
    );
  };

  server.registerTool(
    'request_delegation',
    {
      title: 'Request a delegation',
      description:
        'Asks a user to delegate access to resources (with scopes and limits) to you. The request waits for the ' +
        "user's approval in Errand: the result gives the delegation_id and the approval_url to show the user.",
      inputSchema: RequestDelegationInputSchema,
      outputSchema: RequestDelegationOutputSchema,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    async (args, ctx) =>
      guarded(
        env,
        (err) => ({
          ...(err.code === 'invalid_target' ? { missing: { resources: args.resources } } : {}),
          how:
            err.code === 'invalid_target'
              ? 'name resources registered at Errand (ask an administrator to register a new one)'
              : err.code === 'invalid_scope'
                ? 'ask only for scopes the named resources offer and this client may request'
                : 'correct the request and call request_delegation again',
        }),
        async () => {
          // 2026-07-28 retry after the elicitation: the sealed state names the delegation already created.
          const state = ctx.mcpReq.requestState<RequestState>();
          if (state && typeof state === 'object') {
            const d = await deps.delegations.get(state.delegationId);
            if (!d || d.agentId !== caller.agent.id) throw new Error('request state names a foreign delegation');
            return view(d);
          }

          let userId: string;
          if (caller.user) {
            if (args.user !== undefined && args.user !== caller.user.username) {
              return refusal({
                error: 'invalid_request',
                error_description: 'the access token speaks for another user',
                how: 'omit user: the request goes to the user the access token speaks for',
              });
            }
            userId = caller.user.id;
          } else {
            if (args.user === undefined) {
              return refusal({
                error: 'invalid_request',
                error_description: 'user is required: the access token does not speak for a user',
                missing: { user: 'the Errand username of the person to ask' },
                how: 'call request_delegation again with user set',
              });
            }
            const user = await deps.users.findByUsername(args.user);
            if (!user || user.disabledAt !== null) {
              return refusal({
                error: 'unknown_user_id',
                error_description: 'user does not name a known user',
                missing: { user: 'the Errand username of the person to ask' },
                how: 'check the username with the person and call again',
              });
            }
            userId = user.id;
          }

          const limits = delegationLimits(deps.config);
          const asked = await readDelegationRequest({ clients: deps.clients, limits }, toForm(args), caller.agent);
          let delegation = await sameRecentRequest(userId, asked);
          if (!delegation) {
            ({ delegation } = await deps.delegationService.request({
              client: caller.agent,
              userId,
              asked,
              source: 'ciba',
              bindingMessage: args.binding_message ?? null,
              requestedExpiry: null,
              requestId: env.requestId,
            }));
            deps.log.info('delegation.requested', {
              clientId: caller.agent.id,
              delegationId: delegation.id,
              via: 'mcp',
            });
          }
          if (delegation.status !== 'pending') return view(delegation);

          // MCP Elicitation §Safe URL Handling: the URL is Errand's own page, with no token or user id in it.
          const message = `${caller.agent.name} asks you for a delegation. Review and approve it in Errand.`;
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
        },
      ),
  );
}
