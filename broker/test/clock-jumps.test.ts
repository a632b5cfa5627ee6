import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, describe, expect, test } from 'vitest';
import { usedAssertions } from '../../db/schema/index.js';
import {
  agentClient,
  delegateViaCiba,
  delegationWorld,
  exchange,
  exchangeRaw,
  introspector,
  TT_ACCESS,
  TT_JWT,
} from './delegation-fixtures.js';
import { addAgent, insecure, startBroker, type TestAgent, type TestBroker } from './fixtures.js';

/**
 * The broker's wall clock steps (NTP, an operator, a resumed VM) while its monotonic clock does not:
 * maintenance holds back what it would do early, and tokens minted while the clock ran ahead are
 * refused once it is back (README "Clock skew and clock jumps").
 */

const NOTES = 'https://notes.example.test/mcp';
const HOURS_2 = 2 * 3600;
const started: TestBroker[] = [];
afterAll(async () => {
  for (const b of started) await b.close();
});

async function broker(env: Record<string, string> = {}) {
  const tb = await startBroker(env);
  started.push(tb);
  return tb;
}

/** JSON log records with this event name. */
const logged = (tb: TestBroker, event: string) =>
  tb.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.event === event);

/** A delegation and a live task with a deadline `ttl` seconds away. */
async function liveTask(tb: TestBroker, ttl: number) {
  const world = await delegationWorld(tb, { agents: 1 });
  const agent = world.agents[0]!;
  const { credential } = await delegateViaCiba(tb, world.as, agent, world.user, {
    scope: 'openid notes:read',
    resource: NOTES,
  });
  const task = await exchange(tb, world.as, agent, {
    subject_token: credential,
    subject_token_type: TT_JWT,
    authorization_details: JSON.stringify([{ type: 'errand_task', ttl }]),
  });
  return { ...world, agent, credential, task };
}

const taskState = async (tb: TestBroker, id: string) => (await tb.broker.deps.tasks.get(id))?.state;

/** An access token by client_credentials, on the broker's current clock. */
async function clientToken(tb: TestBroker, as: oauth.AuthorizationServer, agent: TestAgent, resource: string) {
  const [client, auth] = agentClient(tb, agent);
  const scope = resource === NOTES ? 'notes:read' : 'errand:tasks';
  const res = await oauth.clientCredentialsGrantRequest(
    as,
    client,
    auth,
    new URLSearchParams({ resource, scope }),
    insecure,
  );
  return (await oauth.processClientCredentialsResponse(as, client, res)).access_token;
}

