import { meetsAssurance } from './assurance.js';
import type { AssuranceLevel } from './client.js';
import type { Delegation, ToolDetail } from './delegation.js';
import type { Decision, Denial } from './denials.js';
import { isLive, type Task } from './task.js';

/**
 * The rules of token exchange, as one pure function. For every token T issued from a parent P (a
 * delegation credential or a task token): scope(T) ⊆ scope(P), aud(T) allowed by P,
 * exp(T) ≤ min(exp(P), task deadline, delegation expiry), depth(T) ≤ maxDepth, the actor may act
 * under the delegation, and `act` is re-derived here (README "Invariants", 1–3).
 */

/** What the subject token stands for. */
export interface Parent {
  kind: 'delegation' | 'task';
  /** Resources and the scopes the parent holds at each (a task token holds exactly one). */
  grants: Record<string, string[]>;
  details: ToolDetail[] | null;
  /** The parent's own expiry: the token's `exp`, or the delegation's expiry. */
  exp: number;
  /** The task the parent token belongs to (null for a delegation credential). */
  task: Task | null;
}

export interface ExchangeRequest {
  audience: string | null;
  scope: string[] | null;
  details: ToolDetail[] | null;
  /** An existing task to mint for again; null to start a new task (or sub-task). */
  taskId: string | null;
  /** Requested task lifetime for a new task, in seconds. */
  taskTtl: number | null;
}

export interface ExchangeContext {
  now: number;
  actorId: string;
  delegation: Delegation;
  /** The task named by `taskId`, looked up by the caller (null if none or not found). */
  named: Task | null;
  /** Broker limits. */
  tokenTtl: number;
  maxTaskTtl: number;
  /** The acting agent's assurance level, derived when it authenticated (README "Assurance levels"). */
  actorAssurance?: AssuranceLevel | null;
  /** Minimum assurance per resource (canonical URL → level), for the resources the parent holds. */
  resourceMinAssurance?: Record<string, AssuranceLevel | null>;
}

export interface ExchangePlan {
  audience: string;
  scope: string[];
  details: ToolDetail[] | null;
  exp: number;
  /** Actor ids, current first (RFC 8693 §4.1). */
  actorChain: string[];
  task:
    | { kind: 'existing'; task: Task }
    | { kind: 'new'; parentTaskId: string | null; depth: number; deadline: number };
}

const deny = (denial: Denial): Decision<never> => ({ ok: false, denial });

