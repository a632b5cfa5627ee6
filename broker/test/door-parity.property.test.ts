import fc from 'fast-check';
import { createLocalJWKSet, type JSONWebKeySet, type JWTPayload, jwtVerify } from 'jose';
import type * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TT_ACCESS, TT_JWT, userApi } from './delegation-fixtures.js';
import {
  ALL_SCOPES,
  askAndApproval,
  CATALOGUE,
  chooseTarget,
  chooseTask,
  type Delegation,
  type DelegationSpec,
  type EndOp,
  type HandOffOp,
  holdings,
  isBelow,
  type LaneTask,
  type LogicalTask,
  type Op,
  pick,
  type RenewOp,
  type StartOp,
  safeAdvance,
  scenarioArb,
  subAgentFor,
} from './door-parity-scenario.js';
import {
  addAgent,
  addResource,
  adminApi,
  createUser,
  discover,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';
import { cibaDelegation, DOORS, type Door, type DoorAnswer, DoorClients, freshActorToken } from './parity-fixtures.js';

/**
 * One engine, three doors. The token endpoint (RFC 8693 token exchange), Errand's MCP tools and its
 * A2A skills must take the same decisions and issue the same tokens. Each run draws 2–4 CIBA
 * delegations with random narrowing (scopes per resource, max_depth 0–2, sub_agents, RFC 9396
 * tools) among 3 resources, 4 agents (one without the token-exchange grant) and 2 people, then 8–16
 * operations: start a task, renew a root task's token, hand a task to a sub-agent, end a task, let
 * time pass, revoke a delegation, with callers, tasks, sub-agents, resources and scopes drawn
 * inside and outside what is held (door-parity-scenario.ts).
 *
 * Every operation runs at all three doors, and each door keeps its own copy of every task (its
 * lane): a start or hand-off allowed at all three yields one logical task with three ids, and later
 * operations on it go to each door's own copy. What must agree:
 * - allowed at one door means allowed at all three;
 * - a refusal carries the same code at the MCP and A2A doors, and the token endpoint's OAuth code
 *   where both sides are exchange denials (door pre-checks such as no_task have no such code);
 * - issued tokens (verified against the JWKS) carry the same sub, aud, scope, client_id,
 *   authorization_details (RFC 9396), act (RFC 8693 §4.1) and errand_aal; each exp lies after the
 *   issue time and within min(parent's exp, task deadline, delegation expiry);
 * - ending a task gets the same answer, code for code.
 *
 * A CI run (fixed seed) makes 30 runs: 351 operations and 952 door calls; of the 284 minting
 * operations 123 are allowed and 161 refused, plus 15 ends (13 allowed); 10–13 s on two cores.
 * It prints the counts, the refusal codes and the denial reasons the audit log recorded, and fails
 * if the generator stops reaching any of the rules below.
 */

/** The OAuth codes an exchange denial carries on every door (RFC 8693 §2.2.2, RFC 6749 §5.2, RFC 9396 §5). */
const EXCHANGE_CODES = new Set([
  'invalid_request',
  'invalid_scope',
  'invalid_target',
  'invalid_authorization_details',
  'unauthorized_client',
]);
const ERRAND_TASK = 'errand_task';
/** After a wait, every expiry and deadline is at least this far from "now" (seconds). */
const BOUNDARY_MARGIN = 10;

interface Person {
  username: string;
  me: Awaited<ReturnType<typeof userApi>>;
}

let tb: TestBroker;
let as: oauth.AuthorizationServer;
let agents: TestAgent[];
let people: Person[];
let doors: DoorClients;
let jwks: ReturnType<typeof createLocalJWKSet>;
const names = new Map<string, string>();

beforeAll(async () => {
  tb = await startBroker({ ERRAND_CIBA_INTERVAL: '1', ERRAND_SESSION_TTL: String(30 * 86_400) });
  const api = await adminApi(tb);
  for (const [url, scopes] of Object.entries(CATALOGUE)) await addResource(api, url, scopes);
  const scope = ['errand:delegate', 'errand:tasks', ...ALL_SCOPES];
  agents = [];
  // Three agents with their defaults (client credentials, token exchange, CIBA); the fourth may
  // only use client credentials: it can act as a sub-agent but never exchange (RFC 8693 §2.1 policy).
  for (let i = 0; i < 3; i++) agents.push(await addAgent(api, { name: `agent ${i}`, scope, grant_types: undefined }));
  agents.push(await addAgent(api, { name: 'agent 3', scope, grant_types: ['client_credentials'] }));
  agents.forEach((a, i) => {
    names.set(a.clientId, `agent${i}`);
  });
  people = [];
  for (let i = 0; i < 2; i++) {
    const user = await createUser(tb);
    people.push({ username: user.username, me: await userApi(tb, user) });
  }
  as = await discover(tb);
  doors = await DoorClients.open(tb, as, agents);
  jwks = createLocalJWKSet((await (await fetch(as.jwks_uri!)).json()) as JSONWebKeySet);
});
afterAll(async () => {
  await doors?.close();
  await tb?.close();
});

const nameOf = (clientId: string) => names.get(clientId) ?? clientId;
/** A text with every agent's client id replaced by its short name. */
const readable = (text: string) => [...names].reduce((t, [id, name]) => t.replaceAll(id, name), text);

// ---------------------------------------------------------------------------------------------
// Statistics, printed once at the end

const stats = {
  runs: 0,
  ops: {} as Record<string, number>,
  skipped: 0,
  doorCalls: 0,
  /** Operations (not door answers) allowed and denied, by kind. */
  allowed: {} as Record<string, number>,
  denied: {} as Record<string, number>,
  /** Refusal codes, by door. */
  codes: {} as Record<string, number>,
  /** Hand-offs of a sub-task by an agent that does not hold it: what the token endpoint did. */
  possession: { allowed: 0, denied: 0 },
  /** Refusals whose codes differ only because the token endpoint's renew met another fault first. */
  doubleFaults: 0,
  /** Minting operations whose tokens were narrowed to tools (RFC 9396 authorization_details). */
  withTools: 0,
  deepest: 0,
};
const bump = (m: Record<string, number>, k: string) => {
  m[k] = (m[k] ?? 0) + 1;
};
const sum = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);