describe('maintenance across a forward jump of the wall clock', () => {
  test('a +2 h jump does not end live tasks; the jump is logged with both clocks; a real deadline still ends them', async () => {
    const tb = await broker();
    const { task } = await liveTask(tb, 600);
    tb.clock.jump(HOURS_2);
    await tb.broker.maintain();
    expect(await taskState(tb, task.task_id)).toBe('working');
    const [jumped] = logged(tb, 'clock.jumped');
    expect(jumped).toMatchObject({ level: 'error', direction: 'forward', held: true });
    expect(jumped!.wallElapsed as number).toBeGreaterThanOrEqual(HOURS_2);
    expect(jumped!.monotonicElapsed as number).toBeLessThan(600);
    expect(jumped!.drift as number).toBeGreaterThan(HOURS_2 - 60);

    // A second pass while the clock is still ahead: still held, and said again.
    await tb.broker.maintain();
    expect(await taskState(tb, task.task_id)).toBe('working');
    expect(logged(tb, 'maintenance.held').length).toBeGreaterThanOrEqual(1);

    // The clock comes back: upkeep resumes, and the task's real deadline is enforced in normal time.
    tb.clock.jump(-HOURS_2);
    await tb.broker.maintain();
    expect(logged(tb, 'clock.returned')).toHaveLength(1);
    expect(await taskState(tb, task.task_id)).toBe('working');
    tb.clock.advance(601);
    await tb.broker.maintain();
    expect(await tb.broker.deps.tasks.get(task.task_id)).toMatchObject({
      state: 'failed',
      endReason: 'deadline_exceeded',
    });
  });

  test('a jump that lasts longer than ERRAND_CLOCK_JUMP_HOLD is accepted, and deadlines are enforced by it', async () => {
    const tb = await broker({ ERRAND_CLOCK_JUMP_HOLD: '60' });
    const { task } = await liveTask(tb, 600);
    tb.clock.jump(HOURS_2);
    await tb.broker.maintain();
    expect(await taskState(tb, task.task_id)).toBe('working');
    tb.clock.advance(61);
    await tb.broker.maintain();
    expect(logged(tb, 'clock.jump_accepted')).toHaveLength(1);
    expect(await tb.broker.deps.tasks.get(task.task_id)).toMatchObject({
      state: 'failed',
      endReason: 'deadline_exceeded',
    });
  });

  test('used client-assertion jtis are not pruned by a clock 2 days ahead', async () => {
    const tb = await broker();
    await liveTask(tb, 600);
    const before = await tb.broker.deps.db.q.select().from(usedAssertions);
    expect(before.length).toBeGreaterThan(0);
    tb.clock.jump(2 * 86400);
    await tb.broker.maintain();
    const after = await tb.broker.deps.db.q.select().from(usedAssertions);
    expect(after.map((r) => r.key).sort()).toEqual(before.map((r) => r.key).sort());
  });

  test('a retired signing key is not deleted by a clock 2 h ahead while its tokens are still valid', async () => {
    const tb = await broker({ ERRAND_KEY_ROTATION_PERIOD: '3600', ERRAND_KEY_PUBLISH_AHEAD: '600' });
    const world = await delegationWorld(tb, { agents: 0 });
    const agent = await addAgent(world.api, { name: 'cc agent', scope: ['notes:read'] });
    const introspect = await introspector(tb, world.api, [NOTES]);
    tb.clock.advance(3000);
    await tb.broker.maintain(); // publishes the next key, to sign 3600 s after the first
    tb.clock.advance(580);
    const token = await clientToken(tb, world.as, agent, NOTES); // signed by the first key, 20 s before it retires
    tb.clock.advance(120);
    await tb.broker.maintain();
    expect((await introspect(token)).active).toBe(true);
    tb.clock.jump(HOURS_2);
    await tb.broker.maintain();
    tb.clock.jump(-HOURS_2);
    await tb.broker.maintain();
    expect((await introspect(token)).active).toBe(true);
  });
});

describe('tokens minted while the clock ran ahead are refused once it is back (iat in the future)', () => {
  test('introspection, /token (subject_token), /mcp and a delegation credential all refuse them; revocation still works', async () => {
    const tb = await broker();
    const { agent, as, api, user, credential } = await liveTask(tb, 3600);
    const introspect = await introspector(tb, api, [NOTES]);
    // An agent acting as itself, at the notes resource and at Errand's own MCP endpoint.
    const ccAgent = await addAgent(api, { name: 'cc agent', scope: ['notes:read', 'errand:tasks'] });
    const mcp = `${tb.url}/mcp`;

    tb.clock.jump(HOURS_2);
    const ahead = await exchange(tb, as, agent, { subject_token: credential, subject_token_type: TT_JWT });
    const aheadClient = await clientToken(tb, as, ccAgent, NOTES);
    const aheadMcp = await clientToken(tb, as, ccAgent, mcp);
    const doomed = await clientToken(tb, as, ccAgent, NOTES);
    // A new delegation approved while ahead: its credential carries the future iat too.
    const { credential: aheadCredential } = await delegateViaCiba(tb, as, agent, user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    expect((decodeJwt(ahead.access_token).iat as number) - Math.floor(Date.now() / 1000)).toBeGreaterThan(HOURS_2 - 60);
    expect((await introspect(ahead.access_token)).active).toBe(true);
    tb.clock.jump(-HOURS_2);

    // Introspection (RFC 7662 §2.2): inactive.
    expect(await introspect(ahead.access_token)).toEqual({ active: false });
    expect(await introspect(aheadClient)).toEqual({ active: false });

    // The token endpoint: neither the task token nor the credential is a valid subject.
    for (const [subject, type] of [
      [ahead.access_token, TT_ACCESS],
      [aheadCredential, TT_JWT],
    ] as const) {
      const res = await exchangeRaw(tb, as, agent, { subject_token: subject, subject_token_type: type });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_request' });
    }

    // Errand's own MCP endpoint: 401 invalid_token.
    const res = await fetch(mcp, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${aheadMcp}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');

    // Revocation still finds it (RFC 7009 §2.1): revoked now, it stays dead once real time catches up.
    const [client, auth] = agentClient(tb, ccAgent);
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, doomed, insecure));
    tb.clock.advance(HOURS_2);
    expect(await introspect(doomed)).toEqual({ active: false });
    // The one not revoked lives out its own window, which has now begun.
    expect((await introspect(aheadClient)).active).toBe(true);
  });
});
