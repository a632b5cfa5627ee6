import { isIP } from 'node:net';
import { ASSURANCE_LEVELS, AUTH_METHOD } from '@errand/protocol';
import { z } from 'zod';
import type { Client } from '../../core/client.js';
import type { WorkloadClaims } from '../../core/workload-claims.js';
import type { AgentFacts, PolicyContext, UserFacts } from './entities.js';
import { decideWith, type PolicyRequest, type PolicyVerdict } from './policy-engine.js';
import { type CompiledPolicySet, compilePolicies, PolicyDecider, type PolicyProblem } from './policy-set.js';
import { POLICY_ACTIONS } from './schema.js';

const id = z.string().min(1).max(2048);
const name = z.string().min(1).max(200);

const AgentFactsSchema = z
  .object({
    id,
    name: name.optional(),
    kind: z.enum(['agent', 'mcp_client', 'resource_server', 'admin_service']).default('agent'),
    source: z.enum(['admin', 'dcr', 'cimd']).default('admin'),
    credential: z.enum(['private_key_jwt', 'workload_federation', 'none', 'client_secret']).default('private_key_jwt'),
    assurance: z.enum(ASSURANCE_LEVELS).nullable().default('NHI-AAL1'),
    quarantined: z.boolean().default(false),
    owner: id.optional(),
    trusted_issuer: id.optional(),
    workload: z
      .object({
        issuer: z.string().max(2048).optional(),
        subject: z.string().max(2048).optional(),
        namespace: z.string().max(512).optional(),
        service_account: z.string().max(512).optional(),
        image_digest: z.string().max(512).optional(),
        repository: z.string().max(512).optional(),
        environment: z.string().max(512).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const UserFactsSchema = z
  .object({
    id,
    username: z.string().max(64).optional(),
    role: z.enum(['user', 'admin']).default('user'),
    groups: z.array(z.string().min(1).max(200)).max(100).default([]),
  })
  .strict();

const ResourceFactsSchema = z
  .object({
    url: id,
    name: name.optional(),
    public: z.boolean().default(false),
    min_assurance: z.enum(ASSURANCE_LEVELS).nullable().default(null),
  })
  .strict();

/**
 * One policy test (README "Organisation policies"): a request described by the facts a decision
 * would see, and the decision expected. Self-contained (no database), so the same tests run in
 * the console before publishing and in an organisation's CI (`errand-admin policy test`).
 */
export const PolicyTestSchema = z
  .object({
    name,
    action: z.enum(POLICY_ACTIONS),
    /** The acting agent (principal of every action but `approve_delegation`, whose principal is `user`). */
    agent: AgentFactsSchema,
    user: UserFactsSchema,
    resource: ResourceFactsSchema,
    /** For `call_tool`: the tool's name at `resource`. */
    tool: z.string().min(1).max(200).optional(),
    /** The agent the delegation is for, when it is not `agent` (a sub-agent acting below it). */
    delegated_agent: AgentFactsSchema.optional(),
    context: z
      .object({
        actor_chain: z.array(id).max(20).optional(),
        depth: z.number().int().min(0).max(20).default(0),
        scopes: z.array(z.string().max(128)).max(100).default([]),
        tools: z.array(z.string().max(200)).max(100).default([]),
        task_age: z.number().int().min(0).default(0),
        /** ISO 8601 date-time; default: the time the test runs. */
        request_time: z.iso.datetime({ offset: true }).optional(),
        source_address: z
          .string()
          .refine((a) => isIP(a) !== 0, 'is not an IP address')
          .optional(),
        dpop_bound: z.boolean().default(false),
        door: z
          .enum(['token', 'mcp', 'a2a', 'web', 'user_api', 'backchannel', 'authzen', 'registration'])
          .default('token'),
      })
      .strict()
      .default({ depth: 0, scopes: [], tools: [], task_age: 0, dpop_bound: false, door: 'token' }),
    expect: z.enum(['allow', 'deny']),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.action === 'call_tool' && !t.tool)
      ctx.addIssue({ code: 'custom', path: ['tool'], message: 'is required for call_tool' });
  });
export type PolicyTest = z.output<typeof PolicyTestSchema>;

export const PolicyTestsSchema = z.array(PolicyTestSchema).max(500);

const METHOD = {
  private_key_jwt: AUTH_METHOD.privateKeyJwt,
  workload_federation: AUTH_METHOD.workloadFederation,
  none: AUTH_METHOD.none,
  client_secret: AUTH_METHOD.clientSecretBasic,
} as const;

function agentFacts(a: z.output<typeof AgentFactsSchema>): AgentFacts {
  const client = {
    id: a.id,
    kind: a.kind,
    name: a.name ?? a.id,
    ownerId: a.owner ?? null,
    source: a.source,
    status: 'active',
    authMethod: METHOD[a.credential],
    secretHash: null,
    jwks: null,
    jwksUri: null,
    redirectUris: [],
    grantTypes: [],
    scope: null,
    resources: [],
    applicationType: null,
    metadata: {},
    createdAt: 0,
    lastUsedAt: null,
    expiresAt: null,
    cachedUntil: null,
    trustedIssuerId: a.trusted_issuer ?? null,
    quarantinedAt: a.quarantined ? 1 : null,
  } as Client;
  return {
    client,
    assurance: a.assurance,
    // Only the claims the test names (a missing one is absent, as when a token lacks it).
    workload: a.workload
      ? (Object.fromEntries(
          Object.entries(a.workload).filter(([, v]) => typeof v === 'string'),
        ) as unknown as WorkloadClaims)
      : null,
  };
}

/** The decision request a test describes. */
export function testRequest(t: PolicyTest, now: number): Omit<PolicyRequest, 'requestId'> {
  const agent = agentFacts(t.agent);
  const user: UserFacts = {
    id: t.user.id,
    username: t.user.username ?? t.user.id,
    role: t.user.role,
    groups: t.user.groups,
  };
  const resource = {
    url: t.resource.url,
    name: t.resource.name ?? t.resource.url,
    public: t.resource.public,
    minAssurance: t.resource.min_assurance,
  };
  const c = t.context;
  const context: PolicyContext = {
    user,
    agent: t.delegated_agent ? agentFacts(t.delegated_agent) : agent,
    actorChain: c.actor_chain ?? [agent.client.id],
    depth: c.depth,
    scopes: c.scopes,
    tools: c.tools,
    taskAge: c.task_age,
    now: c.request_time ? Date.parse(c.request_time) / 1000 : now,
    address: c.source_address ?? null,
    dpopBound: c.dpop_bound,
    door: c.door,
  };
  if (t.action === 'admit') return { action: t.action, principal: { agent }, resource: { agent }, context: null };
  return {
    action: t.action,
    principal: t.action === 'approve_delegation' ? { user } : { agent },
    resource: t.action === 'call_tool' ? { tool: { resource, name: t.tool as string } } : { resource },
    context,
  };
}

export interface PolicyTestResult {
  name: string;
  expect: 'allow' | 'deny';
  actual: 'allow' | 'deny';
  passed: boolean;
  /** The policies that decided (forbids on a deny, permits on an allow). */
  policies: string[];
  errors: PolicyProblem[];
}

export type PolicyTestRun =
  | { ok: true; passed: number; failed: number; results: PolicyTestResult[] }
  | { ok: false; problems: PolicyProblem[] };

/** Runs tests against a compiled set (or a text, compiled first: problems when it does not validate). */
export function runPolicyTests(policies: string | CompiledPolicySet, tests: PolicyTest[], now: number): PolicyTestRun {
  let set: CompiledPolicySet;
  if (typeof policies === 'string') {
    const compiled = compilePolicies(policies);
    if (!compiled.ok) return { ok: false, problems: compiled.problems };
    set = compiled.set;
  } else set = policies;
  const decider = new PolicyDecider(set);
  const results = tests.map((t): PolicyTestResult => {
    const v: PolicyVerdict = decideWith(decider, 0, testRequest(t, now));
    const actual = v.allowed ? 'allow' : 'deny';
    return {
      name: t.name,
      expect: t.expect,
      actual,
      passed: actual === t.expect,
      policies: v.policies,
      errors: v.errors,
    };
  });
  const failed = results.filter((r) => !r.passed).length;
  return { ok: true, passed: results.length - failed, failed, results };
}