function tally(kind: string, answers: Answers) {
  bump(answers.token.ok ? stats.allowed : stats.denied, kind);
  for (const door of DOORS) {
    const a = answers[door];
    if (!a.ok) bump(stats.codes, `${door}:${a.error}`);
  }
}

// ---------------------------------------------------------------------------------------------
// One run

type Answers = Record<Door, DoorAnswer>;

const show = (a: DoorAnswer) =>
  a.ok
    ? `ok ${a.value.task_id ?? ''} ${a.value.scope !== undefined ? `scope="${String(a.value.scope)}"` : String(a.value.state ?? '')}`
    : `${a.error} (${a.description})`;
const showAll = (answers: Answers) => DOORS.map((d) => `    ${d.padEnd(5)} ${show(answers[d])}`).join('\n');

/** A run's state and its story: the delegations, each step and the three answers to it. */
class Run {
  readonly story: string[] = [];
  readonly delegations: Delegation[] = [];
  readonly tasks: LogicalTask[] = [];
  step = 0;

  log(line: string, answers?: Answers) {
    this.story.push(`#${this.step} ${line}${answers ? `\n${showAll(answers)}` : ''}`);
  }

  /** The story so far, for failure messages. */
  told(): string {
    return readable(`\n${this.story.join('\n')}\n`);
  }
}

