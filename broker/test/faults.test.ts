import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Db, openDb } from '../../db/open.js';
import { auditEvents, issuedTokens, signingKeys } from '../../db/schema/index.js';
import { UserStore } from '../../db/stores/user-store.js';
import { postgresMode } from '../../e2e/postgres/databases.js';
import {
  agentClient,
  delegateViaCiba,
  delegationWorld,
  exchangeRaw,
  TT_ACCESS,
  TT_JWT,
} from './delegation-fixtures.js';
import {
  addAgent,
  clientAssertion,
  freePort,
  insecure,
  postForm,
  type TestAgent,
  type TestBroker,
  TestClock,
} from './fixtures.js';

/**
 * Faults against real broker processes (`node --import tsx broker/main.ts`) on one data directory:
 * SIGKILL in the middle of sustained token exchange, restart, and two processes under load.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const NOTES = 'https://notes.example.test/mcp';
const PERIOD = 10;
const AHEAD = 3;

interface Proc {
  url: string;
  child: ChildProcess;
  out: string[];
}

let dir: string;
let port: number;
let issuer: string;
let db: Db;
const procs: Proc[] = [];

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`broker at ${url} did not become ready`);
}

async function startProcess(p: number): Promise<Proc> {
  const out: string[] = [];
  const child = spawn(process.execPath, ['--conditions=@errand/source', '--import', 'tsx', 'broker/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      ERRAND_PORT: String(p),
      ERRAND_ISSUER: issuer,
      ERRAND_DATA_DIR: dir,
      ERRAND_KEY_ROTATION_PERIOD: String(PERIOD),
      ERRAND_KEY_PUBLISH_AHEAD: String(AHEAD),
      // A publish-ahead this short needs an uncached JWKS and a tight skew (README "Key rotation and credential lifetimes").
      ERRAND_JWKS_MAX_AGE: '0',
      ERRAND_CLOCK_SKEW: '1',
      ERRAND_ACCESS_TOKEN_TTL: '120',
      ERRAND_CIBA_INTERVAL: '1',
      ERRAND_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', (d: Buffer) => out.push(d.toString()));
  child.stdout?.on('data', (d: Buffer) => out.push(d.toString()));
  const proc = { url: `http://127.0.0.1:${p}`, child, out };
  procs.push(proc);
  await waitReady(proc.url);
  return proc;
}

const exited = (c: ChildProcess) =>
  new Promise((r) => (c.exitCode !== null || c.signalCode ? r(null) : c.once('exit', r)));

/** The fixtures speak to a TestBroker; a spawned process is one whose stores we reach through the db file. */
function remote(url: string): TestBroker {
  return {
    url,
    dir,
    clock: new TestClock(),
    logs: [],
    broker: { deps: { users: new UserStore(db) } },
    close: async () => {},
  } as unknown as TestBroker;
}

type World = Awaited<ReturnType<typeof delegationWorld>>;
let world: World;
let credential: string;
let rs: TestAgent;

/** Introspects `token` at the process at `url` as the resource server. */
async function introspectAt(url: string, token: string) {
  const tb = remote(url);
  const [client, auth] = agentClient(tb, rs);
  const as = { ...world.as, introspection_endpoint: `${url}/introspect` };
  const res = await oauth.introspectionRequest(as, client, auth, token, insecure);
  return (await res.json()) as { active: boolean };
}

