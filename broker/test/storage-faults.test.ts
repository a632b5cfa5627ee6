import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { postgresMode } from '../../e2e/postgres/databases.js';
import {
  addAgent,
  addResource,
  adminApi,
  clientAssertion,
  createUser,
  discover,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';
import { DoorClients } from './parity-fixtures.js';

/**
 * Storage trouble while serving, against the real broker and a real database file: another process
 * holding the write lock, and a database that refuses writes. Readiness must say so, callers must
 * hear 503 `temporarily_unavailable` with `Retry-After` (not a 500 "bug"), and the log must carry
 * the engine's reason without the query's parameters.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const NOTES = 'https://notes.example.test/mcp';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Generous bounds for a loaded 2-core machine; the measured figures are printed. */
const READY_BOUND_MS = 20_000;

let tb: TestBroker;
let agent: TestAgent;
let username: string;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  tb = await startBroker();
  const api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read']);
  agent = await addAgent(api, { scope: ['notes:read', 'errand:delegate', 'errand:tasks'], grant_types: undefined });
  username = (await createUser(tb)).username;
  as = await discover(tb);
});
afterAll(() => tb.close());

/** A client_credentials request with a client assertion whose jti the test chooses. */
async function tokenRequest(jti: string): Promise<Response> {
  return postForm(`${tb.url}/token`, {
    grant_type: 'client_credentials',
    resource: NOTES,
    scope: 'notes:read',
    client_assertion_type: JWT_BEARER,
    client_assertion: await clientAssertion(agent, tb.url, { claims: { jti } }),
  });
}

/** Polls /readyz until it answers `status`; returns how long that took (ms). */
async function readyzBecomes(status: number): Promise<{ ms: number; body: unknown }> {
  const started = performance.now();
  for (;;) {
    const res = await fetch(`${tb.url}/readyz`);
    const body = await res.json();
    if (res.status === status) return { ms: performance.now() - started, body };
    if (performance.now() - started > READY_BOUND_MS) throw new Error(`/readyz still answers ${res.status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Another process holding SQLite's write lock on the broker's database until told to let go. */
async function holdWriteLock(file: string): Promise<{ release(): Promise<void> }> {
  const script = `
    const Database = require('libsql');
    const db = new Database(process.argv[1], { timeout: 10000 });
    db.exec('BEGIN IMMEDIATE');
    process.stdout.write('locked\\n');
    process.stdin.once('data', () => { db.exec('ROLLBACK'); db.close(); process.exit(0); });
  `;
  const child: ChildProcess = spawn(process.execPath, ['-e', script, file], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.includes('locked') && resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}`)));
  });
  return {
    release: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin?.write('go\n');
      await exited;
    },
  };
}

// SQLite's write lock on the embedded file (SQLITE_BUSY); PostgreSQL has no such lock to hold.
describe.skipIf(postgresMode())('another process holds the write lock', () => {
  test('/readyz turns 503 within a bounded time, the token endpoint answers 503 temporarily_unavailable with Retry-After, and both recover', {
    timeout: 90_000,
  }, async () => {
    expect((await readyzBecomes(200)).ms).toBeLessThan(READY_BOUND_MS);
    const lock = await holdWriteLock(join(tb.dir, 'errand.db'));
    try {
      const notReady = await readyzBecomes(503);
      expect(notReady.body).toEqual({ status: 'not_ready', reason: 'storage' });

      const started = performance.now();
      const res = await tokenRequest(`jti-locked-${Date.now()}`);
      const waited = performance.now() - started;
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(await res.json()).toMatchObject({ error: 'temporarily_unavailable' });
      const health = await fetch(`${tb.url}/healthz`);
      expect(health.status).toBe(200);
      process.stdout.write(
        `write lock held: /readyz 503 after ${notReady.ms.toFixed(0)} ms; token request answered 503 after ${waited.toFixed(0)} ms\n`,
      );
    } finally {
      await lock.release();
    }
    const ready = await readyzBecomes(200);
    const after = await tokenRequest(`jti-after-${Date.now()}`);
    expect(after.status).toBe(200);
    process.stdout.write(`lock released: /readyz 200 again after ${ready.ms.toFixed(0)} ms\n`);
  });
});

// Made read-only through a SQLite pragma on the embedded file.
describe.skipIf(postgresMode())('the database refuses writes (SQLITE_READONLY)', () => {
  // The writing connection is switched to query_only: the engine's own "attempt to write a readonly
  // database", whoever runs the test (root ignores a file mode of 0444 for an open connection, and
  // a file that cannot be opened for writing is refused at start: see start-up.test.ts).
  test('/readyz answers 503, every door says temporarily_unavailable, and the log names the cause without the parameters', {
    timeout: 60_000,
  }, async () => {
    const doors = await DoorClients.open(tb, as, [agent]);
    // Each door's bearer token is fetched on first use: fetch them while writes still work.
    expect(await doors.mcp(agent, 'list_delegations', {})).toMatchObject({ ok: true });
    expect(await doors.a2a(agent, 'end_task', { task_id: 'tsk_unknown' })).toMatchObject({ ok: false });
    const jti = `jti-readonly-${Date.now()}`;
    await tb.broker.deps.db.exec('PRAGMA query_only = ON');
    try {
      expect((await readyzBecomes(503)).body).toEqual({ status: 'not_ready', reason: 'storage' });

      const res = await tokenRequest(jti);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('30');
      expect(await res.json()).toMatchObject({ error: 'temporarily_unavailable' });

      const ask = { user: username, resources: [NOTES], scopes: ['notes:read'] };
      expect(await doors.mcp(agent, 'request_delegation', ask)).toMatchObject({
        ok: false,
        error: 'temporarily_unavailable',
      });
      expect(await doors.a2a(agent, 'request_delegation', ask)).toMatchObject({
        ok: false,
        error: 'temporarily_unavailable',
      });

      const failed = tb.logs.filter((l) => l.includes('"request.failed"') && l.includes('/token'));
      expect(failed.length).toBeGreaterThan(0);
      const line = failed.at(-1) ?? '';
      // The engine's reason is in the logged error or its cause chain (drizzle wraps a failed statement).
      const chain: Record<string, unknown>[] = [];
      for (let e = JSON.parse(line).err; e; e = e.cause) chain.push(e);
      expect(chain).toContainEqual(
        expect.objectContaining({ message: 'attempt to write a readonly database', code: 'SQLITE_READONLY' }),
      );
    } finally {
      await tb.broker.deps.db.exec('PRAGMA query_only = OFF');
      await doors.close();
    }
    await readyzBecomes(200);
    expect((await tokenRequest(`jti-writable-${Date.now()}`)).status).toBe(200);
  });
});
