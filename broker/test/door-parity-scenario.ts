import fc from 'fast-check';
import type { TestAgent } from './fixtures.js';
import type { Door } from './parity-fixtures.js';

/**
 * What the door-parity property draws, and the run's own model of the world it builds: delegations
 * approved with random narrowing, and a sequence of operations whose raw choices (who calls, which
 * task, which resource and scope) are read against the state the sequence has reached. The model
 * only aims the operations; the answers are judged against each other, never against it.
 */

export const NOTES = 'https://notes.example.test/mcp';
export const CALENDAR = 'https://calendar.example.test/api';
export const FILES = 'https://files.example.test/api';
/** Never registered: a resource no delegation can cover. */
export const UNKNOWN = 'https://nowhere.example.test/x';
export const CATALOGUE: Record<string, string[]> = {
  [NOTES]: ['notes:read', 'notes:write', 'notes:delete'],
  [CALENDAR]: ['calendar:read', 'calendar:write'],
  [FILES]: ['files:read', 'files:write'],
};
export const REGISTERED = Object.keys(CATALOGUE);
export const ALL_SCOPES = Object.values(CATALOGUE).flat();
const TOOLS = ['fetch', 'search', 'send'];

export const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });
export const pick = <T>(xs: readonly T[], n: number): T => xs[n % xs.length]!;
export const byMask = <T>(xs: readonly T[], mask: number): T[] => xs.filter((_, i) => (mask >> i) & 1);

// ---------------------------------------------------------------------------------------------
// Generators. Agents 0–2 may exchange; agent 3 may not. People 0–1.

const delegationArb = fc.record({
  agent: fc.integer({ min: 0, max: 2 }),
  person: fc.integer({ min: 0, max: 1 }),
  resources: fc.uniqueArray(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 3 }),
  scopeMasks: fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 3, maxLength: 3 }),
  tools: fc.option(
    fc.record({ at: fc.nat(), asked: fc.integer({ min: 1, max: 7 }), granted: fc.integer({ min: 1, max: 7 }) }),
    { nil: null, freq: 2 },
  ),
  maxDepth: fc.oneof(w(1, fc.constant(0)), w(1, fc.constant(1)), w(2, fc.constant(2))),
  subAgents: fc.option(fc.subarray([0, 1, 2, 3]), { nil: null, freq: 2 }),
  lifetime: fc.oneof(w(4, fc.constant(3600)), w(1, fc.integer({ min: 300, max: 900 }))),
  maxTokenTtl: fc.oneof(w(3, fc.constant(null)), w(1, fc.integer({ min: 60, max: 200 }))),
});
export type DelegationSpec = typeof delegationArb extends fc.Arbitrary<infer S> ? S : never;

/** Who calls: the agent that holds the delegation or task, or any agent (often one that does not). */
const callerArb = fc.oneof(w(3, fc.constant('holder' as const)), w(1, fc.integer({ min: 0, max: 3 })));
/** Which task: one of the latest live ones (by what the run has seen), any live one, or any at all. */
const taskArb = fc.record({
  among: fc.constantFrom(...(['recent', 'recent', 'live', 'any'] as const)),
  pick: fc.nat(),
});
const targetArb = {
  scope: fc.constantFrom(...(['omit', 'omit', 'subset', 'subset', 'wider'] as const)),
  mask: fc.integer({ min: 1, max: 7 }),
  res: fc.nat(),
};

