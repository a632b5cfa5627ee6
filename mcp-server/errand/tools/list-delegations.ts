import type { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { answer, guarded, success } from '../results.js';
import type { ToolEnv } from '../tool-env.js';

const Status = z.enum(['pending', 'active', 'denied', 'revoked']);
const Grants = z.record(z.string(), z.array(z.string()));

export const DelegationSchema = z.object({
  delegation_id: z.string(),
  user_id: z.string(),
  status: Status,
  requested_scopes: Grants,
  scopes: Grants,
  max_depth: z.number().int(),
  max_token_ttl: z.number().int(),
  sub_agents: z.array(z.string()).nullable(),
  binding_message: z.string().nullable(),
  created_at: z.number().int(),
  decided_at: z.number().int().nullable(),
  expires_at: z.number().int(),
});

export const ListDelegationsOutputSchema = z.object({ delegations: z.array(DelegationSchema) });

/** `list_delegations`: the delegations users gave (or were asked to give) the caller agent, for the user its token speaks for. */
export function registerListDelegations(server: McpServer, env: ToolEnv): void {
  const { deps, caller } = env;
  server.registerTool(
    'list_delegations',
    {
      title: 'List my delegations',
      description:
        'Lists the delegations you hold or asked for: status (pending, active, denied, revoked), the scopes per ' +
        'resource granted and requested, limits and expiry. Use an active delegation_id with start_task.',
      inputSchema: z.strictObject({ status: Status.optional().describe('Only delegations in this status.') }),
      outputSchema: ListDelegationsOutputSchema,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async (args) =>
      guarded(env, async () =>
        answer(await deps.agentOps.listDelegations(caller, args.status), (all) =>
          success({
            delegations: all.map((d) => ({
              delegation_id: d.id,
              user_id: d.userId,
              status: d.status,
              requested_scopes: d.requested.grants,
              scopes: d.grants,
              max_depth: d.maxDepth,
              max_token_ttl: d.maxTokenTtl,
              sub_agents: d.subAgents,
              binding_message: d.bindingMessage,
              created_at: d.createdAt,
              decided_at: d.decidedAt,
              expires_at: d.expiresAt,
            })),
          } satisfies z.infer<typeof ListDelegationsOutputSchema>),
        ),
      ),
  );
}
