import { toolsAllowedAt } from '@errand/protocol';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  attenuate,
  type ExchangeContext,
  type ExchangePlan,
  type ExchangeRequest,
  type Parent,
} from './attenuation.js';
import type { AssuranceLevel } from './client.js';
import type { Delegation, DelegationStatus, ToolDetail } from './delegation.js';
import { type Denial, denialToError } from './denials.js';
import { isTerminal, type Task, type TaskState } from './task.js';

/**
 * Property tests for `attenuate` (README "Invariants", 1–3): random delegations, random chains of
 * exchanges from them with random (often wrong) requests, actors and clocks. Every allowed step is
 * checked against the invariants; every denial against an independent model of what is wrong with
 * the request, and against the wire codes of RFC 8693 §2.2.2.
 */

const START = 1_750_000_000;
const TOKEN_TTL = 900;
const MAX_TASK_TTL = 3600;
const RESOURCES = ['https://r1.example.test/mcp', 'https://r2.example.test/api', 'https://r3.example.test/a2a'];
const UNKNOWN = 'https://unknown.example.test/';
const SCOPES = ['read', 'write', 'delete', 'admin'];
const FOREIGN = 'root:all';
const TOOLS = ['search', 'fetch', 'send'];
const AGENTS = ['agt_a', 'agt_b', 'agt_c', 'agt_d', 'agt_e'];
const DELEGATE = AGENTS[0]!;
/** Each agent's assurance level; the delegate is attested (AAL2). */
const AGENT_LEVEL: Record<string, AssuranceLevel | null> = {
  agt_a: 'NHI-AAL2',
  agt_b: 'NHI-AAL3',
  agt_c: 'NHI-AAL1',
  agt_d: null,
  agt_e: 'NHI-AAL2',
};
/** Minimum levels of the resources: one of them asks for an attested workload. */
const RESOURCE_MIN: Record<string, AssuranceLevel | null> = {
  'https://r1.example.test/mcp': null,
  'https://r2.example.test/api': 'NHI-AAL2',
  'https://r3.example.test/a2a': null,
};
const LEVELS: (AssuranceLevel | null)[] = [null, 'NHI-AAL1', 'NHI-AAL2', 'NHI-AAL3'];
const TERMINAL: TaskState[] = ['completed', 'canceled', 'failed', 'rejected'];

type Reason = Denial['reason'];

/** What each denial is on the wire (RFC 8693 §2.2.2, RFC 6749 §5.2, RFC 8707 §2). */
const WIRE: Record<Reason, string> = {
  delegation_inactive: 'invalid_request',
  delegation_expired: 'invalid_request',
  actor_not_delegate: 'invalid_request',
  actor_not_allowed: 'invalid_request',
  task_ended: 'invalid_request',
  task_not_found: 'invalid_request',
  audience_required: 'invalid_target',
  audience_not_delegated: 'invalid_target',
  audience_not_in_parent: 'invalid_target',
  scope_exceeds_parent: 'invalid_scope',
  scope_empty: 'invalid_scope',
  details_exceed_parent: 'invalid_authorization_details',
  depth_exceeded: 'invalid_request',
  subject_expired: 'invalid_request',
  assurance_too_low: 'invalid_request',
  not_delegated_for_user: 'invalid_target',
  subject_revoked: 'invalid_request',
  policy_denied: 'access_denied',
  agent_quarantined: 'invalid_target',
};

const pick = <T>(xs: readonly T[], n: number): T => xs[n % xs.length]!;
const byMask = <T>(xs: readonly T[], mask: number): T[] => xs.filter((_, i) => (mask >> i) & 1);
const subsetOf = (inner: readonly string[], outer: readonly string[]) => inner.every((s) => outer.includes(s));
const isLiveTask = (t: Task, now: number) => !isTerminal(t.state) && now < t.deadline;

// ---------------------------------------------------------------------------------------------
// Generators

