import { canonicalizeResource } from '@errand/protocol';
import { z } from 'zod';
import type { Db } from '../../../db/open.js';
import type { AuditStore } from '../../../db/stores/audit-store.js';
import type { ClientStore } from '../../../db/stores/client-store.js';
import { assuranceLevel, type Client } from '../../core/client.js';
import { policyDenialText } from '../../core/denials.js';
import { OAuthError } from '../../core/errors.js';
import type { Clock } from '../../core/ports.js';
import type { Logger } from '../../log.js';
import type { AgentFacts, PolicyContext, ResourceFacts, UserFacts } from './entities.js';
import type { PolicyEngine, PolicyPrincipal, PolicyResource } from './policy-engine.js';
import type { PolicyAction } from './schema.js';

/**
 * OpenID AuthZEN Authorization API 1.0 (README "AuthZEN authorization API"): a policy enforcement
 * point (an MCP server, a gateway, the guard) asks Errand's policy decision point whether a
 * subject may take an action on a resource. The answer is the organisation's policies, decided by
 * the same engine as at the token endpoint, plus one fact Errand holds: that the acting agent is
 * active. Delegations are not consulted: AuthZEN answers the organisation's question ("may this
 * agent, acting for this person, call this tool?"), the token the agent holds answers the person's.
 */

const MAX_ID = 2048;
const MAX_LIST = 64;
/** The largest batch (§7.1): a bound on the work one request can ask for. */
export const MAX_EVALUATIONS = 64;

/** AuthZEN §5.1-§5.3: `properties` is any JSON object. */
const PropertiesSchema = z.record(z.string(), z.unknown());

/** AuthZEN §5.1: a Subject (`type`, `id`, optional `properties`). */
export const AuthzenSubjectSchema = z.object({
  type: z.string().min(1).max(64),
  id: z.string().min(1).max(MAX_ID),
  properties: PropertiesSchema.optional(),
});

/** AuthZEN §5.2: a Resource. */
export const AuthzenResourceSchema = z.object({
  type: z.string().min(1).max(64),
  id: z.string().min(1).max(MAX_ID),
  properties: PropertiesSchema.optional(),
});

/** AuthZEN §5.3: an Action (`name`, optional `properties`). */
export const AuthzenActionSchema = z.object({
  name: z.string().min(1).max(64),
  properties: PropertiesSchema.optional(),
});

/** AuthZEN §5.4: the Context, any JSON object; the members Errand reads are checked in `ErrandContextSchema`. */
export const AuthzenContextSchema = z.record(z.string(), z.unknown());

/** AuthZEN §6.1: the Access Evaluation request (subject, action, resource, optional context). */
export const AuthzenEvaluationSchema = z.object({
  subject: AuthzenSubjectSchema,
  action: AuthzenActionSchema,
  resource: AuthzenResourceSchema,
  context: AuthzenContextSchema.optional(),
});

/** AuthZEN §7.1.2: how a batch is run; `execute_all` when absent. */
export const EVALUATIONS_SEMANTICS = ['execute_all', 'deny_on_first_deny', 'permit_on_first_permit'] as const;

/**
 * AuthZEN §7.1: the Access Evaluations request. Top-level subject, action, resource and context are
 * defaults for each entry of `evaluations` (§7.1.1); without `evaluations` it is one evaluation.
 */
export const AuthzenEvaluationsSchema = z.object({
  subject: AuthzenSubjectSchema.optional(),
  action: AuthzenActionSchema.optional(),
  resource: AuthzenResourceSchema.optional(),
  context: AuthzenContextSchema.optional(),
  evaluations: z
    .array(
      z.object({
        subject: AuthzenSubjectSchema.optional(),
        action: AuthzenActionSchema.optional(),
        resource: AuthzenResourceSchema.optional(),
        context: AuthzenContextSchema.optional(),
      }),
    )
    .min(1)
    .max(MAX_EVALUATIONS)
    .optional(),
  options: z
    .object({ evaluations_semantic: z.enum(EVALUATIONS_SEMANTICS).optional() })
    .catchall(z.unknown())
    .optional(),
});

export type AuthzenEvaluation = z.infer<typeof AuthzenEvaluationSchema>;
export type AuthzenEvaluations = z.infer<typeof AuthzenEvaluationsSchema>;