async function runScenario(specs: DelegationSpec[], ops: Op[]): Promise<void> {
  stats.runs++;
  const run = new Run();
  for (const [i, spec] of specs.entries()) run.delegations.push(await delegate(run, spec, i));
  for (const [step, op] of ops.entries()) {
    run.step = step;
    bump(stats.ops, op.op);
    if (op.op === 'wait') {
      const now = tb.clock.now();
      tb.clock.advance(safeAdvance(op.seconds, now, run.delegations, run.tasks, BOUNDARY_MARGIN));
      run.log(`wait → now +${tb.clock.now() - now} s`);
    } else if (op.op === 'revoke') {
      const d = pick(run.delegations, op.dlg);
      const res = await people[d.person]!.me.call('POST', `/api/me/delegations/${d.id}/revoke`);
      d.revoked = res.status === 200;
      run.log(`${d.name} revoked by its person → ${res.status}`);
    } else if (op.op === 'start') {
      await start(run, op);
    } else {
      const t = chooseTask(run.tasks, op.task, tb.clock.now(), op.op === 'renew');
      if (!t) stats.skipped++;
      else if (op.op === 'renew') await renew(run, op, t);
      else if (op.op === 'hand-off') await handOff(run, op, t);
      else await end(run, op, t);
    }
  }
}

async function delegate(run: Run, spec: DelegationSpec, index: number): Promise<Delegation> {
  const agent = agents[spec.agent]!;
  const { ask, approval } = askAndApproval(
    spec,
    agents.map((a) => a.clientId),
    index,
  );
  const { credential, delegation: view } = await cibaDelegation(tb, as, agent, people[spec.person]!, ask, approval);
  const d: Delegation = {
    name: `D${index}`,
    id: view.delegation_id,
    agent,
    person: spec.person,
    credential,
    grants: view.scopes,
    tools: view.authorization_details,
    maxDepth: view.max_depth,
    subAgents: view.sub_agents,
    maxTokenTtl: view.max_token_ttl,
    expiresAt: view.expires_at,
    revoked: false,
  };
  run.story.push(
    `${d.name}: ${nameOf(agent.clientId)} for person${spec.person}, grants ${JSON.stringify(d.grants)}, tools ` +
      `${JSON.stringify(d.tools?.map((t) => [t.locations[0], t.actions]) ?? null)}, max_depth ${d.maxDepth}, ` +
      `sub_agents ${JSON.stringify(d.subAgents?.map(nameOf) ?? null)}, expires in ${d.expiresAt - tb.clock.now()} s`,
  );
  return d;
}

/** start_task / issue_task_token {delegation_id} = an exchange of the delegation credential. */
async function start(run: Run, op: StartOp) {
  const before = tb.clock.now();
  const d = pick(run.delegations, op.dlg);
  const caller = op.caller === 'holder' ? d.agent : agents[op.caller]!;
  const target = chooseTarget(d.grants, op.resource, op);
  // The agent doors require a resource for a new task.
  target.resource ??= pick(Object.keys(d.grants), op.res);
  const answers: Answers = {
    token: await doors.exchange(caller, { subject_token: d.credential, subject_token_type: TT_JWT, ...target }),
    mcp: await doors.mcp(caller, 'start_task', { delegation_id: d.id, ...target }),
    a2a: await doors.a2a(caller, 'issue_task_token', { delegation_id: d.id, ...target }),
  };
  stats.doorCalls += 3;
  run.log(`start by ${nameOf(caller.clientId)} under ${d.name} ${JSON.stringify(target)}`, answers);
  const exp = d.expiresAt;
  const minted = await judgeMint(run, 'start', answers, {
    parentExp: { token: exp, mcp: exp, a2a: exp },
    dlg: d,
    before,
    parent: null,
    named: null,
  });
  if (minted) addTask(run, d, caller, null, minted);
}