const delegationArb = fc
  .record({
    resources: fc.uniqueArray(fc.constantFrom(...RESOURCES), { minLength: 1, maxLength: 3 }),
    scopeMasks: fc.array(fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 1, max: 15 }) }, fc.constant(0)), {
      minLength: 3,
      maxLength: 3,
    }),
    toolMasks: fc.option(fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 3, maxLength: 3 }), {
      nil: null,
      freq: 2,
    }),
    maxDepth: fc.integer({ min: 0, max: 4 }),
    maxTokenTtl: fc.integer({ min: 30, max: 3600 }),
    expiresIn: fc.oneof(
      { weight: 30, arbitrary: fc.integer({ min: 60, max: 86_400 }) },
      { weight: 1, arbitrary: fc.integer({ min: -600, max: 0 }) },
    ),
    subAgents: fc.option(fc.subarray(AGENTS), { nil: null }),
    minAssurance: fc.oneof(
      { weight: 6, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.constantFrom<AssuranceLevel>('NHI-AAL1', 'NHI-AAL2', 'NHI-AAL3') },
    ),
  })
  .map(
    ({ resources, scopeMasks, toolMasks, maxDepth, maxTokenTtl, expiresIn, subAgents, minAssurance }): Delegation => {
      const grants: Record<string, string[]> = {};
      resources.forEach((r, i) => {
        grants[r] = byMask(SCOPES, scopeMasks[i]!);
      });
      const details: ToolDetail[] = [];
      if (toolMasks) {
        resources.forEach((r, i) => {
          const actions = byMask(TOOLS, toolMasks[i]!);
          if (actions.length) details.push({ type: 'mcp_tool', locations: [r], actions });
        });
      }
      return {
        id: 'dlg_1',
        userId: 'usr_1',
        agentId: DELEGATE,
        status: 'active',
        grants,
        authorizationDetails: details.length ? details : null,
        maxTokenTtl,
        maxDepth,
        subAgents,
        expiresAt: START + expiresIn,
        createdAt: START - 10,
        decidedAt: START - 5,
        revokedAt: null,
        source: 'ciba',
        bindingMessage: null,
        credentialJti: 'jti_cred',
        minAssurance,
      };
    },
  );

const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });

/** One step of a chain, as raw choices interpreted against the state the chain has reached. */
const noisyStepArb = fc.record({
  actor: fc.oneof(w(4, fc.constant('expected' as const)), w(1, fc.constantFrom(...AGENTS))),
  actorPick: fc.nat(),
  audience: fc.constantFrom(...(['held', 'held', 'held', 'omit', 'omit', 'delegated', 'unknown'] as const)),
  audPick: fc.nat(),
  scope: fc.constantFrom(...(['omit', 'subset', 'subset', 'wider', 'foreign', 'empty'] as const)),
  scopeMask: fc.integer({ min: 0, max: 15 }),
  details: fc.constantFrom(...(['omit', 'omit', 'subset', 'wider', 'elsewhere', 'empty'] as const)),
  detailMask: fc.integer({ min: 0, max: 7 }),
  task: fc.constantFrom(...(['new', 'new', 'new', 'child', 'any', 'missing'] as const)),
  taskPick: fc.nat(),
  taskTtl: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: null, freq: 2 }),
  advance: fc.oneof(
    w(10, fc.constant(0)),
    w(6, fc.integer({ min: 1, max: 120 })),
    w(2, fc.integer({ min: 120, max: 20_000 })),
  ),
  endParent: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
  revoke: fc.integer({ min: 0, max: 19 }).map((n) => n === 0),
  fromDelegation: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
});

/** A step that asks for something reasonable (it may still be refused: depth, expiry, sub-agents). */
const cleanStepArb = fc.record({
  actor: fc.constant('expected' as const),
  actorPick: fc.nat(),
  audience: fc.constantFrom(...(['held', 'held', 'held', 'omit'] as const)),
  audPick: fc.nat(),
  scope: fc.constantFrom(...(['omit', 'subset', 'subset'] as const)),
  scopeMask: fc.integer({ min: 0, max: 15 }),
  details: fc.constantFrom(...(['omit', 'omit', 'omit', 'subset', 'empty'] as const)),
  detailMask: fc.integer({ min: 0, max: 7 }),
  task: fc.constantFrom(...(['new', 'new', 'new', 'new', 'child'] as const)),
  taskPick: fc.nat(),
  taskTtl: fc.option(fc.integer({ min: 60, max: 10_000 }), { nil: null, freq: 2 }),
  advance: fc.oneof(w(3, fc.constant(0)), w(1, fc.integer({ min: 1, max: 30 }))),
  endParent: fc.constant(false),
  revoke: fc.constant(false),
  fromDelegation: fc.constant(false),
});

