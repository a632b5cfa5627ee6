import { z } from 'zod';
import type { DelegationAsk } from './delegation-ask.js';
import type { ExchangeResponse } from './exchange-token.js';

/**
 * The arguments of the agent operations as both agent doors take them (MCP tool input, A2A skill
 * arguments), with the descriptions their schemas publish. One definition, so the doors cannot
 * drift apart; each door adds only what its protocol needs (A2A's task defaults).
 */

// CIBA §7.1, as at the backchannel endpoint: binding messages are short plain text.
const BINDING_MESSAGE = /^[\p{L}\p{N}\p{P}\p{Zs}]{1,64}$/u;
const BINDING_MESSAGE_RULE = 'must be 1-64 characters of plain text';
const count = z.number().int().nonnegative();

export const ResourceArg = z.string().max(2048).describe('The resource (API or MCP server URL) the token is for.');
export const ScopeArg = z.string().max(2048).describe('Space-separated scopes; omit for all the parent holds there.');
const TaskIdArg = z.string().min(1).max(100);

export const RequestDelegationArgs = z.strictObject({
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
  // Checked in code, not as a `pattern`: Unicode property escapes need the `u` flag, which many
  // JSON Schema validators lack. The published schema keeps the portable part (the length in
  // characters, as JSON Schema counts them).
  binding_message: z
    .string()
    .refine((m) => BINDING_MESSAGE.test(m), BINDING_MESSAGE_RULE)
    .meta({ minLength: 1, maxLength: 64 })
    .optional()
    .describe('A short text shown to the user with the request.'),
});
export type RequestDelegationArgs = z.infer<typeof RequestDelegationArgs>;

/** The typed ask of a `request_delegation` call. */
export function delegationAskOf(args: RequestDelegationArgs): DelegationAsk {
  return {
    resources: args.resources,
    scope: args.scopes,
    tools: null,
    maxDepth: args.max_depth,
    maxTokenTtl: args.max_token_ttl,
    expiresIn: args.expires_in,
    subAgents: args.sub_agents ?? null,
  };
}

export const StartTaskArgs = z.strictObject({
  delegation_id: z.string().min(1).max(100).describe('An active delegation you hold (see list_delegations).'),
  resource: ResourceArg,
  scope: ScopeArg.optional(),
  ttl: z.number().int().positive().optional().describe('Task lifetime in seconds (capped by Errand).'),
});

export const RenewTaskTokenArgs = z.strictObject({
  task_id: TaskIdArg.describe('A live task you started (see list_tasks).'),
  resource: ResourceArg.optional(),
  scope: ScopeArg.optional(),
});

export const DelegateToSubagentArgs = z.strictObject({
  task_id: TaskIdArg.describe('Your live task to hand part of.'),
  sub_agent_id: z.string().min(1).max(2048).describe('Client id of the agent that will act.'),
  actor_token: z
    .string()
    .min(1)
    .max(8192)
    .optional()
    .describe(
      'The sub-agent\'s RFC 8693 actor token: a short-lived JWT it signed for Errand (see "Actor tokens" in the ' +
        'README), or its workload token. Required unless you hand the task to yourself.',
    ),
  resource: ResourceArg.optional(),
  scope: ScopeArg.optional(),
});

export const EndTaskArgs = z.strictObject({
  task_id: TaskIdArg.describe('A task in your actor chain.'),
  state: z.enum(['completed', 'canceled', 'failed']).default('completed').describe('How the task ended.'),
});

/** A task token as the task operations return it (RFC 8693 §2.2.1 names). */
export const TaskTokenOutputSchema = z.object({
  task_id: z.string(),
  access_token: z.string(),
  token_type: z.enum(['Bearer', 'DPoP']),
  expires_in: z.number().int(),
  scope: z.string(),
});
export type TaskTokenOutput = z.infer<typeof TaskTokenOutputSchema>;

export function taskTokenOutput(r: ExchangeResponse): TaskTokenOutput {
  return {
    task_id: r.task_id,
    access_token: r.access_token,
    token_type: r.token_type,
    expires_in: r.expires_in,
    scope: r.scope,
  };
}