/** The context members Errand maps onto the policies' `Request` context (README "AuthZEN authorization API"). */
const ErrandContextSchema = z.object({
  user: z.string().min(1).max(MAX_ID).optional(),
  agent: z.string().min(1).max(MAX_ID).optional(),
  actor_chain: z.array(z.string().min(1).max(MAX_ID)).max(MAX_LIST).optional(),
  depth: z.number().int().min(0).max(64).optional(),
  scopes: z.array(z.string().min(1).max(256)).max(MAX_LIST).optional(),
  tools: z.array(z.string().min(1).max(256)).max(MAX_LIST).optional(),
  task_age: z.number().int().min(0).optional(),
  source_address: z.union([z.ipv4(), z.ipv6()]).optional(),
  dpop_bound: z.boolean().optional(),
});

/** The actions a policy enforcement point may ask about (`admit` is registration's own). */
export const AUTHZEN_ACTIONS = ['ask_delegation', 'approve_delegation', 'exchange', 'hand_off', 'call_tool'] as const;

/** Why a decision is false: a code a program can switch on. */
export const AUTHZEN_REASONS = [
  'policy_denied',
  'unknown_agent',
  'unknown_user',
  'unknown_resource',
  'agent_inactive',
  'resource_not_served',
] as const;
export type AuthzenReason = (typeof AUTHZEN_REASONS)[number];

/**
 * AuthZEN §6.2: a decision. Its context follows §5.5.1's Reason Object (`id`, `reason_admin`, for
 * the administrator behind the enforcement point, never for the end user), with the policies that
 * decided and their version.
 */
export const AuthzenDecisionSchema = z
  .object({
    decision: z.boolean(),
    context: z
      .object({
        id: z.string(),
        reason: z.enum(AUTHZEN_REASONS).optional(),
        reason_admin: z.object({ en: z.string() }).strict().optional(),
        policies: z.array(z.string()).optional(),
        policy_version: z.number().int().optional(),
      })
      .strict(),
  })
  .strict();

/** AuthZEN §7.2: the decisions in request order (or one decision, for a request without `evaluations`). */
export const AuthzenEvaluationsResponseSchema = z.union([
  z.object({ evaluations: z.array(AuthzenDecisionSchema) }).strict(),
  AuthzenDecisionSchema,
]);

/** AuthZEN §9.1.1: the metadata document. */
export const AuthzenMetadataSchema = z
  .object({
    policy_decision_point: z.string(),
    access_evaluation_endpoint: z.string(),
    access_evaluations_endpoint: z.string(),
  })
  .strict();

export type AuthzenDecision = z.infer<typeof AuthzenDecisionSchema>;
type AuthzenDecisionContext = AuthzenDecision['context'];

export interface AuthzenDeps {
  db: Db;
  policy: PolicyEngine;
  clients: ClientStore;
  audit: AuditStore;
  clock: Clock;
}

/** The resource server asking, and the request it asked in. */
export interface AuthzenCaller {
  client: Client;
  requestId: string;
  address?: string | null;
  log: Logger;
}

/** Where the policy decision point answers, relative to the issuer (its PDP identifier). */
export const AUTHZEN_PATHS = {
  /** AuthZEN §9.2: the policy decision point's metadata. */
  configuration: '/.well-known/authzen-configuration',
  /** AuthZEN §6 (one decision) and §7 (several in one request). */
  evaluation: '/access/v1/evaluation',
  evaluations: '/access/v1/evaluations',
} as const;

/** AuthZEN §9.1.1: the policy decision point's metadata; Errand's issuer is the PDP identifier. */
export function authzenMetadata(issuer: string): z.infer<typeof AuthzenMetadataSchema> {
  return {
    policy_decision_point: issuer,
    access_evaluation_endpoint: `${issuer}${AUTHZEN_PATHS.evaluation}`,
    access_evaluations_endpoint: `${issuer}${AUTHZEN_PATHS.evaluations}`,
  };
}

/** A request the mapping cannot use: 400 with what to fix (AuthZEN Transport, Error Responses). */
function bad(where: string, description: string): OAuthError {
  return new OAuthError('invalid_request', `${where}${description}`);
}

/** What one evaluation asks, in the engine's terms, with the facts still to be loaded. */
interface Mapped {
  action: PolicyAction;
  subject: { kind: 'agent' | 'user'; id: string };
  resourceUrl: string;
  tool: string | null;
  userId: string;
  agentId: string;
  context: z.output<typeof ErrandContextSchema>;
}