const stepArb = fc.oneof(w(3, cleanStepArb), w(2, noisyStepArb));
type Step = typeof noisyStepArb extends fc.Arbitrary<infer S> ? S : never;

const scenarioArb = fc.record({
  delegation: delegationArb,
  steps: fc.array(stepArb, { minLength: 1, maxLength: 8 }),
});

// ---------------------------------------------------------------------------------------------
// The model: what is wrong with a request, decided independently of the code under test.

/** Every reason this exchange must be refused for (empty when it must be allowed). */
function violations(parent: Parent, req: ExchangeRequest, ctx: ExchangeContext): Set<Reason> {
  const { delegation: d, now, actorId } = ctx;
  const out = new Set<Reason>();
  if (d.status !== 'active') out.add('delegation_inactive');
  if (d.expiresAt <= now) out.add('delegation_expired');
  if (parent.task && !isLiveTask(parent.task, now)) out.add('task_ended');
  if (req.taskId !== null) {
    const t = ctx.named;
    const belongs =
      t !== null &&
      t.id === req.taskId &&
      t.delegationId === d.id &&
      t.agentId === actorId &&
      t.parentTaskId === (parent.task?.id ?? null);
    if (!belongs) out.add('task_not_found');
    else if (!isLiveTask(t, now)) out.add('task_ended');
  } else if (parent.task) {
    if (parent.task.depth + 1 > d.maxDepth) out.add('depth_exceeded');
    if (d.subAgents !== null && !d.subAgents.includes(actorId)) out.add('actor_not_allowed');
  }
  if ((parent.kind === 'delegation' || (req.taskId === null && !parent.task)) && actorId !== d.agentId) {
    out.add('actor_not_delegate');
  }
  const held = Object.keys(parent.grants);
  const audience = req.audience ?? (held.length === 1 ? held[0]! : null);
  if (audience === null) {
    out.add('audience_required');
  } else if (!held.includes(audience)) {
    out.add(parent.kind === 'delegation' ? 'audience_not_delegated' : 'audience_not_in_parent');
  } else {
    const parentScopes = parent.grants[audience]!;
    const scope = req.scope ?? parentScopes;
    if (!subsetOf(scope, parentScopes) || !subsetOf(scope, d.grants[audience] ?? [])) out.add('scope_exceeds_parent');
    else if (scope.length === 0) out.add('scope_empty');
    // Assurance: the actor reaches the delegation's minimum and the resource's.
    const reaches = (min: AssuranceLevel | null | undefined) =>
      !min || LEVELS.indexOf(ctx.actorAssurance ?? null) >= LEVELS.indexOf(min);
    if (!reaches(d.minAssurance) || !reaches(ctx.resourceMinAssurance?.[audience])) out.add('assurance_too_low');
    if (req.details) {
      const mine = (parent.details ?? []).filter((x) => x.locations[0] === audience);
      const within = (x: ToolDetail) =>
        x.locations[0] === audience && mine.some((p) => x.actions.every((a) => p.actions.includes(a)));
      if (!req.details.every(within)) out.add('details_exceed_parent');
    }
  }
  if (parent.exp <= now) out.add('subject_expired');
  return out;
}

// ---------------------------------------------------------------------------------------------
// Chains

interface Stats {
  steps: number;
  allowed: number;
  depthAllowed: number[];
  reasons: Partial<Record<Reason, number>>;
  /** Allowed steps under a tool-restricted parent that named no tools (an empty list). */
  restrictedEmptyAllowed: number;
}