/** One token exchange for a new task at `url`; returns the token or throws (e.g. when the process is dead). */
async function exchangeAt(url: string, agent: TestAgent) {
  const tb = remote(url);
  const as = { ...world.as, token_endpoint: `${url}/token` };
  const res = await exchangeRaw(tb, as, agent, { subject_token: credential, subject_token_type: TT_JWT });
  if (res.status !== 200) throw new Error(`exchange failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as { access_token: string; task_id: string };
}

async function endTaskAt(url: string, agent: TestAgent, taskId: string) {
  return postForm(`${url}/tasks/${taskId}/end`, {
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion(agent, issuer),
    state: 'completed',
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'errand-faults-'));
  port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  await startProcess(port);
  db = await openDb(`file:${join(dir, 'errand.db')}`);
  world = await delegationWorld(remote(issuer), { agents: 4, resources: { [NOTES]: ['notes:read'] } });
  rs = await addAgent(world.api, {
    kind: 'resource_server',
    name: 'rs',
    resources: [NOTES],
    grant_types: ['client_credentials'],
  });
  const tb = remote(issuer);
  ({ credential } = await delegateViaCiba(tb, world.as, world.agents[0]!, world.user, {
    scope: 'openid notes:read',
    resource: NOTES,
    max_depth: '2',
  }));
}, 60_000);

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null && !p.child.signalCode) p.child.kill('SIGTERM');
  await Promise.all(procs.map((p) => exited(p.child)));
  db?.close();
  rmSync(dir, { recursive: true, force: true });
});

// Disk faults of the embedded database file; on PostgreSQL the file is not there to break.
describe.skipIf(postgresMode())('faults', () => {
  test('SIGKILL during sustained token exchange: returned tokens are durable, ended tasks stay ended, keys survive', async () => {
    const first = procs[0]!;
    const owner = world.agents[0]!;
    // A task ended before the kill, with a child token from another agent.
    const ended = await exchangeAt(first.url, owner);
    const child = await exchangeRaw(remote(first.url), world.as, world.agents[1]!, {
      subject_token: ended.access_token,
      subject_token_type: TT_ACCESS,
    });
    expect(child.status).toBe(200);
    const childToken = ((await child.json()) as { access_token: string }).access_token;
    expect((await endTaskAt(first.url, owner, ended.task_id)).status).toBeLessThan(300);
    expect((await introspectAt(first.url, ended.access_token)).active).toBe(false);

    // Sustained exchange from four concurrent workers; SIGKILL lands mid-stream.
    const returned: string[] = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        try {
          returned.push((await exchangeAt(first.url, owner)).access_token);
        } catch {
          return; // the process died under us: requests in flight have no answer, which is fine
        }
      }
    };
    const workers = [0, 1, 2, 3].map(() => worker());
    await new Promise((r) => setTimeout(r, 3000));
    first.child.kill('SIGKILL');
    await exited(first.child);
    stop = true;
    await Promise.all(workers);
    expect(returned.length).toBeGreaterThan(20);
    const before = returned.map((t) => ({
      token: t,
      jti: decodeJwt(t).jti as string,
      kid: decodeProtectedHeader(t).kid,
    }));

    // Every token a client received has its row and its token.exchanged audit event.
    const rows = new Set((await db.q.select({ jti: issuedTokens.jti }).from(issuedTokens)).map((r) => r.jti));
    const events = await db.q.select().from(auditEvents).where(eq(auditEvents.type, 'token.exchanged'));
    const audited = new Set(events.map((e) => (JSON.parse(e.details ?? '{}') as { jti?: string }).jti));
    for (const t of before) {
      expect(rows.has(t.jti)).toBe(true);
      expect(audited.has(t.jti)).toBe(true);
    }

    // Restart on the same directory and port.
    const second = await startProcess(port);
    const after: string[] = [];
    for (let i = 0; i < 20; i++) after.push((await exchangeAt(second.url, owner)).access_token);
    const jtis = [...before.map((t) => t.jti), ...after.map((t) => decodeJwt(t).jti as string)];
    expect(new Set(jtis).size).toBe(jtis.length);

    // The ended task stays ended, and its tokens stay inactive.
    expect((await introspectAt(second.url, ended.access_token)).active).toBe(false);
    expect((await introspectAt(second.url, childToken)).active).toBe(false);
    const reuse = await exchangeRaw(remote(second.url), world.as, owner, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      authorization_details: JSON.stringify([{ type: 'errand_task', task_id: ended.task_id }]),
    });
    expect(reuse.status).toBeGreaterThanOrEqual(400);
    expect(reuse.status).toBeLessThan(500);

    // Signing keys survive: a token signed before the kill verifies against the JWKS after restart.
    const jwks = (await (await fetch(`${second.url}/jwks.json`)).json()) as JSONWebKeySet;
    const sample = before[before.length - 1]!;
    expect(jwks.keys.map((k) => k.kid)).toContain(sample.kid);
    const verified = await jwtVerify(sample.token, createLocalJWKSet(jwks), { issuer, audience: NOTES });
    expect(verified.protectedHeader.kid).toBe(sample.kid);
    expect((await introspectAt(second.url, sample.token)).active).toBe(true);
  }, 45_000);

  test('two processes under load: a task ended on one is inactive on the other at once; one key schedule', async () => {
    const one = procs[procs.length - 1]!;
    const two = await startProcess(await freePort());
    const owner = world.agents[0]!;
    const deadline = Date.now() + (PERIOD + 3) * 1000;
    let load = true;
    const loadErrors: string[] = [];
    const loader = async (n: number) => {
      while (load) {
        try {
          await exchangeAt((n % 2 ? one : two).url, owner);
        } catch (err) {
          loadErrors.push(String(err));
        }
      }
    };
    const loaders = [0, 1, 2, 3].map(loader);
    let checks = 0;
    try {
      while (Date.now() < deadline) {
        const [endOn, readOn] = checks % 2 ? [one, two] : [two, one];
        const t = await exchangeAt(endOn.url, owner);
        expect((await introspectAt(readOn.url, t.access_token)).active).toBe(true);
        expect((await endTaskAt(endOn.url, owner, t.task_id)).status).toBeLessThan(300);
        expect((await introspectAt(readOn.url, t.access_token)).active).toBe(false);
        checks += 1;
      }
    } finally {
      load = false;
      await Promise.all(loaders);
    }
    expect(checks).toBeGreaterThan(5);
    expect(loadErrors).toEqual([]);

    const keys = await db.q.select().from(signingKeys);
    const activations = keys.map((k) => k.activatesAt).sort((a, b) => a - b);
    expect(new Set(activations).size).toBe(activations.length);
    for (let k = 1; k < activations.length; k++)
      expect(activations[k]! - activations[k - 1]!).toBeGreaterThanOrEqual(PERIOD - 1);
    const created = await db.q.select().from(auditEvents).where(eq(auditEvents.type, 'key.created'));
    const kids = created.map((e) => (JSON.parse(e.details ?? '{}') as { kid: string }).kid);
    expect(new Set(kids).size).toBe(kids.length);
    for (const p of [one, two]) expect(p.out.join('')).not.toMatch(/"level":"error"/);
  }, 40_000);
});
