import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CAEP_SESSION_REVOKED } from '@errand/protocol';
import { createLocalJWKSet, decodeJwt, type JSONWebKeySet, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Db, openDb } from '../../db/open.js';
import { UserStore } from '../../db/stores/user-store.js';
import { readServerSentEvents, type ServerSentEvent } from '../../packages/guard/src/sse.js';
import { readStatus } from '../tokens/status-list.js';
import { type Api, exchange, TT_JWT, userApi } from './delegation-fixtures.js';
import {
  addAgent,
  addPublicClient,
  addResource,
  adminApi,
  approveInBrowser,
  Browser,
  clientAssertion,
  createUser,
  freePort,
  insecure,
  postForm,
  type TestAgent,
  type TestBroker,
  TestClock,
  waitChildReady,
} from './fixtures.js';

/**
 * Several broker nodes on one PostgreSQL database (README "Running several processes"): three
 * real child processes, each with its own port and data directory, sharing only the database URL,
 * the master key and the issuer. Runs when ERRAND_TEST_POSTGRES_URL names a server (an admin URL):
 * the file creates a database of its own there and drops it afterwards.
 */

const ADMIN_URL = process.env.ERRAND_TEST_POSTGRES_URL;
const ROOT = join(import.meta.dirname, '..', '..');
const NOTES = 'https://notes.example.test/mcp';
const REDIRECT = 'https://app.example.test/callback';
const ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const PERIOD = 12;
const AHEAD = 4;
const GRACE = 5;

interface Node {
  name: string;
  port: number;
  url: string;
  dir: string;
  child: ChildProcess;
  output: string[];
}

let dbName: string;
let dbUrl: string;
let admin: pg.Client;
let sql: pg.Client;
let db: Db;
let issuer: string;
const masterKey = randomBytes(32).toString('base64url');
let nodes: Node[] = [];
let api: Api;
let agent: TestAgent;
let worker: TestAgent;
let rs: TestAgent;
let user: { id: string; username: string; password: string };
let as: oauth.AuthorizationServer;
const open: AbortController[] = [];

/** What the shared fixtures need of a broker, for a node that runs in a child process. */
function brokerOf(node: Node): TestBroker {
  return {
    url: node.url,
    dir: node.dir,
    clock: new TestClock(),
    logs: node.output,
    broker: { deps: { users: new UserStore(db) } },
  } as unknown as TestBroker;
}

/** The discovered metadata with every endpoint on `node` (all nodes speak for one issuer). */
function asOn(node: Node): oauth.AuthorizationServer {
  const moved: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(as))
    moved[k] = typeof v === 'string' && v.startsWith(issuer) ? node.url + v.slice(issuer.length) : v;
  return { ...(moved as oauth.AuthorizationServer), issuer };
}