const newStats = (): Stats => ({
  steps: 0,
  allowed: 0,
  depthAllowed: [0, 0, 0, 0, 0],
  reasons: {},
  restrictedEmptyAllowed: 0,
});

/** Ends a task and its whole subtree, as the task service does in one transaction. */
function endSubtree(tasks: Task[], root: Task, now: number) {
  const ids = new Set([root.id]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const t of tasks) {
      if (t.parentTaskId && ids.has(t.parentTaskId) && !ids.has(t.id)) {
        ids.add(t.id);
        grew = true;
      }
    }
  }
  for (const t of tasks) {
    if (ids.has(t.id) && !isTerminal(t.state)) {
      t.state = 'canceled';
      t.endedAt = now;
      t.endReason = t.id === root.id ? 'ended_by_user' : 'parent_ended';
    }
  }
}

/** Builds a request (and actor, named task) from a step's raw choices and the current parent. */
function buildRequest(step: Step, parent: Parent, d: Delegation, tasks: Task[]) {
  const held = Object.keys(parent.grants);
  let audience: string | null;
  switch (step.audience) {
    case 'held':
      audience = pick(held, step.audPick);
      break;
    case 'omit':
      audience = null;
      break;
    case 'delegated':
      audience = pick(Object.keys(d.grants), step.audPick);
      break;
    case 'unknown':
      audience = pick([UNKNOWN, ...RESOURCES.filter((r) => !(r in d.grants))], step.audPick);
      break;
  }
  const resolved = audience ?? (held.length === 1 ? held[0]! : pick(held, step.audPick));
  const parentScopes = parent.grants[resolved] ?? byMask(SCOPES, step.scopeMask);
  let scope: string[] | null;
  switch (step.scope) {
    case 'omit':
      scope = null;
      break;
    case 'subset': {
      const chosen = byMask(parentScopes, step.scopeMask);
      scope = chosen.length ? chosen : parentScopes.slice(0, 1);
      break;
    }
    case 'wider': {
      const extra = SCOPES.find((s) => !parentScopes.includes(s)) ?? FOREIGN;
      scope = [...byMask(parentScopes, step.scopeMask), extra];
      break;
    }
    case 'foreign':
      scope = [FOREIGN, ...byMask(parentScopes, step.scopeMask)];
      break;
    case 'empty':
      scope = [];
      break;
  }
  const mine = parent.details?.find((x) => x.locations[0] === resolved);
  let details: ToolDetail[] | null;
  switch (step.details) {
    case 'omit':
      details = null;
      break;
    case 'subset': {
      // Only a parent with tools at the audience has a subset to ask for.
      const actions = mine ? byMask(mine.actions, step.detailMask) : [];
      details = mine
        ? [{ type: 'mcp_tool', locations: [resolved], actions: actions.length ? actions : mine.actions.slice(0, 1) }]
        : null;
      break;
    }
    case 'wider': {
      const extra = TOOLS.find((t) => !mine?.actions.includes(t)) ?? 'shell';
      details = [{ type: 'mcp_tool', locations: [resolved], actions: [...(mine?.actions ?? []), extra] }];
      break;
    }
    case 'elsewhere': {
      const where = pick(
        [...RESOURCES, UNKNOWN].filter((r) => r !== resolved),
        step.detailMask,
      );
      details = [{ type: 'mcp_tool', locations: [where], actions: [pick(TOOLS, step.detailMask)] }];
      break;
    }
    case 'empty':
      // authorization_details that carry no mcp_tool entry at all.
      details = [];
      break;
  }
  let named: Task | null = null;
  let taskId: string | null = null;
  if (step.task === 'child' || step.task === 'any') {
    const children = tasks.filter((t) => t.parentTaskId === (parent.task?.id ?? null));
    // A child of the parent when there is one (else a new task); `any` may name an unrelated task.
    const pool = step.task === 'child' ? children : tasks;
    if (pool.length) {
      named = pick(pool, step.taskPick);
      taskId = named.id;
    }
  } else if (step.task === 'missing') {
    taskId = 'tsk_missing';
  }
  let actorId: string;
  if (step.actor !== 'expected') actorId = step.actor;
  else if (named) actorId = named.agentId;
  else if (!parent.task) actorId = d.agentId;
  else actorId = pick(d.subAgents?.length ? d.subAgents : AGENTS, step.actorPick);
  const req: ExchangeRequest = { audience, scope, details, taskId, taskTtl: step.taskTtl };
  return { req, actorId, named };
}