/** get_task_token / issue_task_token {task_id} = an exchange of the credential naming the task (errand_task). */
async function renew(run: Run, op: RenewOp, t: LogicalTask) {
  const before = tb.clock.now();
  const d = t.dlg;
  const caller = op.caller === 'holder' ? t.holder : agents[op.caller]!;
  const target = chooseTarget(holdings(t), op.resource, op);
  const answers: Answers = {
    token: await doors.exchange(caller, {
      subject_token: d.credential,
      subject_token_type: TT_JWT,
      authorization_details: JSON.stringify([{ type: ERRAND_TASK, task_id: t.lanes.token.id }]),
      ...target,
    }),
    mcp: await doors.mcp(caller, 'get_task_token', { task_id: t.lanes.mcp.id, ...target }),
    a2a: await doors.a2a(caller, 'issue_task_token', { task_id: t.lanes.a2a.id, ...target }),
  };
  stats.doorCalls += 3;
  run.log(`renew ${t.name} by ${nameOf(caller.clientId)} ${JSON.stringify(target)}`, answers);
  const exp = d.expiresAt;
  await judgeMint(run, 'renew', answers, {
    parentExp: { token: exp, mcp: exp, a2a: exp },
    dlg: d,
    before,
    parent: null,
    named: t,
  });
}

/**
 * delegate_to_subagent = an exchange by the caller of a token of the task (see `subjectToken`),
 * with the sub-agent's actor_token (RFC 8693 §2.1).
 */
async function handOff(run: Run, op: HandOffOp, t: LogicalTask) {
  const before = tb.clock.now();
  const d = t.dlg;
  const caller = op.caller === 'holder' ? t.holder : agents[op.caller]!;
  const sub = subAgentFor(op, d, agents);
  const target = chooseTarget(holdings(t), op.resource, op);
  const subject = await subjectToken(caller, t, target.resource);
  const refusedAtRenew = 'ok' in subject;
  const answers: Answers = {
    token: refusedAtRenew
      ? subject
      : await doors.exchange(caller, {
          subject_token: subject.token,
          subject_token_type: TT_ACCESS,
          actor_token: await freshActorToken(tb, sub),
          actor_token_type: TT_JWT,
          ...target,
        }),
    mcp: await doors.mcp(caller, 'delegate_to_subagent', {
      task_id: t.lanes.mcp.id,
      sub_agent_id: sub.clientId,
      actor_token: await freshActorToken(tb, sub),
      ...target,
    }),
    a2a: await doors.a2a(caller, 'delegate_to_subagent', {
      task_id: t.lanes.a2a.id,
      sub_agent_id: sub.clientId,
      actor_token: await freshActorToken(tb, sub),
      ...target,
    }),
  };
  stats.doorCalls += refusedAtRenew ? 2 : 3;
  run.log(
    `hand-off of ${t.name} (depth ${t.depth}, held by ${nameOf(t.holder.clientId)}) by ${nameOf(caller.clientId)} ` +
      `to ${nameOf(sub.clientId)} ${JSON.stringify(target)}${refusedAtRenew ? ' [token: refused at its renew]' : ''}`,
    answers,
  );

  if (caller !== t.holder && t.depth > 0) {
    // The agent doors name the task by id, so only the agent holding it may hand it on. The token
    // endpoint takes possession of a token of the task instead (RFC 8693 §2.1: whoever presents the
    // subject token), and the parent agent has that token, having passed it on. Not comparable: the
    // doors must refuse, and what the token endpoint did is counted.
    for (const door of ['mcp', 'a2a'] as const) {
      expect(answers[door], `a door let an agent hand on a task it does not hold${run.told()}`).toMatchObject({
        ok: false,
        error: caller === agents[3] ? 'unauthorized_client' : 'no_task',
      });
    }
    stats.possession[answers.token.ok ? 'allowed' : 'denied']++;
    tally('hand-off by a non-holder', answers);
    return;
  }

  // The renew that fetches a root task's token checks the resource before the hand-off's own depth
  // and sub-agent checks run: with faults of both kinds, each side names one of them.
  const depthOrSubAgent = t.depth + 1 > d.maxDepth || (d.subAgents !== null && !d.subAgents.includes(sub.clientId));
  const minted = await judgeMint(
    run,
    'hand-off',
    answers,
    {
      parentExp: {
        token: refusedAtRenew ? 0 : subject.exp,
        mcp: t.depth === 0 ? d.expiresAt : t.lanes.mcp.exp,
        a2a: t.depth === 0 ? d.expiresAt : t.lanes.a2a.exp,
      },
      dlg: d,
      before,
      parent: t,
      named: null,
    },
    refusedAtRenew && depthOrSubAgent ? { token: 'invalid_target', doors: 'invalid_request' } : null,
  );
  if (minted) addTask(run, d, sub, t, minted);
}