const startArb = fc.record({
  op: fc.constant('start' as const),
  caller: callerArb,
  dlg: fc.nat(),
  resource: fc.constantFrom(...(['held', 'held', 'held', 'other'] as const)),
  ...targetArb,
});
/** A start that asks for what the delegation grants, so that most runs have tasks to work on. */
const cleanStartArb = fc.record({
  ...targetArb,
  op: fc.constant('start' as const),
  caller: fc.constant('holder' as const),
  dlg: fc.nat(),
  resource: fc.constant('held' as const),
  scope: fc.constantFrom(...(['omit', 'subset'] as const)),
});
const renewArb = fc.record({
  op: fc.constant('renew' as const),
  caller: callerArb,
  task: taskArb,
  resource: fc.constantFrom(...(['held', 'held', 'omit', 'other'] as const)),
  ...targetArb,
});
const handOffArb = fc.record({
  ...targetArb,
  op: fc.constant('hand-off' as const),
  caller: fc.oneof(w(5, fc.constant('holder' as const)), w(1, fc.integer({ min: 0, max: 3 }))),
  task: taskArb,
  /** Mostly an agent the delegation allows to act (any when it names none), sometimes any agent. */
  sub: fc.oneof(w(4, fc.constant('allowed' as const)), w(1, fc.integer({ min: 0, max: 3 }))),
  subPick: fc.nat(),
  resource: fc.constantFrom(...(['held', 'held', 'held', 'held', 'held', 'omit', 'other'] as const)),
  scope: fc.constantFrom(...(['omit', 'omit', 'omit', 'subset', 'subset', 'subset', 'wider'] as const)),
});
const endArb = fc.record({
  op: fc.constant('end' as const),
  caller: fc.oneof(w(2, fc.constant('holder' as const)), w(1, fc.constant('root' as const)), w(1, fc.nat(3))),
  task: taskArb,
});
const waitArb = fc.record({ op: fc.constant('wait' as const), seconds: fc.integer({ min: 60, max: 400 }) });
const revokeArb = fc.record({ op: fc.constant('revoke' as const), dlg: fc.nat() });

const opArb = fc.oneof(w(6, startArb), w(4, renewArb), w(12, handOffArb), w(2, endArb), w(3, waitArb), w(1, revokeArb));
export type Op = typeof opArb extends fc.Arbitrary<infer O> ? O : never;
export type StartOp = Extract<Op, { op: 'start' }>;
export type RenewOp = Extract<Op, { op: 'renew' }>;
export type HandOffOp = Extract<Op, { op: 'hand-off' }>;
export type EndOp = Extract<Op, { op: 'end' }>;

/** A run: 2–4 delegations, then two starts and 6–14 more operations. */
export const scenarioArb = fc.record({
  delegations: fc.array(delegationArb, { minLength: 2, maxLength: 4 }),
  ops: fc
    .tuple(cleanStartArb, startArb, fc.array(opArb, { minLength: 6, maxLength: 14 }))
    .map(([first, second, rest]): Op[] => [first, second, ...rest]),
});

// ---------------------------------------------------------------------------------------------
// The run's world

export interface Delegation {
  name: string;
  id: string;
  agent: TestAgent;
  person: number;
  credential: string;
  grants: Record<string, string[]>;
  tools: { type: string; locations: string[]; actions: string[] }[] | null;
  maxDepth: number;
  subAgents: string[] | null;
  maxTokenTtl: number;
  expiresAt: number;
  revoked: boolean;
}

/** One door's copy of a logical task: its id, the token it was created with, and its deadline. */
export interface LaneTask {
  id: string;
  token: string;
  exp: number;
  deadline: number;
}

export interface LogicalTask {
  name: string;
  dlg: Delegation;
  holder: TestAgent;
  depth: number;
  /** Agent client ids, current first (RFC 8693 §4.1). */
  chain: string[];
  /** A sub-task's token audience and scope; a root task holds its delegation instead. */
  aud: string | null;
  scope: string[];
  lanes: Record<Door, LaneTask>;
  parent: LogicalTask | null;
  /** Whether the run has ended it (or a task above it). */
  ended: boolean;
}

/** The CIBA request (every scope of the chosen resources) and the person's narrowing approval. */
export function askAndApproval(spec: DelegationSpec, agentIds: string[], index: number) {
  const urls = spec.resources.map((r) => REGISTERED[r]!);
  const scopes: Record<string, string[]> = {};
  urls.forEach((url, i) => {
    scopes[url] = byMask(CATALOGUE[url]!, spec.scopeMasks[i]!);
  });
  if (Object.values(scopes).every((s) => s.length === 0)) scopes[urls[0]!] = [CATALOGUE[urls[0]!]![0]!];
  const ask: Record<string, string | string[]> = {
    scope: `openid ${urls.flatMap((u) => CATALOGUE[u]!).join(' ')}`,
    resource: urls,
    max_depth: '2',
    binding_message: `Parity ${index}`,
  };
  const approval: Record<string, unknown> = {
    scopes,
    max_depth: spec.maxDepth,
    sub_agents: spec.subAgents === null ? null : spec.subAgents.map((i) => agentIds[i]!),
    expires_in: spec.lifetime,
    ...(spec.maxTokenTtl === null ? {} : { max_token_ttl: spec.maxTokenTtl }),
  };
  if (spec.tools) {
    // RFC 9396 mcp_tool at one resource, narrowed on approval to a non-empty subset.
    const location = pick(urls, spec.tools.at);
    const asked = byMask(TOOLS, spec.tools.asked);
    const granted = byMask(asked, spec.tools.granted);
    ask.authorization_details = JSON.stringify([{ type: 'mcp_tool', locations: [location], actions: asked }]);
    approval.authorization_details = [
      { type: 'mcp_tool', locations: [location], actions: granted.length ? granted : asked.slice(0, 1) },
    ];
  }
  return { ask, approval };
}