/** Asserts invariants 1–2 (README "Invariants") on an allowed exchange. */
function checkAllowed(plan: ExchangePlan, parent: Parent, req: ExchangeRequest, ctx: ExchangeContext) {
  const { delegation: d, now, actorId } = ctx;
  // Audience: one the parent holds and the delegation covers.
  expect(Object.keys(parent.grants)).toContain(plan.audience);
  expect(Object.keys(d.grants)).toContain(plan.audience);
  if (req.audience !== null) expect(plan.audience).toBe(req.audience);
  // Scope: non-empty, within the parent's at that audience and the delegation's.
  expect(plan.scope.length).toBeGreaterThan(0);
  expect(subsetOf(plan.scope, parent.grants[plan.audience]!)).toBe(true);
  expect(subsetOf(plan.scope, d.grants[plan.audience]!)).toBe(true);
  if (req.scope !== null) expect([...plan.scope].sort()).toEqual([...new Set(req.scope)].sort());
  // Details: within the parent's at that audience.
  for (const x of plan.details ?? []) {
    expect(x.locations[0]).toBe(plan.audience);
    const p = parent.details?.find((y) => y.locations[0] === plan.audience);
    expect(p).toBeDefined();
    expect(subsetOf(x.actions, p!.actions)).toBe(true);
  }
  // Tools as a resource server reads them (RFC 9396 mcp_tool): tools(T) ⊆ tools(P) at the audience,
  // and a restricted parent never yields an unrestricted child.
  const parentTools = toolsAllowedAt(parent.details, plan.audience);
  const childTools = toolsAllowedAt(plan.details, plan.audience);
  if (parentTools !== null) {
    expect(childTools, 'a tool-restricted parent yielded a child allowed every tool').not.toBeNull();
    expect(subsetOf(childTools!, parentTools)).toBe(true);
  }
  // Expiry.
  const deadline = plan.task.kind === 'existing' ? plan.task.task.deadline : plan.task.deadline;
  expect(plan.exp).toBeGreaterThan(now);
  expect(plan.exp).toBeLessThanOrEqual(parent.exp);
  expect(plan.exp).toBeLessThanOrEqual(deadline);
  expect(plan.exp).toBeLessThanOrEqual(d.expiresAt);
  expect(plan.exp).toBeLessThanOrEqual(now + Math.min(TOKEN_TTL, d.maxTokenTtl));
  // Actor chain: re-derived, current actor first, the parent's chain below it.
  const parentChain = parent.task?.actorChain ?? [];
  expect(plan.actorChain[0]).toBe(actorId);
  expect(plan.actorChain.slice(1)).toEqual(parentChain);
  expect(plan.actorChain[plan.actorChain.length - 1]).toBe(d.agentId);
  if (parent.kind === 'delegation') expect(actorId).toBe(d.agentId);
  // Assurance: the actor reaches every minimum that applies.
  const level = LEVELS.indexOf(ctx.actorAssurance ?? null);
  for (const min of [d.minAssurance, ctx.resourceMinAssurance?.[plan.audience]]) {
    if (min) expect(level).toBeGreaterThanOrEqual(LEVELS.indexOf(min));
  }
  // Task: depth and deadline.
  if (plan.task.kind === 'new') {
    expect(req.taskId).toBeNull();
    const depth = parent.task ? parent.task.depth + 1 : 0;
    expect(plan.task.depth).toBe(depth);
    expect(plan.task.depth).toBeLessThanOrEqual(d.maxDepth);
    expect(plan.task.parentTaskId).toBe(parent.task?.id ?? null);
    expect(plan.task.deadline).toBeGreaterThan(now);
    expect(plan.task.deadline).toBeLessThanOrEqual(now + Math.min(req.taskTtl ?? MAX_TASK_TTL, MAX_TASK_TTL));
    expect(plan.task.deadline).toBeLessThanOrEqual(d.expiresAt);
    if (parent.task) expect(plan.task.deadline).toBeLessThanOrEqual(parent.task.deadline);
    // A root task ends no later than its parent (an on-behalf-of subject token's expiry).
    else expect(plan.task.deadline).toBeLessThanOrEqual(parent.exp);
    if (depth > 0 && d.subAgents !== null) expect(d.subAgents).toContain(actorId);
    if (depth === 0) expect(actorId).toBe(d.agentId);
  } else {
    const t = plan.task.task;
    expect(t.id).toBe(req.taskId);
    expect(t.agentId).toBe(actorId);
    expect(t.parentTaskId).toBe(parent.task?.id ?? null);
    expect(t.depth).toBeLessThanOrEqual(d.maxDepth);
    expect(isLiveTask(t, now)).toBe(true);
  }
}