/**
 * The token endpoint's subject for a hand-off: for a root task a token holding all its delegation
 * grants at the resource (a renew without scope), for a sub-task the token it was created with.
 */
async function subjectToken(
  caller: TestAgent,
  t: LogicalTask,
  resource: string | undefined,
): Promise<{ token: string; exp: number } | Extract<DoorAnswer, { ok: false }>> {
  if (t.depth > 0) return { token: t.lanes.token.token, exp: t.lanes.token.exp };
  const renewed = await doors.exchange(caller, {
    subject_token: t.dlg.credential,
    subject_token_type: TT_JWT,
    authorization_details: JSON.stringify([{ type: ERRAND_TASK, task_id: t.lanes.token.id }]),
    ...(resource ? { resource } : {}),
  });
  stats.doorCalls++;
  if (!renewed.ok) return renewed;
  const token = String(renewed.value.access_token);
  return { token, exp: (await verified(token)).exp! };
}

/** end_task (MCP, A2A) = POST /tasks/{id}/end: one service behind all three, so code for code. */
async function end(run: Run, op: EndOp, t: LogicalTask) {
  const caller =
    op.caller === 'holder'
      ? t.holder
      : op.caller === 'root'
        ? agents.find((a) => a.clientId === t.chain.at(-1))!
        : agents[op.caller]!;
  const answers: Answers = {
    token: await doors.endTask(caller, t.lanes.token.id),
    mcp: await doors.mcp(caller, 'end_task', { task_id: t.lanes.mcp.id, state: 'completed' }),
    a2a: await doors.a2a(caller, 'end_task', { task_id: t.lanes.a2a.id, state: 'completed' }),
  };
  stats.doorCalls += 3;
  run.log(`end ${t.name} by ${nameOf(caller.clientId)}`, answers);
  tally('end', answers);
  const outcome = DOORS.map((door) => {
    const a = answers[door];
    return a.ok ? `ended ${String(a.value.state)}` : a.error;
  });
  expect(outcome, `the doors disagree on ending a task${run.told()}`).toEqual([outcome[0], outcome[0], outcome[0]]);
  if (answers.token.ok) for (const x of run.tasks) if (isBelow(x, t)) x.ended = true;
}

function addTask(run: Run, dlg: Delegation, holder: TestAgent, parent: LogicalTask | null, minted: Minted) {
  const depth = parent ? parent.depth + 1 : 0;
  run.tasks.push({
    name: `T${run.tasks.length}`,
    dlg,
    holder,
    depth,
    chain: [holder.clientId, ...(parent?.chain ?? [])],
    aud: parent ? minted.aud : null,
    scope: parent ? minted.scope : [],
    lanes: minted.lanes,
    parent,
    ended: false,
  });
  stats.deepest = Math.max(stats.deepest, depth);
}

// ---------------------------------------------------------------------------------------------
// Judging the three answers to a minting operation

interface Claims extends JWTPayload {
  scope: string;
  client_id: string;
  act: unknown;
  task_id: string;
  authorization_details?: unknown;
  errand_aal?: string;
}

interface Minted {
  aud: string;
  scope: string[];
  lanes: Record<Door, LaneTask>;
}

async function verified(token: string): Promise<Claims> {
  const now = new Date(tb.clock.now() * 1000);
  return (await jwtVerify(token, jwks, { issuer: tb.url, typ: 'at+jwt', currentDate: now })).payload as Claims;
}