function spawnNode(name: string, port: number, dir: string): Node {
  const output: string[] = [];
  const child = spawn(process.execPath, ['--conditions=@errand/source', '--import', 'tsx', 'broker/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      ERRAND_PORT: String(port),
      ERRAND_ISSUER: issuer,
      ERRAND_DATA_DIR: dir,
      ERRAND_DB_URL: dbUrl,
      ERRAND_MASTER_KEY: masterKey,
      ERRAND_KEY_ROTATION_PERIOD: String(PERIOD),
      ERRAND_KEY_PUBLISH_AHEAD: String(AHEAD),
      // A publish-ahead this short needs an uncached JWKS and a tight skew (README "Key rotation and credential lifetimes").
      ERRAND_JWKS_MAX_AGE: '0',
      ERRAND_CLOCK_SKEW: '1',
      ERRAND_ACCESS_TOKEN_TTL: '30',
      ERRAND_CIBA_INTERVAL: '1',
      // Short, so that the refresh test can step past it; concurrent requests still land well inside.
      ERRAND_REFRESH_GRACE_PERIOD: String(GRACE),
      ERRAND_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  return { name, port, url: `http://127.0.0.1:${port}`, dir, child, output };
}

function waitReady(node: Node): Promise<void> {
  // Three processes compiling TypeScript at once on a loaded 2-core machine start slowly.
  return waitChildReady(node.url, node.child, node.output, { name: `node ${node.name}`, timeoutMs: 90_000 });
}

async function stop(node: Node, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return;
  const exited = new Promise((r) => node.child.once('exit', r));
  node.child.kill(signal);
  await exited;
}

const tokenAt = async (node: Node) =>
  postForm(`${node.url}/token`, {
    grant_type: 'client_credentials',
    resource: NOTES,
    scope: 'notes:read',
    client_assertion_type: ASSERTION,
    client_assertion: await clientAssertion(worker, issuer),
  });

/** RFC 7662 introspection on `node` by the notes resource server. */
async function introspect(node: Node, token: string) {
  const res = await postForm(`${node.url}/introspect`, {
    token,
    client_assertion_type: ASSERTION,
    client_assertion: await clientAssertion(rs, issuer),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { active: boolean };
}

/** The token's bit in the Token Status List served by `node`. */
async function statusOn(node: Node, token: string): Promise<number | null> {
  const { uri, idx } = (decodeJwt(token).status as { status_list: { uri: string; idx: number } }).status_list;
  expect(uri.startsWith(issuer)).toBe(true);
  const res = await fetch(node.url + uri.slice(issuer.length));
  expect(res.status).toBe(200);
  const jwks = createLocalJWKSet((await (await fetch(`${node.url}/jwks.json`)).json()) as JSONWebKeySet);
  const list = await jwtVerify(await res.text(), jwks, { issuer, typ: 'statuslist+jwt' });
  return readStatus((list.payload.status_list as { lst: string }).lst, idx);
}

/** CIBA (poll mode): asked on `ask`, polled on `poll`, approved by the user through `approve`. */
async function ciba(ask: Node, poll: Node, approve: Node) {
  const client: oauth.Client = { client_id: agent.clientId };
  const auth = oauth.PrivateKeyJwt({ key: agent.privateKey, kid: agent.kid });
  const params = new URLSearchParams({ login_hint: user.username, scope: 'openid notes:read', resource: NOTES });
  const started = await oauth.processBackchannelAuthenticationResponse(
    as,
    client,
    await oauth.backchannelAuthenticationRequest(asOn(ask), client, auth, params, insecure),
  );
  const pollOnce = () =>
    oauth.backchannelAuthenticationGrantRequest(asOn(poll), client, auth, started.auth_req_id, insecure);
  const pending = await pollOnce();
  expect(pending.status).toBe(400);
  expect(await pending.json()).toMatchObject({ error: 'authorization_pending' });

  const me = await userApi(brokerOf(approve), user);
  const list = (await (await me.call('GET', '/api/me/delegations?status=pending')).json()) as {
    delegations: { delegation_id: string; agent_id: string }[];
  };
  const mine = list.delegations.find((d) => d.agent_id === agent.clientId);
  expect(mine).toBeDefined();
  expect((await me.call('POST', `/api/me/delegations/${mine!.delegation_id}/approve`, {})).status).toBe(200);
  // Past the polling interval (1 s, counted in whole seconds) since the pending poll.
  await new Promise((r) => setTimeout(r, 2100));
  const tokens = await oauth.processBackchannelAuthenticationGrantResponse(as, client, await pollOnce());
  return { credential: tokens.access_token, delegationId: mine!.delegation_id };
}

/** A task token for the notes resource, exchanged on `node` from a delegation credential. */
async function taskOn(node: Node, credential: string) {
  const task = await exchange(brokerOf(node), asOn(node), agent, {
    subject_token: credential,
    subject_token_type: TT_JWT,
    resource: NOTES,
    scope: 'notes:read',
  });
  return { taskId: task.task_id, token: task.access_token, jti: decodeJwt(task.access_token).jti as string };
}

/**
 * A guard-style subscriber on `node`'s push stream for the notes audience. Reads in the background
 * and notes when each revoked `jti` arrived, so a test can look at it after its own checks.
 */
async function subscribe(node: Node) {
  const abort = new AbortController();
  open.push(abort);
  const res = await fetch(`${node.url}/events/revocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      client_assertion_type: ASSERTION,
      client_assertion: await clientAssertion(rs, issuer),
      audience: NOTES,
    }).toString(),
    signal: abort.signal,
  });
  expect(res.status).toBe(200);
  const events = readServerSentEvents(res.body!);
  expect((await events.next()).value).toMatchObject({ event: 'ready' });
  const arrived = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await events.next();
        if (done) return;
        const e = value as ServerSentEvent;
        if (e.event !== 'revoked') continue;
        const at = performance.now();
        const set = JSON.parse(e.data) as { aud: string; events: Record<string, { subject: { id: string } }> };
        const jti = set.events[CAEP_SESSION_REVOKED]!.subject.id;
        arrived.set(jti, at);
        waiters.get(jti)?.(at);
      }
    } catch {
      // aborted
    }
  })();
  return {
    /** When `jti` arrived (performance.now()), waiting for it if it has not yet. */
    heard: (jti: string) =>
      arrived.has(jti) ? Promise.resolve(arrived.get(jti)!) : new Promise<number>((r) => waiters.set(jti, r)),
    count: () => arrived.size,
    close: () => abort.abort(),
  };
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
};

describe.skipIf(!ADMIN_URL)('three broker nodes on one PostgreSQL database', () => {
  beforeAll(async () => {
    dbName = `errand_mn_${randomBytes(6).toString('hex')}`;
    admin = new pg.Client(ADMIN_URL);
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`);
    const url = new URL(ADMIN_URL!);
    url.pathname = `/${dbName}`;
    dbUrl = url.toString();

    const ports = [await freePort(), await freePort(), await freePort()];
    issuer = `http://127.0.0.1:${ports[0]}`;
    // All three start at once on an empty database: migrations and the first signing key race.
    nodes = ports.map((port, i) => spawnNode('ABC'[i]!, port, mkdtempSync(join(tmpdir(), 'errand-mn-'))));
    await Promise.all(nodes.map(waitReady));

    db = await openDb(dbUrl);
    sql = new pg.Client(dbUrl);
    await sql.connect();
    const [a] = nodes as [Node];
    api = await adminApi(brokerOf(a));
    await addResource(api, NOTES, ['notes:read', 'notes:write']);
    agent = await addAgent(api, { name: 'multi-node agent', grant_types: undefined });
    worker = await addAgent(api, { name: 'multi-node worker', scope: ['notes:read'] });
    rs = await addAgent(api, {
      kind: 'resource_server',
      name: 'notes',
      resources: [NOTES],
      grant_types: ['client_credentials'],
    });
    user = await createUser(brokerOf(a));
    const issuerUrl = new URL(issuer);
    as = await oauth.processDiscoveryResponse(
      issuerUrl,
      await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', ...insecure }),
    );
  }, 180_000);

  afterAll(async () => {
    for (const c of open) c.abort();
    await Promise.all(nodes.map((n) => stop(n)));
    for (const n of nodes) rmSync(n.dir, { recursive: true, force: true });
    await sql?.end();
    await db?.close();
    if (admin) {
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
    }
  }, 60_000);

  test('a task ended on A is inactive on B and C when A answers, revoked in B’s status list, and pushed to B’s stream', async () => {
    const [a, b, c] = nodes as [Node, Node, Node];
    const stream = await subscribe(b);
    const { credential } = await ciba(a, a, a);
    const delays: number[] = [];
    const fromRequest: number[] = [];
    const ROUNDS = 20;
    for (let i = 0; i < ROUNDS; i++) {
      const task = await taskOn(a, credential);
      // Live everywhere before the end: the checks below can tell a revoked token from any other.
      expect((await introspect(b, task.token)).active).toBe(true);
      expect(await statusOn(b, task.token)).toBe(0);

      const body = {
        state: 'completed',
        client_assertion_type: ASSERTION,
        client_assertion: await clientAssertion(agent, issuer),
      };
      const sent = performance.now();
      const res = await postForm(`${a.url}/tasks/${task.taskId}/end`, body);
      expect(res.status).toBe(200);
      const answered = performance.now();
      expect(await introspect(b, task.token)).toEqual({ active: false });
      expect(await introspect(c, task.token)).toEqual({ active: false });
      expect(await statusOn(b, task.token)).toBe(1);
      const heard = await stream.heard(task.jti);
      delays.push(heard - answered);
      fromRequest.push(heard - sent);
    }
    // Each revocation was pushed once (no duplicates from the other nodes' commits or tails).
    expect(stream.count()).toBe(ROUNDS);

    // A delegation revoked through A's admin API: its task token is dead on B and C, and pushed to B.
    const revoking = await ciba(a, a, a);
    const task = await taskOn(c, revoking.credential);
    expect((await introspect(b, task.token)).active).toBe(true);
    const revoked = await api.call('POST', `/api/admin/delegations/${revoking.delegationId}/revoke`);
    expect(revoked.status).toBe(200);
    const answered = performance.now();
    expect(await introspect(b, task.token)).toEqual({ active: false });
    expect(await introspect(c, task.token)).toEqual({ active: false });
    expect(await statusOn(b, task.token)).toBe(1);
    delays.push((await stream.heard(task.jti)) - answered);
    stream.close();

    // Delays from A's answer to the event on B's stream (negative: it arrived before A's answer was
    // read), and from the moment the request to A was sent (task ends only).
    const show = (xs: number[]) =>
      `p50 ${quantile(xs, 0.5).toFixed(0)} ms, p99 ${quantile(xs, 0.99).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
    console.log(`multi-node revocation push, A's answer → B's stream, ${delays.length} revocations: ${show(delays)}`);
    console.log(
      `multi-node revocation push, request to A → B's stream, ${fromRequest.length} task ends: ${show(fromRequest)}`,
    );
    for (const n of nodes) expect(n.output.join('')).not.toMatch(/"level":"error"/);
  }, 180_000);

  test('under load across key rotations: every token verifies against the JWKS of every node, no jti twice', async () => {
    const issued: string[] = [];
    const kids = new Set<string>();
    const deadline = Date.now() + (2 * PERIOD + 3) * 1000;
    let round = 0;
    while (Date.now() < deadline) {
      const batch = await Promise.all(
        [0, 1, 2].map(async (n) => {
          const res = await tokenAt(nodes[(round + n) % nodes.length]!);
          if (res.status !== 200) throw new Error(`token request: ${res.status} ${await res.text()}`);
          return ((await res.json()) as { access_token: string }).access_token;
        }),
      );
      // Checked at once against what each node publishes now.
      for (const node of nodes) {
        const jwks = createLocalJWKSet((await (await fetch(`${node.url}/jwks.json`)).json()) as JSONWebKeySet);
        for (const token of batch) {
          const { protectedHeader } = await jwtVerify(token, jwks, { issuer, audience: NOTES, typ: 'at+jwt' });
          kids.add(protectedHeader.kid!);
        }
      }
      issued.push(...batch);
      round += 1;
    }
    console.log(`multi-node key rotation: ${issued.length} tokens over ${round} rounds, signed by ${kids.size} keys`);
    expect(kids.size).toBeGreaterThanOrEqual(2);
    const jtis = issued.map((t) => decodeJwt(t).jti as string);
    expect(new Set(jtis).size).toBe(jtis.length);
    for (const n of nodes) expect(n.output.join('')).not.toMatch(/"level":"error"/);
    // One key schedule for the cluster: no two keys activate within a period of each other.
    const { rows } = await sql.query<{ activates_at: string }>(
      'SELECT activates_at FROM signing_keys ORDER BY activates_at',
    );
    const at = rows.map((r) => Number(r.activates_at));
    for (let k = 1; k < at.length; k++) expect(at[k]! - at[k - 1]!).toBeGreaterThanOrEqual(PERIOD - 1);
  }, 120_000);

  test('one refresh token sent twice to every node at once: all get the same successor; replayed after the window, the family is revoked on all', async () => {
    const [a] = nodes as [Node];
    const client = await addPublicClient(api, 'Notes Desktop', [REDIRECT]);
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const authorize = new URL(as.authorization_endpoint!);
    authorize.search = new URLSearchParams({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: REDIRECT,
      scope: 'notes:read',
      resource: NOTES,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    const { callback } = await approveInBrowser(brokerOf(a), user, authorize, { browser: new Browser() });
    const params = oauth.validateAuthResponse(as, client, callback, state);
    const first = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, {
        ...insecure,
        additionalParameters: { resource: NOTES },
      }),
    );
    let current = first.refresh_token!;
    const { rows: fam } = await sql.query<{ family_id: string }>(
      'SELECT family_id FROM refresh_tokens WHERE used_at IS NULL AND client_id = $1',
      [client.client_id],
    );
    expect(fam).toHaveLength(1);
    const family = fam[0]!.family_id;

    const ROUNDS = 5;
    for (let i = 0; i < ROUNDS; i++) {
      // README "Refresh tokens": requests presenting the same refresh token within the grace window
      // all succeed with the *same* successor response; nothing of the family is revoked.
      const responses = await Promise.all(
        [...nodes, ...nodes].map(async (node) => {
          const res = await oauth.refreshTokenGrantRequest(asOn(node), client, oauth.None(), current, insecure);
          return { status: res.status, body: (await res.json()) as { refresh_token: string; access_token: string } };
        }),
      );
      for (const r of responses) expect(r.status).toBe(200);
      const successors = new Set(responses.map((r) => r.body.refresh_token));
      const accessTokens = new Set(responses.map((r) => r.body.access_token));
      expect(successors.size).toBe(1);
      expect(accessTokens.size).toBe(1);
      const [next] = successors as Set<string>;
      expect(next).not.toBe(current);
      // Exactly one live refresh token in the family, none revoked; the successor's access token is live on every node.
      const { rows } = await sql.query<{ live: string; revoked: string; total: string }>(
        `SELECT count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NULL) AS live,
                count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked, count(*) AS total
           FROM refresh_tokens WHERE family_id = $1`,
        [family],
      );
      expect(rows[0]).toEqual({ live: '1', revoked: '0', total: String(i + 2) });
      const [access] = accessTokens as Set<string>;
      for (const node of nodes) expect((await introspect(node, access!)).active).toBe(true);
      current = next!;
    }
    const { rows: grace } = await sql.query<{ n: string }>(
      `SELECT count(*) AS n FROM audit_events WHERE type = 'refresh_token.grace_reused' AND result = 'allowed' AND client_id = $1`,
      [client.client_id],
    );
    expect(Number(grace[0]!.n)).toBe(ROUNDS * (2 * nodes.length - 1));
    // The last successor still works (on any node), once more.
    const last = await oauth.refreshTokenGrantRequest(asOn(nodes[2]!), client, oauth.None(), current, insecure);
    expect(last.status).toBe(200);
    const successor = (await last.json()) as { refresh_token: string; access_token: string };

    // Past the window, the used token presented to every node at once is reuse: invalid_grant
    // everywhere, and the whole family is revoked (README "Refresh tokens"), whichever node saw it.
    await new Promise((r) => setTimeout(r, (GRACE + 1.5) * 1000));
    const replays = await Promise.all(
      nodes.map((node) => oauth.refreshTokenGrantRequest(asOn(node), client, oauth.None(), current, insecure)),
    );
    for (const r of replays) {
      expect(r.status).toBe(400);
      expect(await r.json()).toMatchObject({ error: 'invalid_grant' });
    }
    const dead = await oauth.refreshTokenGrantRequest(
      asOn(nodes[0]!),
      client,
      oauth.None(),
      successor.refresh_token,
      insecure,
    );
    expect(dead.status).toBe(400);
    for (const node of nodes) expect(await introspect(node, successor.access_token)).toEqual({ active: false });
    const { rows: after } = await sql.query<{ live: string }>(
      `SELECT count(*) FILTER (WHERE revoked_at IS NULL AND used_at IS NULL) AS live FROM refresh_tokens WHERE family_id = $1`,
      [family],
    );
    expect(after[0]!.live).toBe('0');
  }, 120_000);

  test('CIBA across nodes: asked on A, polled on B, approved on C', async () => {
    const [a, b, c] = nodes as [Node, Node, Node];
    const { credential, delegationId } = await ciba(a, b, c);
    expect(decodeJwt(credential)).toMatchObject({ sub: user.id, client_id: agent.clientId });
    const { rows } = await sql.query<{ status: string }>('SELECT status FROM delegations WHERE id = $1', [
      delegationId,
    ]);
    expect(rows[0]?.status).toBe('active');
    // The credential works for an exchange on A.
    const task = await taskOn(a, credential);
    expect((await introspect(c, task.token)).active).toBe(true);
  }, 60_000);

  test('kill -9 of A under load: every 200 is in the database with its audit event; B serves on; A restarts', async () => {
    const [a, b, c] = nodes as [Node, Node, Node];
    const { credential } = await ciba(c, c, c);
    // A stream open on B through the kill.
    const onB = await subscribe(b);
    const ok: { node: string; jti: string; at: number }[] = [];
    const failed: Record<string, number> = { A: 0, B: 0 };
    let killedAt = Number.POSITIVE_INFINITY;
    let stopB = false;
    const load = async (node: Node) => {
      while (node === a ? node.child.exitCode === null && node.child.signalCode === null : !stopB) {
        try {
          const res = await tokenAt(node);
          if (res.status === 200) {
            const { access_token: token } = (await res.json()) as { access_token: string };
            ok.push({ node: node.name, jti: decodeJwt(token).jti as string, at: performance.now() });
          } else failed[node.name]! += 1;
        } catch {
          failed[node.name]! += 1;
        }
      }
    };
    const workers = [a, a, a, b, b, b].map(load);
    // Kill A once it has answered a good many, while its workers have requests in flight.
    await expect
      .poll(() => ok.filter((t) => t.node === 'A').length, { timeout: 60_000, interval: 10 })
      .toBeGreaterThan(40);
    a.child.kill('SIGKILL');
    killedAt = performance.now();
    await new Promise((r) => a.child.once('exit', r));
    // B keeps serving: it answers a good many after the kill.
    await expect
      .poll(() => ok.filter((t) => t.node === 'B' && t.at > killedAt).length, { timeout: 60_000, interval: 10 })
      .toBeGreaterThan(40);
    stopB = true;
    await Promise.all(workers);
    expect(failed.B).toBe(0);

    const jtis = ok.map((t) => t.jti);
    const rows = await sql.query<{ jti: string }>('SELECT jti FROM issued_tokens WHERE jti = ANY($1)', [jtis]);
    expect(new Set(rows.rows.map((r) => r.jti)).size).toBe(jtis.length);
    const audited = await sql.query<{ jti: string }>(
      `SELECT details::json->>'jti' AS jti FROM audit_events WHERE type = 'token.issued' AND client_id = $1`,
      [worker.clientId],
    );
    const auditedJtis = new Set(audited.rows.map((r) => r.jti));
    const missing = jtis.filter((j) => !auditedJtis.has(j));
    expect(missing).toEqual([]);
    console.log(
      `multi-node kill -9: ${ok.filter((t) => t.node === 'A').length} tokens from A before the kill ` +
        `(${failed.A} requests cut off), ${ok.filter((t) => t.node === 'B').length} from B ` +
        `(${ok.filter((t) => t.node === 'B' && t.at > killedAt).length} after), all ${jtis.length} stored and audited`,
    );

    // A restarted on its port and directory serves again.
    const restarted = spawnNode('A', a.port, a.dir);
    nodes[0] = restarted;
    await waitReady(restarted);
    const res = await tokenAt(restarted);
    expect(res.status).toBe(200);
    const { access_token: token } = (await res.json()) as { access_token: string };
    expect((await introspect(b, token)).active).toBe(true);
    // The restarted node hears revocations again, and B's stream outlived the kill: a task ended on C reaches both.
    const onA = await subscribe(restarted);
    const task = await taskOn(c, credential);
    const ended = await postForm(`${c.url}/tasks/${task.taskId}/end`, {
      state: 'completed',
      client_assertion_type: ASSERTION,
      client_assertion: await clientAssertion(agent, issuer),
    });
    expect(ended.status).toBe(200);
    await Promise.all([onA.heard(task.jti), onB.heard(task.jti)]);
    expect([onA.count(), onB.count()]).toEqual([1, 1]);
    onA.close();
    onB.close();
    for (const n of [b, c, restarted]) expect(n.output.join('')).not.toMatch(/"level":"error"/);
  }, 180_000);
});