/** Runs one scenario: a chain of exchanges, each checked; returns nothing, throws on a violation. */
function runChain(delegation: Delegation, steps: Step[], stats: Stats) {
  const d: Delegation = structuredClone(delegation);
  const root: Parent = {
    kind: 'delegation',
    grants: d.grants,
    details: d.authorizationDetails,
    exp: d.expiresAt,
    task: null,
  };
  const tasks: Task[] = [];
  let parent = root;
  let now = START;
  let seq = 0;
  for (const step of steps) {
    now += step.advance;
    if (step.revoke) {
      d.status = 'revoked';
      d.revokedAt = now;
    }
    if (step.fromDelegation) parent = root;
    if (step.endParent && parent.task) endSubtree(tasks, parent.task, now);

    const { req, actorId, named } = buildRequest(step, parent, d, tasks);
    const ctx: ExchangeContext = {
      now,
      actorId,
      delegation: d,
      named,
      tokenTtl: TOKEN_TTL,
      maxTaskTtl: MAX_TASK_TTL,
      actorAssurance: AGENT_LEVEL[actorId] ?? null,
      resourceMinAssurance: RESOURCE_MIN,
    };
    const expected = violations(parent, req, ctx);
    const decision = attenuate(parent, req, ctx);
    stats.steps++;

    if (!decision.ok) {
      const { reason } = decision.denial;
      stats.reasons[reason] = (stats.reasons[reason] ?? 0) + 1;
      // The denial is one of the things wrong with the request; when only one is, it is that one.
      expect([...expected], `denied ${reason} but the model found nothing wrong`).toContain(reason);
      if (expected.size === 1) expect(reason).toBe([...expected][0]);
      const err = denialToError(decision.denial);
      expect(err.code).toBe(WIRE[reason]);
      expect(err.status).toBe(400);
      continue;
    }
    expect([...expected], 'allowed although the model found something wrong').toEqual([]);
    const plan = decision.value;
    checkAllowed(plan, parent, req, ctx);
    stats.allowed++;
    if (req.details?.length === 0 && toolsAllowedAt(parent.details, plan.audience) !== null) {
      stats.restrictedEmptyAllowed++;
    }

    let task: Task;
    if (plan.task.kind === 'existing') {
      task = plan.task.task;
    } else {
      const id = `tsk_${++seq}`;
      task = {
        id,
        delegationId: d.id,
        userId: d.userId,
        agentId: actorId,
        actorChain: plan.actorChain,
        parentTaskId: plan.task.parentTaskId,
        rootTaskId: parent.task?.rootTaskId ?? id,
        depth: plan.task.depth,
        state: 'working',
        createdAt: now,
        deadline: plan.task.deadline,
        endedAt: null,
        endReason: null,
        externalIds: {},
      };
      tasks.push(task);
    }
    stats.depthAllowed[task.depth] = (stats.depthAllowed[task.depth] ?? 0) + 1;
    parent = { kind: 'task', grants: { [plan.audience]: plan.scope }, details: plan.details, exp: plan.exp, task };
  }
}