/** Decides a token exchange; every "no" is a denial with a reason, never an exception. */
export function attenuate(parent: Parent, req: ExchangeRequest, ctx: ExchangeContext): Decision<ExchangePlan> {
  const { delegation: d, now } = ctx;
  if (d.status !== 'active') return deny({ reason: 'delegation_inactive', status: d.status });
  if (d.expiresAt <= now) return deny({ reason: 'delegation_expired' });
  if (parent.task && !isLive(parent.task, now)) return deny({ reason: 'task_ended', taskId: parent.task.id });

  // Which task: an existing one the actor holds, or a new (sub-)task.
  let task: ExchangePlan['task'];
  let actorChain: string[];
  if (req.taskId !== null) {
    const named = ctx.named;
    const expectedParent = parent.task?.id ?? null;
    if (
      !named ||
      named.id !== req.taskId ||
      named.delegationId !== d.id ||
      named.agentId !== ctx.actorId ||
      named.parentTaskId !== expectedParent
    ) {
      return deny({ reason: 'task_not_found', taskId: req.taskId });
    }
    if (!isLive(named, now)) return deny({ reason: 'task_ended', taskId: named.id });
    task = { kind: 'existing', task: named };
    actorChain = named.actorChain;
  } else if (parent.task) {
    const depth = parent.task.depth + 1;
    if (depth > d.maxDepth) return deny({ reason: 'depth_exceeded', max: d.maxDepth });
    if (d.subAgents !== null && !d.subAgents.includes(ctx.actorId)) {
      return deny({ reason: 'actor_not_allowed', actorId: ctx.actorId });
    }
    const ttl = Math.min(req.taskTtl ?? ctx.maxTaskTtl, ctx.maxTaskTtl);
    task = {
      kind: 'new',
      parentTaskId: parent.task.id,
      depth,
      deadline: Math.min(now + ttl, parent.task.deadline, d.expiresAt),
    };
    actorChain = [ctx.actorId, ...parent.task.actorChain];
  } else {
    if (ctx.actorId !== d.agentId) return deny({ reason: 'actor_not_delegate', actorId: ctx.actorId });
    const ttl = Math.min(req.taskTtl ?? ctx.maxTaskTtl, ctx.maxTaskTtl);
    // A root task ends no later than its parent: the delegation, or for an on-behalf-of exchange the
    // user's access token it was started from (README "On-behalf-of exchange").
    task = { kind: 'new', parentTaskId: null, depth: 0, deadline: Math.min(now + ttl, d.expiresAt, parent.exp) };
    actorChain = [ctx.actorId];
  }
  if (parent.kind === 'delegation' && ctx.actorId !== d.agentId) {
    return deny({ reason: 'actor_not_delegate', actorId: ctx.actorId });
  }

  // Audience: one the parent holds (and, for a delegation, one it covers).
  const held = Object.keys(parent.grants);
  const audience = req.audience ?? (held.length === 1 ? held[0]! : null);
  if (audience === null) return deny({ reason: 'audience_required' });
  const parentScopes = parent.grants[audience];
  if (!parentScopes) {
    return deny(
      parent.kind === 'delegation'
        ? { reason: 'audience_not_delegated', audience }
        : { reason: 'audience_not_in_parent', audience },
    );
  }
  const delegated = d.grants[audience] ?? [];

  // Assurance: the current actor must reach the delegation's minimum and the resource's.
  const actual = ctx.actorAssurance ?? null;
  if (d.minAssurance && !meetsAssurance(actual, d.minAssurance)) {
    return deny({ reason: 'assurance_too_low', required: d.minAssurance, actual, by: 'delegation' });
  }
  const resourceMin = ctx.resourceMinAssurance?.[audience] ?? null;
  if (resourceMin && !meetsAssurance(actual, resourceMin)) {
    return deny({ reason: 'assurance_too_low', required: resourceMin, actual, by: 'resource' });
  }

  // Scope: a subset of the parent's and of the delegation's.
  const scope = req.scope ?? parentScopes;
  const beyond = scope.filter((s) => !parentScopes.includes(s) || !delegated.includes(s));
  if (beyond.length > 0) return deny({ reason: 'scope_exceeds_parent', scope: beyond.join(' ') });
  if (scope.length === 0) return deny({ reason: 'scope_empty' });

  // Fine-grained details (RFC 9396 §6): a subset of the parent's at this audience. A request that
  // names no tools keeps the parent's list; it never lifts a restriction (no entry = every tool).
  const parentDetails = parent.details?.filter((x) => x.locations[0] === audience) ?? null;
  let details: ToolDetail[] | null = parentDetails && parentDetails.length > 0 ? parentDetails : null;
  if (req.details && req.details.length > 0) {
    for (const x of req.details) {
      const within = parentDetails?.find((p) => p.locations[0] === x.locations[0]);
      if (x.locations[0] !== audience || !within || x.actions.some((a) => !within.actions.includes(a))) {
        return deny({ reason: 'details_exceed_parent' });
      }
    }
    details = req.details;
  }

  const deadline = task.kind === 'existing' ? task.task.deadline : task.deadline;
  const exp = Math.min(now + Math.min(ctx.tokenTtl, d.maxTokenTtl), parent.exp, deadline, d.expiresAt);
  if (exp <= now) return deny({ reason: 'subject_expired' });
  return { ok: true, value: { audience, scope: [...scope].sort(), details, exp, actorChain, task } };
}