/** Maps one AuthZEN evaluation onto the policy engine's request; shape problems are 400s. */
function mapEvaluation(e: AuthzenEvaluation, where: string): Mapped {
  const action = e.action.name;
  if (!(AUTHZEN_ACTIONS as readonly string[]).includes(action)) {
    throw bad(where, `action.name must be one of ${AUTHZEN_ACTIONS.join(', ')}`);
  }
  const parsed = ErrandContextSchema.safeParse(e.context ?? {});
  if (!parsed.success) {
    const [issue] = parsed.error.issues;
    throw bad(where, `context.${issue?.path.join('.')}: ${issue?.message}`);
  }
  const context = parsed.data;
  const subjectKind = e.subject.type;
  if (subjectKind !== 'agent' && subjectKind !== 'user') throw bad(where, 'subject.type must be "agent" or "user"');
  // The schema's approve_delegation is the one action a person takes; every other is an agent's.
  if ((subjectKind === 'user') !== (action === 'approve_delegation')) {
    throw bad(where, 'subject.type "user" goes with action approve_delegation, and only with it');
  }
  let userId: string;
  let agentId: string;
  if (subjectKind === 'agent') {
    if (!context.user) throw bad(where, 'context.user (the person the agent acts for) is required');
    userId = context.user;
    agentId = context.agent ?? e.subject.id;
  } else {
    if (!context.agent) throw bad(where, 'context.agent (the agent the delegation is for) is required');
    userId = e.subject.id;
    agentId = context.agent;
  }
  const wantsTool = action === 'call_tool';
  if (e.resource.type !== (wantsTool ? 'tool' : 'resource')) {
    throw bad(where, `resource.type must be "${wantsTool ? 'tool' : 'resource'}" for action ${action}`);
  }
  const url = wantsTool ? e.resource.properties?.resource : e.resource.id;
  const field = wantsTool ? 'resource.properties.resource' : 'resource.id';
  const resourceUrl = typeof url === 'string' ? canonicalizeResource(url) : null;
  if (!resourceUrl) throw bad(where, `${field} must be the resource's URL (http or https)`);
  return {
    action: action as PolicyAction,
    subject: { kind: subjectKind, id: e.subject.id },
    resourceUrl,
    tool: wantsTool ? e.resource.id : null,
    userId,
    agentId,
    context,
  };
}

/**
 * Merges the batch defaults (§7.1.1: an entry's own member wins, whole) and checks every entry
 * before any is decided, so a malformed batch is refused as a whole (400), never half-answered.
 */
function mapBatch(req: AuthzenEvaluations): Mapped[] {
  const entries = req.evaluations ?? [{}];
  return entries.map((entry, i) => {
    const where = req.evaluations ? `evaluations[${i}]: ` : '';
    const merged = {
      subject: entry.subject ?? req.subject,
      action: entry.action ?? req.action,
      resource: entry.resource ?? req.resource,
      context: entry.context ?? req.context,
    };
    for (const key of ['subject', 'action', 'resource'] as const) {
      if (!merged[key]) throw bad(where, `${key} is required (in the evaluation or as a top-level default)`);
    }
    return mapEvaluation(merged as AuthzenEvaluation, where);
  });
}

const agentFacts = (client: Client): AgentFacts => ({ client, assurance: assuranceLevel(client), workload: null });

/**
 * The policy decision point: decides AuthZEN evaluations with the organisation's policies. An unknown
 * agent, person or resource is a `false` decision with its reason (§7.2.1), not an error.
 */
export class AuthzenService {
  constructor(private readonly deps: AuthzenDeps) {}

  /** AuthZEN §6: one evaluation. */
  async evaluate(req: AuthzenEvaluation, caller: AuthzenCaller): Promise<AuthzenDecision> {
    const mapped = mapEvaluation(req, '');
    return this.decide(mapped, 0, caller);
  }

  /**
   * AuthZEN §7: several evaluations, run in order under the requested semantic (§7.1.2);
   * without `evaluations`, the single-evaluation answer (§7.1).
   */
  async evaluateMany(
    req: AuthzenEvaluations,
    caller: AuthzenCaller,
  ): Promise<{ evaluations: AuthzenDecision[] } | AuthzenDecision> {
    const batch = mapBatch(req);
    if (!req.evaluations) return this.decide(batch[0] as Mapped, 0, caller);
    const semantic = req.options?.evaluations_semantic ?? 'execute_all';
    const out: AuthzenDecision[] = [];
    for (const [i, mapped] of batch.entries()) {
      const d = await this.decide(mapped, i, caller);
      out.push(d);
      // §7.1.2: deny_on_first_deny works like `&&`, permit_on_first_permit like `||`.
      if (semantic === 'deny_on_first_deny' && !d.decision) break;
      if (semantic === 'permit_on_first_permit' && d.decision) break;
    }
    return { evaluations: out };
  }

