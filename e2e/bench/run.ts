/**
 * `npm run bench`: Errand under load against a reference peer (oidc-provider), on this machine.
 * The token rows (peer, exchange, dpop, subagent, cc) run interleaved: BENCH_ROUNDS rounds of one
 * BENCH_WINDOW-second window per operation, the order rotated each round, with the server's CPU per
 * request read from /proc; then a profiled broker gives the per-stage breakdown of one exchange.
 * Settings: see HELP below (`npm run bench -- --help`) and README "Performance".
 * ERRAND_METRICS_* and OTEL_* variables of the bench's environment reach the broker (to measure metrics and traces on).
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createGuard } from '@errand/guard';
import autocannon, { type Request, type Result } from 'autocannon';
import Database from 'libsql';
import { hashPassword } from '../../broker/identity/passwords.js';
import { DEFAULT_POLICIES } from '../../broker/services/policy/schema.js';
import { encodeStatusList } from '../../broker/tokens/status-list.js';
import { openDb } from '../../db/open.js';
import { PolicyStore } from '../../db/stores/policy-store.js';
import { UserStore } from '../../db/stores/user-store.js';
import { readServerSentEvents } from '../../packages/guard/src/sse.js';
import { interleave, type OpRow, type OpWindow, type Row, summariseOp } from './interleave.js';
import { assertions, type BenchKey, dpopProofs, newKey } from './jws.js';
import { BLOCKED_GROUP, realisticPolicies } from './policies.js';
import {
  benchDatabase,
  cpuSince,
  cpuSnapshot,
  type GroupCommits,
  groupCommitsOf,
  median,
  quantile,
  serverProcesses,
} from './postgres.js';
import { type CpuProfile, type SelfTime, type StageBreakdown, stageBreakdown, topSelfTime } from './stages.js';

const ROOT = join(import.meta.dirname, '..', '..');
const OUT = join(import.meta.dirname, 'results');
const DURATION = Number(process.env.BENCH_DURATION ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const MEMORY_TOKENS = Number(process.env.BENCH_MEMORY_TOKENS ?? 100_000);
const CPU_PROF = process.env.BENCH_CPU_PROF === '1';
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;
const want = (scenario: string) => !ONLY || ONLY.has(scenario);
const PROPAGATION_TASKS = Number(process.env.BENCH_PROPAGATION_TASKS ?? 1000);
const GROWN_TOKENS = Number(process.env.BENCH_GROWN_TOKENS ?? 1_000_000);
/** `postgres`: also run token exchange on PostgreSQL with 1, 2 and 3 broker nodes (README "Performance"). */
const DB = process.env.BENCH_DB ?? 'sqlite';
const POSTGRES = DB === 'postgres';
/** Rounds of the interleaved comparisons (token rows, PostgreSQL nodes), and seconds per window. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 4);
/** Pin every server process to core 0 and this process (the load generator) to core 1. */
const PIN = process.env.BENCH_PIN === '1';
/** The sampling interval of the stage profile, µs. */
const STAGE_PROFILE_INTERVAL = 250;
const REVOCATION_SAMPLES = Number(process.env.BENCH_REVOCATION_SAMPLES ?? 200);
const NODES = [1, 2, 3];
const METRICS_TOKEN = process.env.ERRAND_METRICS_TOKEN ?? randomBytes(24).toString('hex');
const HELP = `npm run bench: Errand under load against oidc-provider, on this machine (README "Performance").
Environment:
  BENCH_ROUNDS=5              rounds of the interleaved comparisons (token rows; PostgreSQL nodes)
  BENCH_WINDOW=4              seconds per operation (or configuration) and round; also the length of the
                              profiled window of the stage breakdown
  BENCH_PIN=1                 pin each server process (brokers, peer) to core 0 and the bench (load
                              generator) to core 1 with taskset; needs 2 cores or more
  BENCH_DURATION=8            seconds per single run (introspection, status list, guard, two processes,
                              growth)
  BENCH_CONNECTIONS=50        concurrent connections
  BENCH_ONLY=a,b              scenarios: peer, exchange, dpop, subagent, cc, policy (interleaved; exchange
                              also brings the stage breakdown; policy is exchange on a second broker with
                              50 organisation policies, compared with exchange), introspect, status, guard, propagation,
                              memory, multi, grown; with BENCH_DB=postgres also nodes, pg-revocation,
                              pg-ops
  BENCH_MEMORY_TOKENS=100000  tokens issued before the RSS reading
  BENCH_GROWN_TOKENS=1000000  tokens written before the growth run
  BENCH_PROPAGATION_TASKS=1000
  BENCH_CPU_PROF=1            profile the brokers (--cpu-prof into e2e/bench/results/)
  BENCH_DB=postgres           also: token exchange on PostgreSQL with 1, 2 and 3 broker processes against
                              the embedded broker, in interleaved rounds (nodes); a revocation made on one
                              node heard on another's /events/revocations (pg-revocation); introspection
                              and client_credentials on one PostgreSQL node (pg-ops)
  BENCH_POSTGRES_URL=...      administrator's URL of the server (a database is made and dropped per run);
                              without it a durable cluster is started (e2e/postgres/cluster.ts)
  BENCH_REVOCATION_SAMPLES=200
ERRAND_METRICS_* and OTEL_* variables reach the brokers.
`;
const RESOURCE = 'https://notes.bench.test/mcp';
const TT_JWT = 'urn:ietf:params:oauth:token-type:jwt';
const TT_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
const GRANT_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const GRANT_CIBA = 'urn:openid:params:grant-type:ciba';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ASSERTION_TYP = 'client-authentication+jwt';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const form = (o: Record<string, string>) => new URLSearchParams(o).toString();

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function waitFor(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`process for ${url} exited with ${child.exitCode}`);
    try {
      if ((await fetch(url)).status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not become ready`);
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

/** A cookie-keeping fetch for the session APIs. */
class Session {
  private cookies = new Map<string, string>();
  csrf = '';
  constructor(private readonly base: string) {}
  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    if (this.csrf) headers.set('x-csrf-token', this.csrf);
    const res = await fetch(`${this.base}${path}`, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (pair && eq > 0) this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    return res;
  }
  async json<T>(method: string, path: string, body?: unknown, expect = 200): Promise<T> {
    const res = await this.fetch(path, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (res.status !== expect) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }
  async signIn(username: string, password: string): Promise<void> {
    const { csrf_token } = await this.json<{ csrf_token: string }>('POST', '/api/session', { username, password });
    this.csrf = csrf_token;
  }
}

/** The next pre-signed body, and optionally headers, for one request. */
type Next = (() => { body: string }) & { headersOf?: () => Record<string, string> };

/** Runs autocannon with a request whose body (and headers) come from a pre-signed pool. */
async function load(
  name: string,
  server: Row['server'],
  base: string | string[],
  req: Request,
  next: Next | null,
  opts: { duration?: number; amount?: number; connections?: number } = {},
): Promise<Row> {
  const request: Request = next
    ? { ...req, setupRequest: (r) => ({ ...r, body: next().body, headers: { ...r.headers, ...next.headersOf?.() } }) }
    : req;
  const result: Result = await autocannon({
    url: base,
    connections: opts.connections ?? CONNECTIONS,
    timeout: 30,
    requests: [request],
    ...(opts.amount ? { amount: opts.amount } : { duration: opts.duration ?? DURATION }),
  });
  const failed = result.non2xx + result.errors + result.timeouts;
  const row: Row = {
    name,
    server,
    rps: Math.round(result['2xx'] / (result.duration || 1)),
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result['2xx'],
    failed,
  };
  if (!opts.amount) log(`${name}: ${row.rps} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, ${failed} failed`);
  return row;
}

/**
 * Writes `n` issued task tokens with their tasks and audit events straight into the database, as a
 * long-running broker would have: ids are time-ordered like Errand's (a clock part that sorts before
 * today's, then random), so the indexes have the shape they get in use. Tokens stay unexpired and
 * tasks live, so nothing is pruned from under the measurement.
 */
function seedIssued(file: string, n: number, agentId: string): void {
  const db = new Database(file, { timeout: 10_000 });
  const now = Math.floor(Date.now() / 1000);
  const chunk = 50_000;
  const rows = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)`;
  for (let done = 0; done < n; done += chunk) {
    const count = Math.min(chunk, n - done);
    db.exec('BEGIN IMMEDIATE');
    const base = Number(
      (
        db.prepare(`SELECT value FROM counters WHERE name = 'status_idx'`).raw(true).get() as number[] | undefined
      )?.[0] ?? 0,
    );
    db.prepare(`UPDATE counters SET value = value + ? WHERE name = 'status_idx'`).run([count]);
    db.prepare(`CREATE TEMP TABLE IF NOT EXISTS seed (i INTEGER PRIMARY KEY, task TEXT, jti TEXT)`).run([]);
    db.prepare(`DELETE FROM seed`).run([]);
    db.prepare(
      `${rows} INSERT INTO seed (i, task, jti) SELECT i, 'tsk_0000' || lower(hex(randomblob(16))), '0000' || lower(hex(randomblob(16))) FROM n`,
    ).run([count]);
    db.prepare(
      `INSERT INTO tasks (id, delegation_id, user_id, agent_id, actor_chain, parent_task_id, root_task_id, depth, state, created_at, deadline, ended_at, end_reason, external_ids)
       SELECT task, 'dlg_seed', 'usr_seed', ?, '["' || ? || '"]', NULL, task, 0, 'working', ?, ?, NULL, NULL, '{}' FROM seed`,
    ).run([agentId, agentId, now, now + 86_400]);
    db.prepare(
      `INSERT INTO issued_tokens (jti, grant_id, client_id, subject, audience, scope, kid, issued_at, expires_at, revoked_at, task_id, delegation_id, actor_chain, status_idx)
       SELECT jti, NULL, ?, 'usr_seed', ?, 'notes:read', 'seed', ?, ?, NULL, task, 'dlg_seed', '["' || ? || '"]', ? + i - 1 FROM seed`,
    ).run([agentId, RESOURCE, now, now + 86_400, agentId, base]);
    db.prepare(
      `INSERT INTO audit_events (id, at, type, result, user_id, client_id, actor_chain, task_id, delegation_id, audience, scope, reason, request_id, details)
       SELECT 'evt_0000' || lower(hex(randomblob(16))), ?, 'token.exchanged', 'allowed', 'usr_seed', ?, '["' || ? || '"]', task, 'dlg_seed', ?, 'notes:read', NULL, NULL, '{"jti":"' || jti || '"}' FROM seed`,
    ).run([now, agentId, agentId, RESOURCE]);
    db.exec('COMMIT');
  }
  db.close();
}

/** Runs `task(0..n-1)` with at most `width` at once. */
async function inParallel(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/** A pool of pre-signed values handed out once each; counts how often it ran dry. */
function pool<T>(items: T[]) {
  let i = 0;
  const take = (): T => {
    const v = items[i % items.length]!;
    i += 1;
    return v;
  };
  return {
    take,
    get used() {
      return i;
    },
    get exhausted() {
      return i > items.length;
    },
  };
}

/** One configuration of the interleaved comparison: where the load goes and which processes serve it. */
interface Config {
  label: string;
  urls: string[];
  pids: number[];
  metrics: string[];
  bodies: (n: number) => string[];
}

/** What one window of load cost: CPU per request by process kind, and the write path's figures. */
interface Costs {
  nodeUs: number;
  pgUs: number;
  benchUs: number;
  coresBusy: number;
  groupSize: number;
  commitMs: number;
  lockBusy: number;
}

/** One window of one configuration: the load's row and what it cost. */
interface Window extends Costs {
  row: Row;
}

/** A configuration over all its rounds: medians (of the costs too), and the spread of req/s. */
interface NodesRow extends Costs {
  label: string;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50: number;
  p99: number;
  ok: number;
  failed: number;
}

interface CrossNodeRevocation {
  tasks: number;
  heard: number;
  p50: number;
  p99: number;
  max: number;
  heardBeforeAnswer: number;
  stillActive: number;
}

interface PostgresReport {
  server: string;
  serverCpuMeasured: boolean;
  nodes: NodesRow[];
  revocation: CrossNodeRevocation | null;
}

function summarise(label: string, windows: Window[]): NodesRow {
  const of = (f: (w: Window) => number, digits = 0) => {
    const m = median(windows.map(f).filter((v) => !Number.isNaN(v)));
    return Math.round(m * 10 ** digits) / 10 ** digits;
  };
  const rps = windows.map((w) => w.row.rps);
  return {
    label,
    rps: of((w) => w.row.rps),
    rpsMin: Math.min(...rps),
    rpsMax: Math.max(...rps),
    p50: of((w) => w.row.p50),
    p99: of((w) => w.row.p99),
    ok: windows.reduce((a, w) => a + w.row.ok, 0),
    failed: windows.reduce((a, w) => a + w.row.failed, 0),
    nodeUs: of((w) => w.nodeUs),
    pgUs: of((w) => w.pgUs),
    benchUs: of((w) => w.benchUs),
    coresBusy: of((w) => w.coresBusy, 2),
    groupSize: of((w) => w.groupSize, 1),
    commitMs: of((w) => w.commitMs, 2),
    lockBusy: of((w) => w.lockBusy, 2),
  };
}

function delta(after: GroupCommits, before: GroupCommits): GroupCommits {
  return {
    transactions: after.transactions - before.transactions,
    groups: after.groups - before.groups,
    seconds: after.seconds - before.seconds,
  };
}

/** One operation of the interleaved token rows: where its load goes and which process serves it. */
interface TokenOp {
  key: string;
  label: string;
  server: 'errand' | 'peer';
  url: string;
  /** The server process whose CPU is read (the broker, or the peer's process). */
  pid: number;
  sign: (n: number) => { bodies: string[]; headers?: Record<string, string>[] };
  /** Runs before each window of the operation (the policy comparison switches versions). */
  before?: () => Promise<void>;
}

/** The per-stage breakdown of one exchange, from a profiled broker (e2e/bench/stages.ts). */
interface StageReport {
  requests: number;
  seconds: number;
  rps: number;
  intervalUs: number;
  breakdown: StageBreakdown;
  top: SelfTime[];
}

type Agent = { id: string; key: BenchKey };

/** RFC 7523 client assertions of agent `a` for `issuer`, pre-signed. */
const assertionsFor = (a: Agent, issuer: string, n: number) => assertions(a.key, a.id, issuer, n, 3000, ASSERTION_TYP);

/**
 * Sets up a fresh broker at `issuer` whose database is `dbUrl`: an administrator and a person
 * created in the store, then through the APIs a resource, agents A and B, a resource server with a
 * client secret, and a CIBA-approved delegation to A exchanged once for a task token.
 */
async function setUp(issuer: string, dbUrl: string) {
  // 2. Setup through the admin API (an administrator created in the store).
  const db = await openDb(dbUrl, { poolSize: 2 });
  const users = new UserStore(db);
  const mkUser = async (role: 'user' | 'admin') => {
    const username = `${role}-bench`;
    const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
    await users.insert({
      id: `usr_bench_${role}`,
      username,
      displayName: null,
      passwordHash: await hashPassword(password),
      role,
      createdAt: Math.floor(Date.now() / 1000),
      disabledAt: null,
      failedSignins: 0,
      lockedUntil: null,
    });
    return { username, password };
  };
  const adminUser = await mkUser('admin');
  const person = await mkUser('user');
  await db.close();
  const admin = new Session(issuer);
  await admin.signIn(adminUser.username, adminUser.password);
  await admin.json(
    'POST',
    '/api/admin/resources',
    { url: RESOURCE, name: 'Notes', scopes: ['notes:read', 'notes:write'] },
    201,
  );
  const addAgent = async (name: string, extra: Record<string, unknown> = {}) => {
    const key = newKey(`k-${name}`);
    const created = await admin.json<{ client_id: string; client_secret?: string }>(
      'POST',
      '/api/admin/clients',
      { kind: 'agent', name, jwks: { keys: [key.publicJwk] }, ...extra },
      201,
    );
    return { id: created.client_id, key, secret: created.client_secret };
  };
  const agentA = await addAgent('bench-a', { scope: ['notes:read', 'notes:write'], resources: [RESOURCE] });
  const agentB = await addAgent('bench-b', { scope: ['notes:read', 'notes:write'], resources: [RESOURCE] });
  const rs = await admin.json<{ client_id: string; client_secret: string }>(
    'POST',
    '/api/admin/clients',
    {
      kind: 'resource_server',
      name: 'bench-rs',
      token_endpoint_auth_method: 'client_secret_basic',
      allow_static_secret: true,
      resources: [RESOURCE],
      grant_types: ['client_credentials'],
    },
    201,
  );
  const rsBasic = `Basic ${Buffer.from(`${encodeURIComponent(rs.client_id)}:${encodeURIComponent(rs.client_secret)}`).toString('base64')}`;

  const assertFor = (a: Agent, n: number) => assertionsFor(a, issuer, n);
  const tokenUrl = `${issuer}/token`;
  const post = async (path: string, body: Record<string, string>, headers: Record<string, string> = {}) => {
    const res = await fetch(`${issuer}${path}`, { method: 'POST', headers: { ...FORM, ...headers }, body: form(body) });
    const json = (await res.json()) as Record<string, unknown>;
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const clientAuth = (a: { id: string; key: BenchKey }) => ({
    client_assertion_type: JWT_BEARER,
    client_assertion: assertFor(a, 1)[0]!,
  });

  // 3. A delegation: CIBA request by agent A, approval by the person through the user API.
  const bc = await post('/bc-authorize', {
    login_hint: person.username,
    scope: 'openid notes:read notes:write',
    resource: RESOURCE,
    binding_message: 'Benchmark',
    max_depth: '2',
    ...clientAuth(agentA),
  });
  const me = new Session(issuer);
  await me.signIn(person.username, person.password);
  const pending = await me.json<{ delegations: { delegation_id: string; agent_id: string }[] }>(
    'GET',
    '/api/me/delegations?status=pending',
  );
  const mine = pending.delegations.find((d) => d.agent_id === agentA.id);
  if (!mine) throw new Error('no pending delegation');
  await me.json('POST', `/api/me/delegations/${mine.delegation_id}/approve`, {});
  let credential = '';
  for (let i = 0; i < 20 && !credential; i++) {
    await new Promise((r) => setTimeout(r, 1100));
    const res = await fetch(tokenUrl, {
      method: 'POST',
      headers: FORM,
      body: form({ grant_type: GRANT_CIBA, auth_req_id: String(bc.auth_req_id), ...clientAuth(agentA) }),
    });
    const json = (await res.json()) as { access_token?: string; error?: string };
    if (res.status === 200 && json.access_token) credential = json.access_token;
    else if (json.error !== 'authorization_pending' && json.error !== 'slow_down') {
      throw new Error(`CIBA poll: ${res.status} ${JSON.stringify(json)}`);
    }
  }
  const task = await post('/token', {
    grant_type: GRANT_EXCHANGE,
    subject_token: credential,
    subject_token_type: TT_JWT,
    resource: RESOURCE,
    ...clientAuth(agentA),
  });
  const taskToken = String(task.access_token);
  const statusUri = (
    JSON.parse(Buffer.from(taskToken.split('.')[1]!, 'base64url').toString()) as {
      status: { status_list: { uri: string } };
    }
  ).status.status_list.uri;
  log(`delegation approved, task ${String(task.task_id)}; status list ${statusUri}`);
  return { admin, agentA, agentB, rsBasic, credential, taskToken, statusUri };
}

/**
 * Saves the bench's 50 policies and the built-in default as two versions in the broker's database
 * (as a process of the same deployment would), checks that the broker enforces the 50 (a person in
 * the blocked group is refused, and served again once out of it), and returns a switch between the
 * two: it publishes one and waits out the broker's ERRAND_POLICY_REFRESH (1 s in the bench).
 */
async function preparePolicies(
  dbUrl: string,
  issuer: string,
  world: Awaited<ReturnType<typeof setUp>>,
): Promise<{ use(which: 'policies' | 'default'): Promise<void>; close(): Promise<void> }> {
  const db = await openDb(dbUrl, { poolSize: 2 });
  const store = new PolicyStore(db);
  const person = 'usr_bench_user';
  const versions = await db.write(async (tx) => {
    const text = realisticPolicies(world.agentA.id, RESOURCE);
    const policies = await store.insertDraft(
      { text, tests: [], comment: 'bench', createdBy: 'bench', createdAt: 0 },
      tx,
    );
    const plain = await store.insertDraft(
      { text: DEFAULT_POLICIES, tests: [], comment: 'bench default', createdBy: 'bench', createdAt: 0 },
      tx,
    );
    return { policies, default: plain };
  });
  let current: 'policies' | 'default' | null = null;
  const use = async (which: 'policies' | 'default') => {
    if (current === which) return;
    await db.write(async (tx) => {
      await store.demote('published', 'retired', tx);
      await store.setStatus(versions[which], 'published', 'bench', 0, tx);
    });
    current = which;
    await new Promise((r) => setTimeout(r, 1600));
  };
  const exchangeOnce = async () => {
    const res = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: FORM,
      body: form({
        grant_type: GRANT_EXCHANGE,
        subject_token: world.credential,
        subject_token_type: TT_JWT,
        resource: RESOURCE,
        client_assertion_type: JWT_BEARER,
        client_assertion: assertionsFor(world.agentA, issuer, 1)[0]!,
      }),
    });
    return { status: res.status, body: (await res.json()) as { error_description?: string } };
  };
  await db.write((tx) => store.setGroups(person, 'local', [BLOCKED_GROUP], tx));
  await use('policies');
  const refused = await exchangeOnce();
  if (refused.status !== 400 || !(refused.body.error_description ?? '').includes('"blocked-people"')) {
    throw new Error(`the broker does not enforce the bench policies: ${JSON.stringify(refused)}`);
  }
  await db.write((tx) => store.setGroups(person, 'local', [], tx));
  // Changed by another process: the broker sees it once what it read about the person expires (1 s).
  await new Promise((r) => setTimeout(r, 1600));
  const served = await exchangeOnce();
  if (served.status !== 200)
    throw new Error(`exchange refused out of the blocked group: ${JSON.stringify(served.body)}`);
  await use('default');
  return { use, close: () => db.close() };
}

/** Runs a load and adds the CPU µs per request answered of the server processes `pids`. */
async function withCpu(pids: number[], measure: () => Promise<Row>): Promise<Row> {
  const before = cpuSnapshot(pids);
  const row = await measure();
  const cpuUs = row.ok > 0 ? Math.round((cpuSince(before, pids) * 1e6) / row.ok) : Number.NaN;
  log(`${row.name}: ${cpuUs} µs server CPU per request`);
  return { ...row, cpuUs };
}

/**
 * BENCH_PIN=1: this process (the load generator; autocannon runs in it) and all its threads move to
 * core 1; servers are started on core 0 by spawnServer.
 */
function pinSelf(): void {
  const cores = Math.min(cpus().length, availableParallelism());
  if (cores < 2) {
    process.stderr.write(`bench: BENCH_PIN=1 needs at least 2 cores; this process may use ${cores}\n`);
    process.exit(2);
  }
  try {
    execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    process.stderr.write(
      missing
        ? 'bench: BENCH_PIN=1 needs taskset (util-linux; Debian: apt-get install util-linux) on the PATH\n'
        : `bench: BENCH_PIN=1: taskset could not pin this process to core 1: ${String(err)}\n`,
    );
    process.exit(2);
  }
  log(`pinned: servers on core 0, this process (load generator) on core 1`);
}

/**
 * Starts a Node server process (a broker, the peer). With BENCH_PIN=1 through `taskset -c 0`, which
 * execs Node in place: the child's pid is the server's own, whose CPU the bench reads.
 */
function spawnServer(nodeArgs: string[], opts: SpawnOptions): ChildProcess {
  return PIN
    ? spawn('taskset', ['-c', '0', process.execPath, ...nodeArgs], opts)
    : spawn(process.execPath, nodeArgs, opts);
}

/**
 * The CPU read from /proc/<pid>/stat is one process's: check that `child` is Node itself running
 * `script` (not a wrapper such as taskset, and not a launcher whose own child serves) and that any
 * process it started is tsx's esbuild transformer (busy at start-up only), not a server.
 */
function checkServerProcess(child: ChildProcess, name: string, script: string): void {
  const pid = child.pid!;
  const cmdline = (p: number) => readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const own = cmdline(pid);
  if (!own[0]?.endsWith('node') && own[0] !== process.execPath) {
    throw new Error(`${name} (pid ${pid}) is not Node but ${own.join(' ')}`);
  }
  if (!own.some((arg) => arg.endsWith(script))) throw new Error(`${name} (pid ${pid}) does not run ${script}`);
  for (const c of serverProcesses(pid).filter((p) => p !== pid)) {
    const args = cmdline(c);
    if (!/esbuild$/.test(args[0] ?? '')) {
      throw new Error(`${name} (pid ${pid}) started another process, which may serve: ${c} ${args.join(' ')}`);
    }
  }
  if (PIN) {
    const allowed = execFileSync('taskset', ['-p', '-c', String(pid)], { encoding: 'utf8' }).trim();
    if (!/:\s*0$/.test(allowed)) throw new Error(`${name} (pid ${pid}) is not pinned to core 0: ${allowed}`);
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  if (DB !== 'sqlite' && DB !== 'postgres') throw new Error(`BENCH_DB must be sqlite or postgres, not ${DB}`);
  if (PIN) pinSelf();
  mkdirSync(OUT, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'errand-bench-'));
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const tokenUrl = `${issuer}/token`;
  const children: ChildProcess[] = [];
  const stopAll = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  };
  process.on('exit', stopAll);

  // 1. Errand: a separate process on a fresh embedded database.
  const brokerArgs = ['--conditions=@errand/source', '--import', 'tsx', 'broker/main.ts'];
  const cpuProfArgs = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', OUT] : [];
  const spawnBroker = (brokerPort: number, env: Record<string, string> = {}, nodeArgs = cpuProfArgs) =>
    spawnServer([...nodeArgs, ...brokerArgs], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        ERRAND_HOST: '127.0.0.1',
        ERRAND_PORT: String(brokerPort),
        // Every process answers for the same issuer (a load balancer in front of them).
        ERRAND_ISSUER: issuer,
        ERRAND_DATA_DIR: dir,
        ERRAND_LOG_LEVEL: 'warn',
        // Pre-signed assertions must outlive the run; tokens used as subjects too.
        ERRAND_ASSERTION_MAX_LIFETIME: '3600',
        ERRAND_ACCESS_TOKEN_TTL: '3600',
        ERRAND_CIBA_INTERVAL: '1',
        // Metrics and traces as the bench's own environment sets them (to measure their cost).
        ...Object.fromEntries(
          Object.entries(process.env).filter(
            ([k]) => k.startsWith('ERRAND_METRICS_') || k.startsWith('OTEL_') || k === 'ERRAND_DB_SYNC_IN_COMMIT',
          ),
        ),
        // With PostgreSQL, every broker serves /metrics (group commit sizes) alike.
        ...(POSTGRES ? { ERRAND_METRICS_TOKEN: METRICS_TOKEN } : {}),
        ...env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  const brokerErr: string[] = [];
  const startBroker = async (brokerPort: number, env: Record<string, string> = {}, nodeArgs = cpuProfArgs) => {
    const child = spawnBroker(brokerPort, env, nodeArgs);
    children.push(child);
    child.stderr?.on('data', (d: Buffer) => brokerErr.push(d.toString()));
    await waitFor(`http://127.0.0.1:${brokerPort}/readyz`, child);
    checkServerProcess(child, 'broker', 'broker/main.ts');
    return child;
  };
  // With the policy comparison, the broker looks for a newly published version every second.
  const broker = await startBroker(port, want('policy') ? { ERRAND_POLICY_REFRESH: '1' } : {});
  log(`errand up at ${issuer} (pid ${broker.pid})`);

  // 2. Setup through the admin API (an administrator created in the store), and a delegation.
  const world0 = await setUp(issuer, `file:${join(dir, 'errand.db')}`);
  const { admin, agentA, agentB, rsBasic, credential, taskToken, statusUri } = world0;
  const assertFor = (a: Agent, n: number) => assertionsFor(a, issuer, n);

  // 2b. The cost of organisation policies (README "Organisation policies"): the same broker switches
  // between a realistic set of 50 (e2e/bench/policies.ts) and the built-in default before each
  // window, so that exchanges with and without them run in the same interleaved rounds.
  const policySwitch = want('policy') ? await preparePolicies(`file:${join(dir, 'errand.db')}`, issuer, world0) : null;
  if (policySwitch) log('50 organisation policies saved; the broker enforces them when switched on');

  // 4. The peer, in its own process.
  const peerPort = await freePort();
  const peerIssuer = `http://127.0.0.1:${peerPort}`;
  const peerClient = newKey('peer-client');
  const peerSigning = newKey('peer-signing');
  const peer = spawnServer(['--conditions=@errand/source', '--import', 'tsx', join(import.meta.dirname, 'peer.ts')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      BENCH_PEER: JSON.stringify({
        port: peerPort,
        clientId: 'peer-client',
        clientJwk: peerClient.publicJwk,
        signingJwk: { ...peerSigning.privateJwk, use: 'sig' },
        resource: RESOURCE,
      }),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(peer);
  const peerErr: string[] = [];
  peer.stderr?.on('data', (d: Buffer) => peerErr.push(d.toString()));
  await waitFor(`${peerIssuer}/.well-known/openid-configuration`, peer);
  // Its CPU is read from this pid: oidc-provider must run in it, not in a process it started.
  checkServerProcess(peer, 'peer', 'e2e/bench/peer.ts');

  // Single runs (PostgreSQL operations, growth): each pool is sized from a short probe run (which
  // doubles as a warm-up).
  const rows: Row[] = [];
  let errandTokens = 0;
  const tokenScenario = async (
    name: string,
    server: Row['server'],
    base: string,
    sign: (n: number) => { bodies: string[]; headers?: Record<string, string>[] },
    opts: { counts?: boolean; pids?: number[] } = {},
  ) => {
    const probeN = 4000;
    const probe = sign(probeN);
    const probeRow = await run(name, server, base, probe, { duration: 1 });
    // Generous: a pool that runs dry replays assertions, which are (rightly) refused.
    const need = Math.ceil(Math.max(probeRow.rps * 2, 3000) * DURATION) + 2000;
    const signed = sign(need);
    const measure = () => run(name, server, base, signed, { duration: DURATION });
    const row = opts.pids ? await withCpu(opts.pids, measure) : await measure();
    if (server === 'errand' && opts.counts !== false) errandTokens += probeRow.ok + row.ok;
    rows.push(row);
    return row;
  };
  const run = async (
    name: string,
    server: Row['server'],
    base: string,
    signed: { bodies: string[]; headers?: Record<string, string>[] },
    opts: { duration?: number; amount?: number },
  ) => {
    const bodies = pool(signed.bodies);
    const headers = signed.headers ? pool(signed.headers) : null;
    const next: Next = () => ({ body: bodies.take() });
    if (headers) next.headersOf = () => headers.take();
    const row = await load(
      name,
      server,
      base,
      { method: 'POST', path: new URL(base).pathname, headers: FORM },
      next,
      opts,
    );
    if (bodies.exhausted) log(`WARNING: ${name} ran out of pre-signed assertions (${bodies.used} used)`);
    return row;
  };

  const peerToken = `${peerIssuer}/token`;
  const peerCc = (n: number) => ({
    bodies: assertions(peerClient, 'peer-client', peerIssuer, n, 3000).map((a) =>
      form({
        grant_type: 'client_credentials',
        scope: 'read',
        resource: RESOURCE,
        client_assertion_type: JWT_BEARER,
        client_assertion: a,
      }),
    ),
  });
  const exchangeBodies = (n: number) => ({
    bodies: assertFor(agentA, n).map((a) =>
      form({
        grant_type: GRANT_EXCHANGE,
        subject_token: credential,
        subject_token_type: TT_JWT,
        resource: RESOURCE,
        client_assertion_type: JWT_BEARER,
        client_assertion: a,
      }),
    ),
  });
  const dpopKey = newKey('dpop');

  const subagentBodies = (n: number) => ({
    bodies: assertFor(agentB, n).map((a) =>
      form({
        grant_type: GRANT_EXCHANGE,
        subject_token: taskToken,
        subject_token_type: TT_ACCESS,
        scope: 'notes:read',
        client_assertion_type: JWT_BEARER,
        client_assertion: a,
      }),
    ),
  });
  const ccBodies = (n: number) => ({
    bodies: assertFor(agentA, n).map((a) =>
      form({
        grant_type: 'client_credentials',
        scope: 'notes:read',
        resource: RESOURCE,
        client_assertion_type: JWT_BEARER,
        client_assertion: a,
      }),
    ),
  });

  // 4b. The token rows, interleaved: a warm-up window of each, then rounds of one window per
  // operation (order rotated), each window's server CPU read from /proc/<pid>/stat.
  const ops: TokenOp[] = (
    [
      {
        key: 'peer',
        label: 'oidc-provider client_credentials (peer)',
        server: 'peer',
        url: peerToken,
        pid: peer.pid!,
        sign: peerCc,
      },
      {
        key: 'exchange',
        label: 'token exchange (delegation → task)',
        server: 'errand',
        url: tokenUrl,
        pid: broker.pid!,
        sign: exchangeBodies,
      },
      {
        key: 'dpop',
        label: 'token exchange + DPoP',
        server: 'errand',
        url: tokenUrl,
        pid: broker.pid!,
        sign: (n) => ({ ...exchangeBodies(n), headers: dpopProofs(dpopKey, tokenUrl, n).map((p) => ({ dpop: p })) }),
      },
      {
        key: 'subagent',
        label: 'sub-agent exchange (task token → B)',
        server: 'errand',
        url: tokenUrl,
        pid: broker.pid!,
        sign: subagentBodies,
      },
      { key: 'cc', label: 'client_credentials', server: 'errand', url: tokenUrl, pid: broker.pid!, sign: ccBodies },
      {
        key: 'policy',
        label: 'token exchange, 50 organisation policies',
        server: 'errand',
        url: tokenUrl,
        pid: broker.pid!,
        sign: exchangeBodies,
        before: () => policySwitch?.use('policies') ?? Promise.resolve(),
      },
    ] satisfies TokenOp[]
  )
    .filter((op) => want(op.key))
    // Every other operation of the broker runs with the built-in default.
    .map((op) =>
      op.server === 'errand' && op.key !== 'policy'
        ? { ...op, before: () => policySwitch?.use('default') ?? Promise.resolve() }
        : op,
    );
  const bestRps = new Map<string, number>();
  const measureOp = async (op: TokenOp, seconds: number): Promise<OpWindow> => {
    await op.before?.();
    // Single-use assertions and proofs (a replay is refused): 1.6× the best rate seen so far, with a
    // floor, so that no window runs dry; signing happens before the window opens.
    const need = Math.ceil(Math.max((bestRps.get(op.key) ?? 3000) * 1.6, 3000) * seconds) + 2000;
    const signed = op.sign(need);
    const cpu = cpuSnapshot([op.pid]);
    const row = await run(op.label, op.server, op.url, signed, { duration: seconds });
    const cpuUs = row.ok > 0 ? (cpuSince(cpu, [op.pid]) * 1e6) / row.ok : Number.NaN;
    bestRps.set(op.key, Math.max(bestRps.get(op.key) ?? 0, row.rps));
    if (op.server === 'errand') errandTokens += row.ok;
    return { row, cpuUs };
  };
  let tokenRows: OpRow[] = [];
  let windowsOf: (label: string) => OpWindow[] | null = () => null;
  if (ops.length) {
    log(`token rows: a 1 s warm-up each, then ${ROUNDS} rounds of ${WINDOW} s per operation, interleaved`);
    const windows = await interleave(ops, measureOp, { rounds: ROUNDS, seconds: WINDOW, warmup: 1 });
    windowsOf = (label) => windows.get(label) ?? null;
    // The scenarios after these run with the built-in default.
    await policySwitch?.use('default');
    await policySwitch?.close();
    const peerWindows = windows.get(ops.find((o) => o.key === 'peer')?.label ?? '');
    tokenRows = ops.map((op) => summariseOp(op, windows.get(op.label)!, peerWindows));
    for (const t of tokenRows) {
      log(
        `${t.name}: median ${t.rps} req/s (${t.rpsMin}–${t.rpsMax}), p99 ${t.p99} ms, ${t.cpuUs} µs CPU/req` +
          (t.vsPeer === null ? '' : `, ${t.vsPeer}× peer (${t.vsPeerMin}–${t.vsPeerMax}), CPU ${t.cpuVsPeer}× peer`),
      );
    }
  }
  const opRow = (key: string) => tokenRows.find((t) => t.key === key) ?? null;
  // Exchange with 50 policies ÷ exchange with the default, per round (both brokers in the same round).
  const policyCost = (() => {
    const withPolicies = policySwitch ? windowsOf('token exchange, 50 organisation policies') : null;
    const plain = windowsOf('token exchange (delegation → task)');
    if (!withPolicies || !plain || withPolicies.length !== plain.length) return null;
    const ratios = withPolicies.map((w, i) => w.row.rps / Math.max(1, plain[i]!.row.rps));
    const cpu = withPolicies.map((w, i) => w.cpuUs / plain[i]!.cpuUs);
    const round2 = (x: number) => Math.round(x * 100) / 100;
    return {
      ratio: round2(median(ratios)),
      min: round2(Math.min(...ratios)),
      max: round2(Math.max(...ratios)),
      cpu: round2(median(cpu)),
      failed: withPolicies.some((w) => w.row.failed > 0),
    };
  })();
  if (policyCost) {
    log(
      `policy cost: exchange with 50 policies ${policyCost.ratio}× exchange with the default (rounds ${policyCost.min}–${policyCost.max}), CPU ${policyCost.cpu}×`,
    );
  }
  const peerRow = opRow('peer');
  const exRow = opRow('exchange');

  // 4c. The per-stage breakdown of one exchange, from a profiled broker of its own.
  const stages = exRow ? await profileStages() : null;
  async function profileStages(): Promise<StageReport> {
    const profDir = mkdtempSync(join(tmpdir(), 'errand-bench-prof-'));
    try {
      const profPort = await freePort();
      const profiled = await startBroker(profPort, {}, [
        '--cpu-prof',
        '--cpu-prof-interval',
        String(STAGE_PROFILE_INTERVAL),
        '--cpu-prof-dir',
        profDir,
      ]);
      const url = `http://127.0.0.1:${profPort}/token`;
      log(`stages: profiled broker (pid ${profiled.pid}), 1 s warm-up, then ${WINDOW} s of token exchange`);
      await run('token exchange (profiled)', 'errand', url, exchangeBodies(6000), { duration: 1 });
      const need = Math.ceil(Math.max((bestRps.get('exchange') ?? 2500) * 1.6, 1500) * WINDOW) + 2000;
      const signed = exchangeBodies(need);
      // The profile's timestamps are µs of the monotonic clock process.hrtime reads too: only the
      // samples between these two instants count (start-up, warm-up and shutdown are left out).
      const from = Number(process.hrtime.bigint() / 1000n);
      const row = await run('token exchange (profiled)', 'errand', url, signed, { duration: WINDOW });
      const to = Number(process.hrtime.bigint() / 1000n);
      errandTokens += row.ok;
      // main.ts stops on SIGTERM by draining and exiting with process.exit(0): Node then writes the profile.
      const exited = new Promise<number | null>((r) => profiled.once('exit', (code) => r(code)));
      profiled.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) log(`WARNING: the profiled broker exited with ${code}`);
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) throw new Error(`the profiled broker wrote no .cpuprofile (exit ${code})`);
      const text = readFileSync(join(profDir, file), 'utf8');
      // Kept for a closer look (Chrome DevTools, Performance tab); *.cpuprofile is not committed.
      writeFileSync(join(OUT, 'stages.cpuprofile'), text);
      const profile = JSON.parse(text) as CpuProfile;
      const window = { from, to, requests: row.ok };
      const breakdown = stageBreakdown(profile, window);
      if (breakdown.samples === 0) {
        throw new Error(
          `no profile sample inside the load window (profile ${profile.startTime}–${profile.endTime} µs, window ${from}–${to} µs)`,
        );
      }
      const report: StageReport = {
        requests: row.ok,
        seconds: WINDOW,
        rps: row.rps,
        intervalUs: STAGE_PROFILE_INTERVAL,
        breakdown,
        top: topSelfTime(profile, window, 15),
      };
      // The clocks agree when the profile starts before the window (start-up, warm-up) and ends after it.
      const s = (us: number) => (us / 1e6).toFixed(2);
      log(
        `stages: ${breakdown.totalUs} µs CPU per exchange under the profiler over ${row.ok} exchanges (${breakdown.samples} samples; profile from ${s(from - profile.startTime)} s before the window to ${s(profile.endTime - to)} s after)`,
      );
      return report;
    } finally {
      rmSync(profDir, { recursive: true, force: true });
    }
  }

  const introBody = form({ token: taskToken });
  const introspect = async () => {
    log('errand: introspection');
    const request = {
      method: 'POST',
      path: '/introspect',
      headers: { ...FORM, authorization: rsBasic },
      body: introBody,
    };
    const url = `${issuer}/introspect`;
    await load('introspection (RS, client_secret_basic)', 'errand', url, request, null, { duration: 1 });
    const row = await withCpu([broker.pid!], () =>
      load('introspection (RS, client_secret_basic)', 'errand', url, request, null),
    );
    rows.push(row);
    return row;
  };
  const introRow = want('introspect') ? await introspect() : null;
  if (want('status')) {
    log('errand: status list');
    const statusPath = new URL(statusUri).pathname;
    rows.push(
      await withCpu([broker.pid!], () =>
        load('status list fetch', 'errand', statusUri, { method: 'GET', path: statusPath }, null),
      ),
    );
  }

  // 5. The guard's verify, in this process, against a token from the live broker.
  if (want('guard')) await guardScenario();
  async function guardScenario() {
    log('guard: verify (in-process)');
    const guard = createGuard({ issuer, resource: RESOURCE });
    const guardReq = { authorization: `Bearer ${taskToken}`, method: 'GET', url: RESOURCE };
    const first = await guard.verify(guardReq);
    if (!first.ok) throw new Error(`guard refused the task token: ${JSON.stringify(first)}`);
    const lat: number[] = [];
    const until = performance.now() + DURATION * 1000;
    const t0 = performance.now();
    while (performance.now() < until) {
      const s = performance.now();
      const r = await guard.verify(guardReq);
      lat.push(performance.now() - s);
      if (!r.ok) throw new Error('guard refused during the run');
    }
    const elapsed = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    const pct = (p: number) => Math.round(lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]! * 1000) / 1000;
    const guardRow: Row = {
      name: 'guard verify (in-process, 1 caller)',
      server: 'in-process',
      rps: Math.round(lat.length / elapsed),
      p50: pct(0.5),
      p99: pct(0.99),
      ok: lat.length,
      failed: 0,
    };
    rows.push(guardRow);
    guard.close();
    log(`guard verify: ${guardRow.rps} ops/s, p50 ${guardRow.p50} ms, p99 ${guardRow.p99} ms`);
  }

  // 5b. Revocation propagation: 1,000 tasks ended by their agent, each heard by a guard over the
  // push channel; latency from sending the end request to the guard's notice.
  let propagation: { tasks: number; heard: number; p50: number; p99: number; max: number } | null = null;
  if (want('propagation')) {
    log(`propagation: ${PROPAGATION_TASKS} tasks`);
    const rsKey = newKey('k-bench-push');
    const pushClient = await admin.json<{ client_id: string }>(
      'POST',
      '/api/admin/clients',
      { kind: 'resource_server', name: 'bench-push', jwks: { keys: [rsKey.publicJwk] }, resources: [RESOURCE] },
      201,
    );
    const guard = createGuard({
      issuer,
      resource: RESOURCE,
      push: { clientId: pushClient.client_id, privateKey: rsKey.privateKey, kid: rsKey.publicJwk.kid },
    });
    await guard.connect();
    // Task tokens, one task each.
    const tokens: { taskId: string; jti: string }[] = [];
    const exchangeForms = exchangeBodies(PROPAGATION_TASKS).bodies;
    const ends = assertFor(agentA, PROPAGATION_TASKS);
    await inParallel(PROPAGATION_TASKS, 20, async (i) => {
      const res = await fetch(tokenUrl, { method: 'POST', headers: FORM, body: exchangeForms[i]! });
      const json = (await res.json()) as { access_token: string; task_id: string };
      if (res.status !== 200) throw new Error(`exchange for propagation: ${res.status} ${JSON.stringify(json)}`);
      const claims = JSON.parse(Buffer.from(json.access_token.split('.')[1]!, 'base64url').toString()) as {
        jti: string;
      };
      tokens.push({ taskId: json.task_id, jti: claims.jti });
    });
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    const byJti = new Map(tokens.map((t) => [t.jti, t.taskId]));
    const heard = new Promise<void>((resolve) => {
      guard.onRevoked((notice) => {
        const taskId = byJti.get(notice.jti);
        const t0 = taskId ? sentAt.get(taskId) : undefined;
        if (t0 === undefined || !taskId) return;
        latencies.push(performance.now() - t0);
        byJti.delete(notice.jti);
        if (latencies.length === tokens.length) resolve();
      });
    });
    await inParallel(tokens.length, 20, async (i) => {
      const { taskId } = tokens[i]!;
      sentAt.set(taskId, performance.now());
      const res = await fetch(`${issuer}/tasks/${encodeURIComponent(taskId)}/end`, {
        method: 'POST',
        headers: FORM,
        body: form({ state: 'completed', client_assertion_type: JWT_BEARER, client_assertion: ends[i]! }),
      });
      if (res.status !== 200) throw new Error(`ending a task: ${res.status} ${await res.text()}`);
    });
    await Promise.race([heard, new Promise((r) => setTimeout(r, 10_000))]);
    guard.close();
    latencies.sort((a, b) => a - b);
    const at = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!);
    propagation = {
      tasks: tokens.length,
      heard: latencies.length,
      p50: latencies.length ? at(0.5) : -1,
      p99: latencies.length ? at(0.99) : -1,
      max: latencies.length ? Math.round(latencies[latencies.length - 1]!) : -1,
    };
    errandTokens += tokens.length;
    log(
      `propagation: ${propagation.heard}/${propagation.tasks} heard, p50 ${propagation.p50} ms, p99 ${propagation.p99} ms`,
    );
  }

  // 6. Resident memory of the broker after N tokens issued (top up with client_credentials).
  const topUp = want('memory') ? Math.max(0, MEMORY_TOKENS - errandTokens) : 0;
  if (topUp > 0) {
    log(`memory: issuing ${topUp} more tokens (target ${MEMORY_TOKENS})`);
    const r = await run('top-up', 'errand', tokenUrl, ccBodies(topUp), { amount: topUp });
    errandTokens += r.ok;
  }
  await new Promise((r) => setTimeout(r, 1000));
  const memory = { tokensIssued: errandTokens, rssMb: rssMb(broker.pid!) };
  log(`memory: ${memory.rssMb} MB RSS after ${memory.tokensIssued} tokens`);

  // 7. Both cores: a second broker process on the same database, each taking half the connections.
  let multiRow: Row | null = null;
  if (want('multi')) {
    const port2 = await freePort();
    const second = spawnBroker(port2);
    children.push(second);
    await waitFor(`http://127.0.0.1:${port2}/readyz`, second);
    log('errand: token exchange on two processes');
    const half = Math.max(1, Math.floor(CONNECTIONS / 2));
    const need = Math.ceil(Math.max((exRow?.rps ?? 2000) * 1.6, 1500) * DURATION) + 2000;
    const across = async (duration: number, n: number) => {
      const [a, b] = await Promise.all(
        [tokenUrl, `http://127.0.0.1:${port2}/token`].map((url) => {
          const bodies = pool(exchangeBodies(n).bodies);
          const next: Next = () => ({ body: bodies.take() });
          return load(
            'token exchange, process',
            'errand',
            url,
            { method: 'POST', path: '/token', headers: FORM },
            next,
            {
              duration,
              connections: half,
            },
          );
        }),
      );
      return { a: a!, b: b! };
    };
    await across(1, 4000);
    const pids = [broker.pid!, second.pid!];
    const cpu = cpuSnapshot(pids);
    const { a, b } = await across(DURATION, need);
    const cpuSeconds = cpuSince(cpu, pids);
    multiRow = {
      name: 'token exchange, 2 processes on one database',
      server: 'errand',
      rps: a.rps + b.rps,
      p50: Math.max(a.p50, b.p50),
      p99: Math.max(a.p99, b.p99),
      ok: a.ok + b.ok,
      failed: a.failed + b.failed,
      cpuUs: a.ok + b.ok > 0 ? Math.round((cpuSeconds * 1e6) / (a.ok + b.ok)) : Number.NaN,
    };
    rows.push(multiRow);
    errandTokens += a.ok + b.ok;
    log(`two processes: ${multiRow.rps} req/s (${a.rps} + ${b.rps}), p99 ${multiRow.p99} ms`);
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
  }

  // 7b. PostgreSQL (BENCH_DB=postgres): token exchange on 1, 2 and 3 broker processes sharing one
  // database, in interleaved rounds with the embedded broker above (the machine is noisy); a
  // revocation made on one node, heard and introspected on another; the other operations on one node.
  let postgres: PostgresReport | null = null;
  if (POSTGRES && (want('nodes') || want('pg-revocation') || want('pg-ops'))) postgres = await postgresScenarios();
  async function postgresScenarios(): Promise<PostgresReport> {
    const database = await benchDatabase(log);
    const pgDir = mkdtempSync(join(tmpdir(), 'errand-bench-pg-'));
    const ports: number[] = [];
    for (const _ of NODES) ports.push(await freePort());
    const bases = ports.map((p) => `http://127.0.0.1:${p}`);
    const pgIssuer = bases[0]!;
    const env = {
      ERRAND_ISSUER: pgIssuer,
      ERRAND_DATA_DIR: pgDir,
      ERRAND_DB_URL: database.url,
      ERRAND_MASTER_KEY: randomBytes(32).toString('hex'),
    };
    const nodes: ChildProcess[] = [];
    try {
      // The first node sets the new database up; the others start on it.
      for (const p of ports) nodes.push(await startBroker(p, env));
      log(`postgres: ${nodes.length} broker nodes up (pids ${nodes.map((n) => n.pid).join(', ')})`);
      const pg = await setUp(pgIssuer, database.url);
      const pgExchangeBodies = (n: number) =>
        assertionsFor(pg.agentA, pgIssuer, n).map((a) =>
          form({
            grant_type: GRANT_EXCHANGE,
            subject_token: pg.credential,
            subject_token_type: TT_JWT,
            resource: RESOURCE,
            client_assertion_type: JWT_BEARER,
            client_assertion: a,
          }),
        );
      const nodePids = nodes.map((n) => n.pid!);
      const configs: Config[] = [
        {
          label: 'embedded (SQLite file), 1 node',
          urls: [tokenUrl],
          pids: [broker.pid!],
          metrics: [issuer],
          bodies: (n) => exchangeBodies(n).bodies,
        },
        ...NODES.map((k) => ({
          label: `PostgreSQL, ${k} node${k > 1 ? 's' : ''}`,
          urls: bases.slice(0, k).map((b) => `${b}/token`),
          // Idle nodes are counted too (they are running).
          pids: nodePids,
          metrics: bases,
          bodies: pgExchangeBodies,
        })),
      ];
      const best = new Map<string, number>();
      const measure = async (cfg: Config, seconds: number): Promise<Window> => {
        const need =
          Math.ceil(Math.max((best.get(cfg.label) ?? Math.max(exRow?.rps ?? 0, 2000)) * 1.6, 1000) * seconds) + 2000;
        const bodies = pool(cfg.bodies(need));
        const pgBefore = database.postmaster ? serverProcesses(database.postmaster) : [];
        const commitsBefore = await groupCommitsOf(cfg.metrics, METRICS_TOKEN);
        const nodeCpu = cpuSnapshot(cfg.pids);
        const pgCpu = cpuSnapshot(pgBefore);
        const benchCpu = process.cpuUsage();
        const t0 = performance.now();
        const next: Next = () => ({ body: bodies.take() });
        const row = await load(cfg.label, 'errand', cfg.urls, { method: 'POST', path: '/token', headers: FORM }, next, {
          duration: seconds,
        });
        const wall = (performance.now() - t0) / 1000;
        const bench = process.cpuUsage(benchCpu);
        const pgAfter = database.postmaster ? serverProcesses(database.postmaster) : [];
        const nodeSeconds = cpuSince(nodeCpu, cfg.pids);
        const pgSeconds = cpuSince(pgCpu, [...new Set([...pgBefore, ...pgAfter])]);
        const commits = delta(await groupCommitsOf(cfg.metrics, METRICS_TOKEN), commitsBefore);
        if (bodies.exhausted) log(`WARNING: ${cfg.label} ran out of pre-signed assertions (${bodies.used} used)`);
        best.set(cfg.label, Math.max(best.get(cfg.label) ?? 0, row.rps));
        const per = (s: number) => (row.ok > 0 ? (s * 1e6) / row.ok : 0);
        return {
          row,
          nodeUs: per(nodeSeconds),
          pgUs: database.postmaster ? per(pgSeconds) : Number.NaN,
          benchUs: per((bench.user + bench.system) / 1e6),
          coresBusy: (nodeSeconds + pgSeconds + (bench.user + bench.system) / 1e6) / wall,
          groupSize: commits.groups > 0 ? commits.transactions / commits.groups : Number.NaN,
          commitMs: commits.groups > 0 ? (commits.seconds / commits.groups) * 1000 : Number.NaN,
          // One node: the share of the time the write lock is held; several: waiting for it included.
          lockBusy: commits.seconds / wall,
        };
      };

      let nodesRows: NodesRow[] = [];
      if (want('nodes')) {
        log(`nodes: warm-up, then ${ROUNDS} rounds of ${WINDOW} s per configuration`);
        const windows = await interleave(configs, measure, { rounds: ROUNDS, seconds: WINDOW, warmup: 1 });
        nodesRows = configs.map((cfg) => summarise(cfg.label, windows.get(cfg.label)!));
        for (const n of nodesRows) {
          rows.push({
            name: `token exchange, ${n.label} (median of ${ROUNDS} interleaved ${WINDOW} s windows)`,
            server: 'errand',
            rps: n.rps,
            p50: n.p50,
            p99: n.p99,
            ok: n.ok,
            failed: n.failed,
            cpuUs: n.nodeUs,
          });
        }
      }

      let revocation: CrossNodeRevocation | null = null;
      if (want('pg-revocation')) revocation = await crossNode();
      async function crossNode(): Promise<CrossNodeRevocation> {
        const [a, b] = [bases[0]!, bases[1]!];
        log(`pg-revocation: ${REVOCATION_SAMPLES} tasks ended on ${a}, heard on ${b}`);
        const tasks: { taskId: string; token: string }[] = [];
        const forms = pgExchangeBodies(REVOCATION_SAMPLES);
        await inParallel(REVOCATION_SAMPLES, 10, async (i) => {
          const res = await fetch(`${a}/token`, { method: 'POST', headers: FORM, body: forms[i]! });
          const json = (await res.json()) as { access_token: string; task_id: string };
          if (res.status !== 200) throw new Error(`exchange for pg-revocation: ${res.status} ${JSON.stringify(json)}`);
          tasks.push({ taskId: json.task_id, token: json.access_token });
        });
        const abort = new AbortController();
        const stream = await fetch(`${b}/events/revocations`, {
          method: 'POST',
          headers: { ...FORM, authorization: pg.rsBasic },
          body: form({ audience: RESOURCE }),
          signal: abort.signal,
        });
        if (stream.status !== 200 || !stream.body) {
          throw new Error(`revocation stream on ${b}: ${stream.status} ${await stream.text()}`);
        }
        const events = readServerSentEvents(stream.body, () => {}, abort.signal);
        const first = await events.next();
        if (first.value?.event !== 'ready') throw new Error('the revocation stream did not start with ready');
        const heardAt = new Map<string, number>();
        const reading = (async () => {
          for await (const e of events) {
            if (e.event !== 'revoked') continue;
            const set = JSON.parse(e.data) as { events: Record<string, { task_id?: string }> };
            const taskId = Object.values(set.events)[0]?.task_id;
            if (taskId && !heardAt.has(taskId)) heardAt.set(taskId, performance.now());
          }
        })().catch(() => undefined);
        const ends = assertionsFor(pg.agentA, pgIssuer, tasks.length);
        const answeredAt = new Map<string, number>();
        let stillActive = 0;
        for (const [i, { taskId, token }] of tasks.entries()) {
          const res = await fetch(`${a}/tasks/${encodeURIComponent(taskId)}/end`, {
            method: 'POST',
            headers: FORM,
            body: form({ state: 'completed', client_assertion_type: JWT_BEARER, client_assertion: ends[i]! }),
          });
          answeredAt.set(taskId, performance.now());
          if (res.status !== 200) throw new Error(`ending a task on ${a}: ${res.status} ${await res.text()}`);
          await res.arrayBuffer();
          // Right after A's answer, B must already say inactive (it reads the shared database).
          const intro = await fetch(`${b}/introspect`, {
            method: 'POST',
            headers: { ...FORM, authorization: pg.rsBasic },
            body: form({ token }),
          });
          const answer = (await intro.json()) as { active?: boolean };
          if (intro.status !== 200 || answer.active !== false) stillActive += 1;
        }
        for (let i = 0; i < 50 && heardAt.size < tasks.length; i++) await new Promise((r) => setTimeout(r, 100));
        abort.abort();
        await reading;
        const lat = tasks
          .filter((t) => heardAt.has(t.taskId))
          .map((t) => heardAt.get(t.taskId)! - answeredAt.get(t.taskId)!)
          .sort((x, y) => x - y);
        const ms = (v: number) => Math.round(v * 10) / 10;
        const result = {
          tasks: tasks.length,
          heard: lat.length,
          p50: ms(quantile(lat, 0.5)),
          p99: ms(quantile(lat, 0.99)),
          max: ms(lat.at(-1) ?? Number.NaN),
          heardBeforeAnswer: lat.filter((v) => v <= 0).length,
          stillActive,
        };
        log(
          `pg-revocation: ${result.heard}/${result.tasks} heard on B, p50 ${result.p50} ms, p99 ${result.p99} ms after A's answer; ${stillActive} introspected active on B`,
        );
        return result;
      }

      if (want('pg-ops')) {
        log('pg-ops: client_credentials and introspection on one PostgreSQL node');
        await tokenScenario(
          'client_credentials (PostgreSQL, 1 node)',
          'errand',
          `${bases[0]}/token`,
          (n) => ({
            bodies: assertionsFor(pg.agentA, pgIssuer, n).map((a) =>
              form({
                grant_type: 'client_credentials',
                scope: 'notes:read',
                resource: RESOURCE,
                client_assertion_type: JWT_BEARER,
                client_assertion: a,
              }),
            ),
          }),
          { counts: false },
        );
        const name = 'introspection (RS, client_secret_basic) (PostgreSQL, 1 node)';
        const request = {
          method: 'POST',
          path: '/introspect',
          headers: { ...FORM, authorization: pg.rsBasic },
          body: form({ token: pg.taskToken }),
        };
        await load(name, 'errand', `${bases[0]}/introspect`, request, null, { duration: 1 });
        rows.push(await load(name, 'errand', `${bases[0]}/introspect`, request, null));
      }
      return {
        server: database.settings,
        serverCpuMeasured: database.postmaster !== null,
        nodes: nodesRows,
        revocation,
      };
    } finally {
      for (const n of nodes) if (n.exitCode === null) n.kill('SIGTERM');
      await Promise.all(nodes.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))));
      await database.drop();
      rmSync(pgDir, { recursive: true, force: true });
    }
  }

  // 8. Growth: 1,000,000 more issued tokens (with their tasks and audit events) in the database,
  // then the same token exchange again.
  let grownRow: Row | null = null;
  if (want('grown')) {
    log(`growth: writing ${GROWN_TOKENS} issued tokens, tasks and audit events`);
    const t0 = performance.now();
    seedIssued(join(dir, 'errand.db'), GROWN_TOKENS, agentA.id);
    log(`growth: written in ${Math.round((performance.now() - t0) / 1000)} s`);
    grownRow = await tokenScenario(
      `token exchange after ${GROWN_TOKENS.toLocaleString('en-US')} more tokens`,
      'errand',
      tokenUrl,
      exchangeBodies,
      { pids: [broker.pid!] },
    );
  }

  // 9. A status list covering 1,000,000 tokens with 1 % revoked (random positions).
  const revoked = new Set<number>();
  while (revoked.size < 10_000) revoked.add(Math.floor(Math.random() * 1_000_000));
  const lst = encodeStatusList(
    1_000_000,
    [...revoked].map((i) => [i, 1] as [number, number]),
  );
  const statusList = {
    tokens: 1_000_000,
    revokedShare: 0.01,
    compressedBytes: Math.floor((lst.length * 3) / 4),
    base64urlChars: lst.length,
  };

  stopAll();
  await Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))));
  rmSync(dir, { recursive: true, force: true });
  if (brokerErr.join('').includes('"level":"error"')) log('WARNING: the broker logged errors');
  if (peerErr.length) log(`peer stderr: ${peerErr.join('').slice(0, 500)}`);

  // 10. Verdicts and reports. A target whose scenario did not run is "not measured" (met: null).
  const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : 0);
  const spread = (r: OpRow, med: number | null, min: number | null, max: number | null) =>
    med === null ? 'not measured' : `${med}× (rounds ${min}–${max}; ${r.rps} vs ${peerRow?.rps} req/s median)`;
  /** An interleaved ratio target: the operation and the peer both ran, neither failed a request. */
  const vsPeerTarget = (key: string, target: string, at: number) => {
    const r = opRow(key);
    const measured = r && peerRow && r.vsPeer !== null;
    return {
      target,
      value: measured ? spread(r, r.vsPeer, r.vsPeerMin, r.vsPeerMax) : 'not measured',
      met: measured ? r.failed === 0 && peerRow.failed === 0 && r.vsPeer! >= at : null,
    };
  };
  const targets: { target: string; value: string; met: boolean | null }[] = [
    vsPeerTarget(
      'exchange',
      "token exchange ≥ 1.25× the peer's client_credentials (interleaved median ratio, c=50)",
      1.25,
    ),
    {
      target: "token exchange p99 ≤ the peer's p99 (medians over the rounds)",
      value: exRow && peerRow ? `${exRow.p99} ms vs ${peerRow.p99} ms` : 'not measured',
      met: exRow && peerRow ? peerRow.failed === 0 && exRow.p99 <= peerRow.p99 : null,
    },
    vsPeerTarget('cc', "Errand client_credentials ≥ 1.5× the peer's", 1.5),
    vsPeerTarget('dpop', "DPoP exchange ≥ 1.0× the peer's client_credentials", 1.0),
    vsPeerTarget('subagent', "sub-agent exchange ≥ 1.0× the peer's client_credentials", 1.0),
    {
      target: "CPU per exchange ≤ 0.8× the peer's CPU per client_credentials (median of per-round ratios)",
      value:
        exRow?.cpuVsPeer != null && peerRow
          ? `${exRow.cpuVsPeer}× (rounds ${exRow.cpuVsPeerMin}–${exRow.cpuVsPeerMax}; ${exRow.cpuUs} vs ${peerRow.cpuUs} µs)`
          : 'not measured',
      met: exRow?.cpuVsPeer != null && peerRow ? exRow.cpuVsPeer <= 0.8 : null,
    },
    {
      target:
        'token exchange with 50 organisation policies ≥ 0.9× without (policy cost < 10 %; median of per-round ratios)',
      value: policyCost
        ? `${policyCost.ratio}× (rounds ${policyCost.min}–${policyCost.max}; CPU per exchange ${policyCost.cpu}×)`
        : 'not measured',
      met: policyCost ? !policyCost.failed && policyCost.ratio >= 0.9 : null,
    },
    {
      target: 'introspection ≥ 1.5× token exchange',
      value: introRow && exRow ? `${ratio(introRow.rps, exRow.rps)}×` : 'not measured',
      met: introRow && exRow ? introRow.failed === 0 && introRow.rps >= 1.5 * exRow.rps : null,
    },
    {
      target: `RSS < 200 MB after 100,000 tokens (measured after ${memory.tokensIssued})`,
      value: want('memory') ? `${memory.rssMb} MB` : 'not measured',
      met: want('memory') && memory.tokensIssued >= 100_000 ? memory.rssMb < 200 : null,
    },
    {
      target: `revocation heard by a guard over the push channel, p99 < 1 s (${PROPAGATION_TASKS} ended tasks)`,
      value: propagation
        ? `p99 ${propagation.p99} ms, p50 ${propagation.p50} ms, ${propagation.heard}/${propagation.tasks} heard`
        : 'not measured',
      met: propagation ? propagation.heard === propagation.tasks && propagation.p99 < 1000 : null,
    },
    {
      target: 'two processes on one database (both cores): token exchange',
      value:
        multiRow && exRow
          ? `${multiRow.rps} req/s, ${ratio(multiRow.rps, exRow.rps)}× one process${PIN ? ' (pinned: both on core 0)' : ''}`
          : 'not measured',
      met: multiRow && exRow ? multiRow.failed === 0 && multiRow.rps > exRow.rps : null,
    },
    {
      target: `token exchange after ${GROWN_TOKENS.toLocaleString('en-US')} more tokens within 20 % of fresh`,
      value:
        grownRow && exRow
          ? `${grownRow.rps} vs ${exRow.rps} req/s (${ratio(grownRow.rps, exRow.rps)}×)`
          : 'not measured',
      met: grownRow && exRow ? grownRow.failed === 0 && grownRow.rps >= 0.8 * exRow.rps : null,
    },
    {
      target: 'status list for 1,000,000 tokens < 200 KB compressed',
      value: `${(statusList.compressedBytes / 1024).toFixed(1)} KB`,
      met: statusList.compressedBytes < 200 * 1024,
    },
  ];
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
  const results = {
    date: new Date().toISOString(),
    machine,
    settings: {
      connections: CONNECTIONS,
      rounds: ROUNDS,
      windowSeconds: WINDOW,
      pinned: PIN,
      durationSeconds: DURATION,
      memoryTokens: MEMORY_TOKENS,
    },
    interleaved: tokenRows,
    rows: rows.map((r) => ({ ...r, vsPeer: r.server === 'errand' && peerRow ? ratio(r.rps, peerRow.rps) : null })),
    stages,
    memory,
    propagation,
    statusList,
    targets,
    postgres,
  };
  writeFileSync(join(OUT, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  const num = (v: number | null | undefined) => (v === null || v === undefined || Number.isNaN(v) ? '' : String(v));
  const range = (med: number | null, min: number | null, max: number | null) =>
    med === null ? '' : `${med}× (${min}–${max})`;
  const md = [
    `Errand benchmark, ${results.date.slice(0, 10)}: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memoryGb} GB, Node ${machine.node}, ${machine.platform}; ${PIN ? 'pinned: each server process on core 0, the load generator on core 1' : 'unpinned: servers and load generator share the cores'}.`,
    `c=${CONNECTIONS}, autocannon in the bench process; Errand and the peer each one process, all on one machine.`,
    '',
    ...(tokenRows.length
      ? [
          `Token endpoint, interleaved: ${ROUNDS} rounds of one ${WINDOW} s window per operation (order rotated each round, after a 1 s warm-up each); medians over the rounds with min–max. "vs peer" is the median of (req/s ÷ the peer's req/s in the same round); CPU µs/req is the server process's user + system time (/proc/<pid>/stat) over the window ÷ requests answered; "CPU vs peer" the median of the per-round ratios.`,
          '',
          '| operation | server | req/s | range | p50 ms | p99 ms | vs peer (range) | CPU µs/req | CPU vs peer (range) | failed |',
          '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
          ...tokenRows.map(
            (r) =>
              `| ${r.name} | ${r.server} | ${r.rps} | ${r.rpsMin}–${r.rpsMax} | ${r.p50} | ${r.p99} | ${range(r.vsPeer, r.vsPeerMin, r.vsPeerMax)} | ${num(r.cpuUs)} | ${range(r.cpuVsPeer, r.cpuVsPeerMin, r.cpuVsPeerMax)} | ${r.failed} |`,
          ),
          '',
        ]
      : []),
    ...(stages ? stagesMarkdown(stages, exRow) : []),
    ...(results.rows.length
      ? [
          `Other rows: single runs of ${DURATION} s unless the name says otherwise, not interleaved with the peer ("vs peer" against the peer's interleaved median); CPU µs/req of the broker process(es).`,
          '',
          '| operation | server | req/s | p50 ms | p99 ms | vs peer | CPU µs/req | failed |',
          '|---|---|---:|---:|---:|---:|---:|---:|',
          ...results.rows.map(
            (r) =>
              `| ${r.name} | ${r.server} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.vsPeer === null ? '' : `${r.vsPeer}×`} | ${num(r.cpuUs)} | ${r.failed} |`,
          ),
          '',
        ]
      : []),
    `Broker RSS after ${memory.tokensIssued} tokens issued: ${memory.rssMb} MB. Status list for 1,000,000 tokens (1 % revoked): ${(statusList.compressedBytes / 1024).toFixed(1)} KB compressed.`,
    '',
    '| target | measured | met |',
    '|---|---|---|',
    ...targets.map((t) => `| ${t.target} | ${t.value} | ${t.met === null ? 'not measured' : t.met ? 'yes' : 'no'} |`),
    '',
    ...(postgres ? postgresMarkdown(postgres, machine.cpus) : []),
  ].join('\n');
  writeFileSync(join(OUT, 'latest.md'), md);
  process.stdout.write(`\n${md}`);
}

/** The per-stage breakdown of one exchange and the profile's top functions by self time. */
function stagesMarkdown(st: StageReport, exRow: OpRow | null): string[] {
  const b = st.breakdown;
  const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
  return [
    `Per-stage CPU of one token exchange: a broker of its own (same database and issuer) run with \`--cpu-prof --cpu-prof-interval ${st.intervalUs}\`, a 1 s warm-up, then ${st.seconds} s at c=${CONNECTIONS}: ${st.requests} exchanges answered (${st.rps} req/s). Only samples inside that window count (start-up, warm-up and shutdown left out; idle left out); each sample's stack is walked from the leaf and the innermost frame a rule of e2e/bench/stages.ts matches names its stage. ${b.samples} samples; µs of CPU per exchange under the profiler, which adds its own cost (the unprofiled figure above: ${exRow ? `${exRow.cpuUs} µs` : 'not measured'}).`,
    '',
    '| stage | µs per exchange | share |',
    '|---|---:|---:|',
    ...b.stages.map((s) => `| ${s.stage} | ${s.us} | ${pct(s.share)} |`),
    `| total | ${b.totalUs} | 100 % |`,
    '',
    `Top ${st.top.length} functions by self time (same window):`,
    '',
    '| function | where | stage | µs per exchange | share |',
    '|---|---|---|---:|---:|',
    ...st.top.map(
      (f) => `| ${f.functionName.replace(/\|/g, '\\|')} | ${f.where} | ${f.stage} | ${f.us} | ${pct(f.share)} |`,
    ),
    '',
  ];
}

/** The PostgreSQL part of the report: the interleaved comparison and the cross-node revocation. */
function postgresMarkdown(pg: PostgresReport, cores: number): string[] {
  const num = (v: number) => (Number.isNaN(v) ? 'n/a' : String(v));
  const out = [
    `PostgreSQL (${pg.server}): token exchange, c=${CONNECTIONS}, ${ROUNDS} rounds of ${WINDOW} s per configuration, interleaved (order rotated each round); medians over the rounds, req/s range min–max.`,
    `${PIN ? `Pinned: the broker nodes on core 0, the load generator (this process) on core 1, PostgreSQL unpinned (${cores} cores)` : `All processes unpinned on ${cores} shared cores: the load generator (this process), the broker nodes and PostgreSQL`}. CPU µs per request from /proc (node: all broker processes of the configuration, idle ones included; PostgreSQL: the postmaster and all its processes${pg.serverCpuMeasured ? '' : ', not visible here'}); cores busy = (nodes + PostgreSQL + bench) CPU / wall time. Group commits from each node's /metrics (errand_db_group_commit_size; ms from BEGIN to COMMIT); writer busy = the groups' BEGIN-to-COMMIT seconds summed over the nodes / wall time: with one node the share of time the write lock is held (near 1, the serialised write path is the limit); with several it includes waiting for the lock, so above 1 means nodes queue for it.`,
    '',
    '| configuration | req/s | range | p50 ms | p99 ms | node CPU µs/req | PostgreSQL CPU µs/req | bench CPU µs/req | cores busy | writes per group | ms per group | writer busy | failed |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...pg.nodes.map(
      (n) =>
        `| ${n.label} | ${n.rps} | ${n.rpsMin}–${n.rpsMax} | ${n.p50} | ${n.p99} | ${num(n.nodeUs)} | ${n.label.startsWith('embedded') ? '' : num(n.pgUs)} | ${num(n.benchUs)} | ${num(n.coresBusy)} | ${num(n.groupSize)} | ${num(n.commitMs)} | ${num(n.lockBusy)} | ${n.failed} |`,
    ),
    '',
  ];
  const r = pg.revocation;
  if (r) {
    out.push(
      `Cross-node revocation (PostgreSQL): ${r.tasks} tasks ended one at a time on node A, a stream open on node B's /events/revocations: ${r.heard}/${r.tasks} heard, from A's 200 to the event on B p50 ${r.p50} ms, p99 ${r.p99} ms, max ${r.max} ms (${r.heardBeforeAnswer} heard before A's answer was read). Introspection on B right after A's answer: ${r.stillActive} of ${r.tasks} still active.`,
      '',
    );
  }
  return out;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