/** The RFC 8693 §4.1 nested `act` claim for actor ids, current actor outermost. */
function nestedAct(chain: readonly string[]): Record<string, unknown> {
  const [first, ...rest] = chain;
  return rest.length ? { sub: first, act: nestedAct(rest) } : { sub: first };
}

/** The claims the doors must agree on, as one comparable object (agents by their short names). */
const comparable = (c: Claims) => ({
  sub: c.sub,
  aud: c.aud,
  scope: c.scope.split(' ').sort().join(' '),
  client_id: nameOf(c.client_id),
  authorization_details: c.authorization_details ?? null,
  act: JSON.parse(readable(JSON.stringify(c.act))) as unknown,
  errand_aal: c.errand_aal ?? null,
});

/**
 * On refusal: the same decision, the same code at both agent doors, and the token endpoint's OAuth
 * code where both sides are exchange denials. On success: the same claims, each exp within its
 * bound, each door's task where it belongs, with the same shape.
 */
async function judgeMint(
  run: Run,
  kind: 'start' | 'renew' | 'hand-off',
  answers: Answers,
  ctx: {
    parentExp: Record<Door, number>;
    dlg: Delegation;
    before: number;
    parent: LogicalTask | null;
    named: LogicalTask | null;
  },
  doubleFault: { token: string; doors: string } | null = null,
): Promise<Minted | null> {
  const told = run.told();
  tally(kind, answers);
  const decisions = DOORS.map((door) => (answers[door].ok ? 'allowed' : 'denied'));
  expect(decisions, `the doors disagree on whether to allow a ${kind}${told}`).toEqual(Array(3).fill(decisions[0]));
  if (!answers.token.ok) {
    const [token, mcp, a2a] = DOORS.map((door) => (answers[door] as { error: string }).error);
    expect(a2a, `the MCP and A2A doors refuse a ${kind} with different codes${told}`).toBe(mcp);
    if (EXCHANGE_CODES.has(token!) && EXCHANGE_CODES.has(mcp!) && token !== mcp) {
      const explained = doubleFault?.token === token && doubleFault?.doors === mcp;
      expect(explained, `the token endpoint and the doors refuse a ${kind} with different codes${told}`).toBe(true);
      stats.doubleFaults++;
    }
    return null;
  }

  const claims = {} as Record<Door, Claims>;
  const lanes = {} as Record<Door, LaneTask>;
  const shapes: unknown[] = [];
  for (const door of DOORS) {
    const value = (answers[door] as { value: Record<string, unknown> }).value;
    const token = String(value.access_token);
    const c = await verified(token);
    claims[door] = c;
    expect(c.task_id, `${door}: the token's task_id is not the one answered${told}`).toBe(value.task_id);
    expect(c.scope, `${door}: the answered scope is not the token's${told}`).toBe(value.scope);
    const task = await tb.broker.deps.tasks.get(c.task_id);
    if (!task) throw new Error(`${door}: no task ${c.task_id}${told}`);
    const bound = Math.min(ctx.parentExp[door], task.deadline, ctx.dlg.expiresAt);
    expect(c.exp!, `${door}: exp outlives its parent, task or delegation${told}`).toBeLessThanOrEqual(bound);
    expect(c.exp!, `${door}: exp not after the issue time${told}`).toBeGreaterThan(ctx.before);
    expect(c.exp! - c.iat!, `${door}: a lifetime beyond max_token_ttl${told}`).toBeLessThanOrEqual(ctx.dlg.maxTokenTtl);
    // The named task for a renew; otherwise a new task right below the parent's copy in this lane.
    if (ctx.named) expect(task.id, `${door}: a renew minted for another task${told}`).toBe(ctx.named.lanes[door].id);
    else
      expect(task.parentTaskId, `${door}: a new task in the wrong place${told}`).toBe(
        ctx.parent?.lanes[door].id ?? null,
      );
    shapes.push({ depth: task.depth, agent: nameOf(task.agentId), chain: task.actorChain.map(nameOf) });
    lanes[door] = { id: task.id, token, exp: c.exp!, deadline: task.deadline };
  }
  const [first, ...others] = DOORS.map((door) => comparable(claims[door]));
  others.forEach((other, i) => {
    expect(other, `${DOORS[i + 1]} issued another token than the token endpoint for a ${kind}${told}`).toEqual(first);
    expect(shapes[i + 1], `${DOORS[i + 1]}'s task differs from the token endpoint's${told}`).toEqual(shapes[0]);
  });
  // The act chain is re-derived (RFC 8693 §4.1): the new actor outermost, the parent's chain inside.
  const chain = ctx.named ? ctx.named.chain : [claims.token.client_id, ...(ctx.parent?.chain ?? [])];
  expect(claims.token.act, `act is not the task's chain${told}`).toEqual(nestedAct(chain));
  if (first!.authorization_details) stats.withTools++;
  return { aud: String(first!.aud), scope: first!.scope.split(' '), lanes };
}