  private async decide(m: Mapped, index: number, caller: AuthzenCaller): Promise<AuthzenDecision> {
    const id = String(index);
    const refuse = async (reason: AuthzenReason, text: string, extra: Partial<AuthzenDecisionContext> = {}) => {
      await this.audit(m, caller, reason, extra);
      caller.log.info('authzen.decided', { decision: false, action: m.action, reason, resource: m.resourceUrl });
      return { decision: false, context: { id, reason, reason_admin: { en: text }, ...extra } };
    };
    // Like introspection (RFC 7662 §4), a resource server asks about the resources it speaks for.
    if (!caller.client.resources.includes(m.resourceUrl)) {
      return refuse('resource_not_served', `client ${caller.client.id} is not registered for "${m.resourceUrl}"`);
    }
    const { policy, clients } = this.deps;
    const resource: ResourceFacts | null = await policy.resourceFacts(m.resourceUrl);
    if (!resource) return refuse('unknown_resource', `"${m.resourceUrl}" is not a registered resource`);
    const agent = await clients.get(m.agentId);
    if (!agent) return refuse('unknown_agent', `no client "${m.agentId}" is registered`);
    const actor = m.subject.kind === 'agent' ? await clients.get(m.subject.id) : null;
    if (m.subject.kind === 'agent' && !actor)
      return refuse('unknown_agent', `no client "${m.subject.id}" is registered`);
    const user: UserFacts | null = await policy.userFacts(m.userId);
    if (!user) return refuse('unknown_user', `no account "${m.userId}" exists`);
    for (const c of actor && actor.id !== agent.id ? [actor, agent] : [agent]) {
      if (c.status !== 'active') return refuse('agent_inactive', `client ${c.id} is ${c.status}`);
    }
    const principal: PolicyPrincipal = actor ? { agent: agentFacts(actor) } : { user };
    const target: PolicyResource = m.tool ? { tool: { resource, name: m.tool } } : { resource };
    const ctx = m.context;
    const context: PolicyContext = {
      user,
      agent: agentFacts(agent),
      actorChain: ctx.actor_chain ?? (actor ? [actor.id] : []),
      depth: ctx.depth ?? 0,
      scopes: ctx.scopes ?? [],
      tools: ctx.tools ?? (m.tool ? [m.tool] : []),
      taskAge: ctx.task_age ?? 0,
      now: this.deps.clock.now(),
      address: ctx.source_address ?? null,
      dpopBound: ctx.dpop_bound ?? false,
      door: 'authzen',
    };
    const verdict = policy.decide({
      action: m.action,
      principal,
      resource: target,
      context,
      requestId: caller.requestId,
    });
    const decided = { policies: verdict.policies, policy_version: verdict.version };
    if (!verdict.allowed) {
      const text = policyDenialText({
        reason: 'policy_denied',
        action: m.action,
        version: verdict.version,
        policies: verdict.policies,
      });
      return refuse('policy_denied', text, decided);
    }
    caller.log.info('authzen.decided', { decision: true, action: m.action, resource: m.resourceUrl });
    return { decision: true, context: { id, ...decided } };
  }

  /** Audits a denial (`authzen.denied`): who asked, about whom, what and where. */
  private async audit(
    m: Mapped,
    caller: AuthzenCaller,
    reason: AuthzenReason,
    extra: Partial<AuthzenDecisionContext>,
  ): Promise<void> {
    const { db, audit, clock } = this.deps;
    await db.write((tx) =>
      audit.append(
        {
          type: 'authzen.denied',
          result: 'denied',
          userId: m.userId,
          clientId: m.subject.kind === 'agent' ? m.subject.id : m.agentId,
          actorChain: m.context.actor_chain ?? [],
          audience: m.resourceUrl,
          reason,
          requestId: caller.requestId,
          details: {
            resource_server: caller.client.id,
            subject: `${m.subject.kind}:${m.subject.id}`,
            action: m.action,
            resource: m.resourceUrl,
            ...(m.tool ? { tool: m.tool } : {}),
            ...(extra.policies ? { policies: extra.policies, policy_version: extra.policy_version } : {}),
            ...(caller.address ? { address: caller.address } : {}),
          },
        },
        clock.now(),
        tx,
      ),
    );
  }
}