/** What a task holds: a root task its delegation's grants, a sub-task its token's audience and scope. */
export function holdings(t: LogicalTask): Record<string, string[]> {
  return t.depth === 0 ? t.dlg.grants : { [t.aud!]: t.scope };
}

/** A resource and scope chosen inside or outside what the parent holds. */
export function chooseTarget(
  held: Record<string, string[]>,
  choice: 'held' | 'omit' | 'other',
  t: { scope: 'omit' | 'subset' | 'wider'; mask: number; res: number },
): { resource?: string; scope?: string } {
  const heldUrls = Object.keys(held);
  const elsewhere = [...REGISTERED, UNKNOWN].filter((u) => !heldUrls.includes(u));
  const resource = choice === 'held' ? pick(heldUrls, t.res) : choice === 'other' ? pick(elsewhere, t.res) : undefined;
  const audience = resource ?? (heldUrls.length === 1 ? heldUrls[0] : undefined);
  const parentScopes = audience ? (held[audience] ?? []) : [];
  const out: { resource?: string; scope?: string } = resource ? { resource } : {};
  if (t.scope === 'subset') {
    const chosen = byMask(parentScopes, t.mask);
    out.scope = (chosen.length ? chosen : [parentScopes[0] ?? pick(ALL_SCOPES, t.mask)]).join(' ');
  } else if (t.scope === 'wider') {
    const extra = pick(
      ALL_SCOPES.filter((s) => !parentScopes.includes(s)),
      t.mask,
    );
    out.scope = [...byMask(parentScopes, t.mask), extra].join(' ');
  }
  return out;
}

/**
 * The task an operation names. "Live" is only what the run has seen (ends it asked for, revoked or
 * expired delegations, deadlines). A renew is aimed at root tasks, the only ones that renew.
 */
export function chooseTask(
  tasks: LogicalTask[],
  choice: { among: 'recent' | 'live' | 'any'; pick: number },
  now: number,
  rootsOnly: boolean,
): LogicalTask | null {
  const live = tasks.filter(
    (t) =>
      !t.ended &&
      !t.dlg.revoked &&
      t.dlg.expiresAt > now &&
      t.lanes.token.deadline > now &&
      (!rootsOnly || t.depth === 0),
  );
  const among = choice.among === 'any' || live.length === 0 ? tasks : choice.among === 'live' ? live : live.slice(-3);
  return among.length ? pick(among, choice.pick) : null;
}

/** The sub-agent of a hand-off: one the delegation allows (any agent when it names none), or any agent. */
export function subAgentFor(op: HandOffOp, d: Delegation, agents: TestAgent[]): TestAgent {
  if (op.sub !== 'allowed') return agents[op.sub]!;
  const allowed = agents.filter((a) => d.subAgents?.includes(a.clientId) ?? true);
  return pick(allowed.length ? allowed : agents, op.subPick);
}

/**
 * How far to move time for a wait of about `seconds`: never to within `margin` seconds of an
 * expiry or deadline, so that no door's call lands on the other side of one than another's.
 */
export function safeAdvance(
  seconds: number,
  now: number,
  delegations: Delegation[],
  tasks: LogicalTask[],
  margin: number,
): number {
  const boundaries = [
    ...delegations.map((d) => d.expiresAt),
    ...tasks.flatMap((t) => Object.values(t.lanes).flatMap((lane) => [lane.exp, lane.deadline])),
  ];
  let advance = seconds;
  while (boundaries.some((b) => Math.abs(now + advance - b) < margin)) advance += margin;
  return advance;
}

/** Whether `x` is `t` or a task below it. */
export function isBelow(x: LogicalTask, t: LogicalTask): boolean {
  return x === t || (x.parent !== null && isBelow(x.parent, t));
}