describe('attenuate: random delegation chains', () => {
  test('every allowed exchange keeps the invariants; every denial is the right one', () => {
    const stats = newStats();
    fc.assert(
      fc.property(scenarioArb, ({ delegation, steps }) => {
        runChain(delegation, steps, stats);
      }),
      { numRuns: 1500, seed: 0x5eed_e77a },
    );
    // Not vacuous: a healthy share of steps allowed, at every depth, and every denial reachable.
    const share = stats.allowed / stats.steps;
    console.info(
      `attenuation property: ${stats.steps} steps, ${stats.allowed} allowed (${(share * 100).toFixed(1)}%),` +
        ` by depth ${JSON.stringify(stats.depthAllowed)}, denials ${JSON.stringify(stats.reasons)},` +
        ` empty details under a tool restriction allowed ${stats.restrictedEmptyAllowed}`,
    );
    expect(share).toBeGreaterThanOrEqual(0.2);
    expect(stats.restrictedEmptyAllowed, 'no restricted parent was asked with empty details').toBeGreaterThan(0);
    for (const depth of [0, 1, 2, 3]) expect(stats.depthAllowed[depth]).toBeGreaterThan(0);
    for (const reason of Object.keys(WIRE) as Reason[]) {
      if (reason === 'delegation_inactive' || reason === 'delegation_expired') continue; // below
      // Decided before `attenuate`, by the exchange service (broker/test/on-behalf-of.test.ts).
      if (reason === 'not_delegated_for_user' || reason === 'subject_revoked') continue;
      // Decided after `attenuate`, by core/quarantine.ts (broker/test/quarantine.test.ts).
      if (reason === 'agent_quarantined' || reason === 'policy_denied') continue;
      expect(stats.reasons[reason] ?? 0, `no step was denied with ${reason}`).toBeGreaterThan(0);
    }
    expect((stats.reasons.delegation_inactive ?? 0) + (stats.reasons.delegation_expired ?? 0)).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Terminal tasks and inactive delegations: nothing issues, whatever is asked.

const anyRequestArb = fc.record({
  audience: fc.option(fc.constantFrom(...RESOURCES, UNKNOWN), { nil: null }),
  scope: fc.option(fc.subarray([...SCOPES, FOREIGN]), { nil: null }),
  details: fc.option(
    fc.array(
      fc.record({
        type: fc.constant('mcp_tool' as const),
        locations: fc.tuple(fc.constantFrom(...RESOURCES)),
        actions: fc.subarray(TOOLS, { minLength: 1 }),
      }),
      { minLength: 1, maxLength: 2 },
    ),
    { nil: null },
  ),
  taskTtl: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: null }),
});

const parentTaskArb = (d: Delegation) =>
  fc
    .record({
      depth: fc.integer({ min: 0, max: 4 }),
      chain: fc.array(fc.constantFrom(...AGENTS), { minLength: 0, maxLength: 4 }),
      deadlineIn: fc.integer({ min: -1000, max: 5000 }),
      expIn: fc.integer({ min: -100, max: 3600 }),
      state: fc.constantFrom<TaskState>('submitted', 'working', 'input-required', 'auth-required', ...TERMINAL),
      audience: fc.constantFrom(...Object.keys(d.grants)),
      scopeMask: fc.integer({ min: 0, max: 15 }),
    })
    .map(({ depth, chain, deadlineIn, expIn, state, audience, scopeMask }): Parent => {
      const actorChain = [...chain.slice(0, depth), d.agentId];
      const task: Task = {
        id: 'tsk_parent',
        delegationId: d.id,
        userId: d.userId,
        agentId: actorChain[0]!,
        actorChain,
        parentTaskId: depth > 0 ? 'tsk_grandparent' : null,
        rootTaskId: depth > 0 ? 'tsk_root' : 'tsk_parent',
        depth,
        state,
        createdAt: START - 100,
        deadline: START + deadlineIn,
        endedAt: isTerminal(state) ? START - 1 : null,
        endReason: isTerminal(state) ? 'ended_by_user' : null,
        externalIds: {},
      };
      return {
        kind: 'task',
        grants: { [audience]: byMask(d.grants[audience]!, scopeMask) },
        details: d.authorizationDetails?.filter((x) => x.locations[0] === audience) ?? null,
        exp: START + expIn,
        task,
      };
    });

const parentArb = (d: Delegation): fc.Arbitrary<Parent> =>
  fc.oneof(
    fc.constant<Parent>({
      kind: 'delegation',
      grants: d.grants,
      details: d.authorizationDetails,
      exp: d.expiresAt,
      task: null,
    }),
    parentTaskArb(d),
  );

describe('attenuate: what never issues', () => {
  test('a terminal or overdue task never issues again, whoever asks for whatever', () => {
    const arb = delegationArb
      .map((d) => ({ ...d, expiresAt: Math.max(d.expiresAt, START + 60) }))
      .chain((d) =>
        fc.record({
          d: fc.constant(d),
          parent: parentTaskArb(d),
          req: anyRequestArb,
          actorId: fc.constantFrom(...AGENTS),
          endAs: fc.constantFrom(...TERMINAL, 'overdue' as const),
          named: fc.boolean(),
        }),
      );
    fc.assert(
      fc.property(arb, ({ d, parent: generated, req, actorId, endAs, named }) => {
        const parent = structuredClone(generated);
        const parentTask = parent.task!;
        // Either the subject's task has ended, or the named task the actor asks to mint for has.
        const ended: Task = named
          ? {
              ...parentTask,
              id: 'tsk_named',
              agentId: actorId,
              actorChain: [actorId, ...parentTask.actorChain],
              parentTaskId: parentTask.id,
              depth: parentTask.depth + 1,
            }
          : parentTask;
        if (named) {
          parentTask.state = 'working';
          parentTask.deadline = START + 1000;
        }
        if (endAs === 'overdue') {
          ended.state = 'working';
          ended.deadline = START - 1;
        } else {
          ended.state = endAs;
        }
        const decision = attenuate(
          parent,
          { ...req, taskId: named ? ended.id : null },
          {
            now: START,
            actorId,
            delegation: d,
            named: named ? ended : null,
            tokenTtl: TOKEN_TTL,
            maxTaskTtl: MAX_TASK_TTL,
          },
        );
        expect(decision.ok).toBe(false);
        if (decision.ok) return;
        expect(decision.denial.reason).toBe('task_ended');
        expect(denialToError(decision.denial).code).toBe('invalid_request');
      }),
      { numRuns: 500, seed: 0x7a5c_e4d },
    );
  });

  test('an inactive or expired delegation never issues, whoever asks for whatever', () => {
    const arb = delegationArb.chain((d) =>
      fc.record({
        d: fc.constant(d),
        status: fc.constantFrom<DelegationStatus>('pending', 'denied', 'revoked', 'active'),
        expiredBy: fc.integer({ min: 0, max: 5000 }),
        parent: parentArb(d),
        req: anyRequestArb,
        actorId: fc.oneof(fc.constant(DELEGATE), fc.constantFrom(...AGENTS)),
        advance: fc.integer({ min: 0, max: 100_000 }),
      }),
    );
    fc.assert(
      fc.property(arb, ({ d, status, expiredBy, parent, req, actorId, advance }) => {
        // Inactive, or active but past its expiry at `now`.
        const now = START + advance;
        const delegation: Delegation =
          status === 'active' ? { ...d, status, expiresAt: now - expiredBy } : { ...d, status };
        const decision = attenuate(
          parent,
          { ...req, taskId: null },
          { now, actorId, delegation, named: null, tokenTtl: TOKEN_TTL, maxTaskTtl: MAX_TASK_TTL },
        );
        expect(decision.ok).toBe(false);
        if (decision.ok) return;
        expect(decision.denial.reason).toBe(status === 'active' ? 'delegation_expired' : 'delegation_inactive');
        expect(denialToError(decision.denial).code).toBe('invalid_request');
      }),
      { numRuns: 500, seed: 0xde1e_6a7e },
    );
  });
});