// ---------------------------------------------------------------------------------------------

describe('the token endpoint, the MCP tools and the A2A skills decide alike', () => {
  test('every operation gets the same decision, the same refusal code and the same token at all three doors', async () => {
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(scenarioArb, ({ delegations, ops }) => runScenario(delegations, ops)),
      // A failure's counterexample is shrunk for at most about a minute and a half.
      { numRuns: 30, seed: 0xd0_0125, interruptAfterTimeLimit: 90_000 },
    );
    const reasons: Record<string, number> = {};
    for (const e of await tb.broker.deps.audit.query({ type: 'exchange.denied', limit: 100_000 }))
      bump(reasons, e.reason ?? 'none');
    console.info(
      [
        `door parity: ${stats.runs} runs, ${sum(stats.ops)} operations ${JSON.stringify(stats.ops)}, ` +
          `${stats.skipped} skipped (no task yet), ${stats.doorCalls} door calls in ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s; deepest task depth ${stats.deepest}; ` +
          `${stats.withTools} minting operations issued tokens narrowed to tools`,
        `  operations allowed at all three doors ${JSON.stringify(stats.allowed)}`,
        `  operations refused at all three doors ${JSON.stringify(stats.denied)}`,
        `  refusal codes ${JSON.stringify(stats.codes)}`,
        `  exchange denial reasons (audit) ${JSON.stringify(reasons)}`,
        `  hand-offs of a sub-task by an agent not holding it (doors refuse): token endpoint allowed ` +
          `${stats.possession.allowed}, refused ${stats.possession.denied}`,
        `  refusals whose codes differ because the token endpoint's renew met another fault first: ${stats.doubleFaults}`,
      ].join('\n'),
    );
    // The generator must keep reaching both sides of every rule.
    expect(sum(stats.allowed)).toBeGreaterThanOrEqual(80);
    expect(sum(stats.denied)).toBeGreaterThanOrEqual(80);
    expect(stats.allowed['hand-off']).toBeGreaterThanOrEqual(15);
    expect(stats.deepest).toBeGreaterThanOrEqual(2);
    expect(stats.withTools).toBeGreaterThan(0);
    for (const reason of [
      'depth_exceeded',
      'actor_not_allowed',
      'scope_exceeds_parent',
      'audience_not_delegated',
      'audience_not_in_parent',
      'audience_required',
      'task_ended',
    ]) {
      expect(reasons[reason], `no exchange was denied for ${reason}`).toBeGreaterThan(0);
    }
    for (const code of ['mcp:no_task', 'mcp:no_delegation', 'mcp:unauthorized_client', 'token:unauthorized_client']) {
      expect(stats.codes[code], `no refusal ${code}`).toBeGreaterThan(0);
    }
  }, 240_000);
});
