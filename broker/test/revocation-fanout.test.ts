import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { CAEP_SESSION_REVOKED } from '@errand/protocol';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readServerSentEvents, type ServerSentEvent } from '../../packages/guard/src/sse.js';
import { delegateViaCiba, delegationWorld, exchange, TT_JWT } from './delegation-fixtures.js';
import {
  addAgent,
  clientAssertion,
  dbEnv,
  freePort,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
  waitChildReady,
} from './fixtures.js';

/**
 * Revocation push across processes on one embedded database file (README "Running several
 * processes"): a guard connected to process A hears about tokens ended through process B.
 * B runs in the test process (its fixtures seed the world); A is a separate OS process on the
 * same data directory, sharing nothing with B but the database file.
 */

const ROOT = join(import.meta.dirname, '..', '..');
const NOTES = 'https://notes.example.test/mcp';
const CALENDAR = 'https://calendar.example.test/api';
const ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let b: TestBroker;
let a: { url: string; child: ChildProcess; output: string[] };
let world: Awaited<ReturnType<typeof delegationWorld>>;
let notesRs: TestAgent;
let calendarRs: TestAgent;
const open: AbortController[] = [];

beforeAll(async () => {
  b = await startBroker();
  world = await delegationWorld(b, { agents: 2 });
  const rs = (resource: string) =>
    addAgent(world.api, {
      kind: 'resource_server',
      name: resource,
      resources: [resource],
      grant_types: ['client_credentials'],
    });
  notesRs = await rs(NOTES);
  calendarRs = await rs(CALENDAR);

  const port = await freePort();
  const output: string[] = [];
  const child = spawn(process.execPath, ['--conditions=@errand/source', '--import', 'tsx', 'broker/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      ERRAND_PORT: String(port),
      // One installation: both processes speak for the same issuer.
      ERRAND_ISSUER: b.url,
      ERRAND_DATA_DIR: b.dir,
      ...(await dbEnv(b.dir)),
      ERRAND_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  a = { url: `http://127.0.0.1:${port}`, child, output };
  await waitChildReady(a.url, child, output, { name: 'process A' });
}, 120_000);

afterAll(async () => {
  for (const c of open) c.abort();
  if (a && a.child.exitCode === null) {
    a.child.kill('SIGTERM');
    await new Promise((r) => a.child.once('exit', r));
  }
  await b?.close();
});

/** A guard-like subscriber: a push stream on `url` for one resource, read past its `ready` event. */
async function subscribe(url: string, rs: TestAgent, audience: string) {
  const abort = new AbortController();
  open.push(abort);
  const res = await fetch(`${url}/events/revocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      client_assertion_type: ASSERTION,
      client_assertion: await clientAssertion(rs, b.url),
      audience,
    }).toString(),
    signal: abort.signal,
  });
  expect(res.status).toBe(200);
  const events = readServerSentEvents(res.body!);
  expect((await events.next()).value).toMatchObject({ event: 'ready' });
  return {
    /** The revoked token id of the next `revoked` event. */
    async next(): Promise<string> {
      for (;;) {
        const { value, done } = await events.next();
        if (done) throw new Error('the stream ended');
        const e = value as ServerSentEvent;
        if (e.event !== 'revoked') continue;
        const set = JSON.parse(e.data) as { aud: string; events: Record<string, { subject: { id: string } }> };
        expect(set.aud).toBe(audience);
        return set.events[CAEP_SESSION_REVOKED]!.subject.id;
      }
    },
    close: () => abort.abort(),
  };
}

/** A live task on `resource` for `agent` (a CIBA delegation approved by the user, then an exchange on B). */
async function liveTask(agent: TestAgent, resource: string) {
  const scope = resource === NOTES ? 'notes:read' : 'calendar:read';
  const { credential, delegationId } = await delegateViaCiba(b, world.as, agent, world.user, {
    scope: `openid ${scope}`,
    resource,
  });
  const task = await exchange(b, world.as, agent, {
    subject_token: credential,
    subject_token_type: TT_JWT,
    resource,
    scope,
  });
  return { taskId: task.task_id, delegationId, jti: decodeJwt(task.access_token).jti as string };
}

async function endTask(url: string, agent: TestAgent, taskId: string) {
  const res = await postForm(`${url}/tasks/${taskId}/end`, {
    state: 'completed',
    client_assertion_type: ASSERTION,
    client_assertion: await clientAssertion(agent, b.url),
  });
  expect(res.status).toBe(200);
}

/** Waits for the next event on a stream and prints how long it took from the call that revoked. */
async function heard(stream: Awaited<ReturnType<typeof subscribe>>, what: string, since: number) {
  const jti = await stream.next();
  const ms = performance.now() - since;
  console.log(`revocation fan-out: ${what} on B reached A's stream in ${ms.toFixed(0)} ms`);
  // A generous bound: the tail polls every 150 ms by default.
  expect(ms).toBeLessThan(5000);
  return jti;
}

describe('revocation push across two processes on one database file', () => {
  test('ended task, revoked delegation and disabled agent on B reach a stream on A, once each and for their audience only', async () => {
    const [agent, other] = world.agents as [TestAgent, TestAgent];
    const bReads = b.broker.deps.revocationFeed.reads;
    const notes = await subscribe(a.url, notesRs, NOTES);
    const calendar = await subscribe(a.url, calendarRs, CALENDAR);

    // 1. A task ended through B's API.
    const t1 = await liveTask(agent, NOTES);
    let since = performance.now();
    await endTask(b.url, agent, t1.taskId);
    expect(await heard(notes, 'task end', since)).toBe(t1.jti);

    // 2. A delegation revoked through B's admin API.
    const t2 = await liveTask(agent, NOTES);
    since = performance.now();
    const revoked = await world.api.call('POST', `/api/admin/delegations/${t2.delegationId}/revoke`);
    expect(revoked.status).toBe(200);
    expect(await heard(notes, 'delegation revocation', since)).toBe(t2.jti);

    // 3. A task ended on A itself: delivered once (A's own commit and its tail are one path).
    const t3 = await liveTask(agent, NOTES);
    await endTask(a.url, agent, t3.taskId);
    expect(await notes.next()).toBe(t3.jti);

    // 4. An agent disabled through B's admin API. The event after t3's is t4's: no duplicate of t3.
    const t4 = await liveTask(other, NOTES);
    since = performance.now();
    const disabled = await world.api.call('PATCH', `/api/admin/clients/${other.clientId}`, { status: 'disabled' });
    expect(disabled.status).toBe(200);
    expect(await heard(notes, 'agent disable', since)).toBe(t4.jti);

    // 5. The calendar stream heard none of the notes tokens: its first event is its own resource's.
    const t5 = await liveTask(agent, CALENDAR);
    await endTask(b.url, agent, t5.taskId);
    expect(await calendar.next()).toBe(t5.jti);
    // …and the notes stream none of the calendar's: a last notes end is the next thing it hears.
    const t6 = await liveTask(agent, NOTES);
    await endTask(b.url, agent, t6.taskId);
    expect(await notes.next()).toBe(t6.jti);

    // B had no subscriber all along: its tail never read the log, although B committed revocations.
    expect(b.broker.deps.revocationFeed.reads).toBe(bReads);
    notes.close();
    calendar.close();
  }, 120_000);

  test('the tail reads the log only while a stream is open on the process', async () => {
    const feed = b.broker.deps.revocationFeed;
    const idle = feed.reads;
    const stream = await subscribe(b.url, notesRs, NOTES);
    await expect.poll(() => feed.reads, { timeout: 5000 }).toBeGreaterThan(idle + 1);
    stream.close();
    await expect.poll(() => b.logs.some((l) => l.includes('revocation_stream.closed'))).toBe(true);
    const stopped = feed.reads;
    // A revocation committed on B with nobody listening wakes nothing either.
    const t = await liveTask(world.agents[0]!, NOTES);
    await endTask(b.url, world.agents[0]!, t.taskId);
    expect(feed.reads).toBe(stopped);
  }, 60_000);
});
