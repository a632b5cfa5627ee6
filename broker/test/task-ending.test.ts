import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, describe, expect, test } from 'vitest';
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
import {
  addAgent,
  clientAssertion,
  discover,
  freePort,
  insecure,
  postForm,
  startBroker,
  type TestBroker,
} from './fixtures.js';

const NOTES = 'https://notes.example.test/mcp';
const started: TestBroker[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const b of started) await b.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function broker(env: Record<string, string> = {}, dir?: string) {
  const b = await startBroker(env, dir ? { dir } : {});
  started.push(b);
  return b;
}

describe('ending tasks', () => {
  test('ending on one broker instance is seen at once by another sharing the database', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'errand-shared-'));
    dirs.push(dir);
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const one = await broker({ ERRAND_ISSUER: issuer, ERRAND_PORT: String(port) }, dir);
    const two = await broker({ ERRAND_ISSUER: issuer }, dir);
    const twoUrl = `http://127.0.0.1:${two.broker.deps.config.port}`;
    const { api, agents, user, as } = await delegationWorld(one, { agents: 2 });
    const [a, b] = agents as [(typeof agents)[0], (typeof agents)[0]];
    const { credential } = await delegateViaCiba(one, as, a, user, {
      scope: 'openid notes:read',
      resource: NOTES,
      max_depth: '1',
    });
    const ta = await exchange(one, as, a, { subject_token: credential, subject_token_type: TT_JWT });
    const tb_ = await exchange(one, as, b, { subject_token: ta.access_token, subject_token_type: TT_ACCESS });

    // Introspect through the second instance: same database, its own connections.
    const introspectOne = await introspector(one, api, [NOTES]);
    const twoAs = { ...(await discover(one)), introspection_endpoint: `${twoUrl}/introspect` };
    const rs = await addAgent(api, {
      kind: 'resource_server',
      name: 'rs2',
      resources: [NOTES],
      grant_types: ['client_credentials'],
    });
    const introspectTwo = async (token: string) => {
      const [client, auth] = agentClient(two, rs);
      return (await (await oauth.introspectionRequest(twoAs, client, auth, token, insecure)).json()) as {
        active: boolean;
      };
    };
    expect((await introspectTwo(tb_.access_token)).active).toBe(true);

    // The agent that holds the task ends it on instance one.
    const assertion = await clientAssertion(a, issuer);
    const ended = await postForm(`${one.url}/tasks/${ta.task_id}/end`, {
      state: 'completed',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    expect(ended.status).toBe(200);
    expect(await ended.json()).toMatchObject({ task_id: ta.task_id, state: 'completed', end_reason: 'finished' });

    expect(await introspectTwo(ta.access_token)).toEqual({ active: false });
    expect(await introspectTwo(tb_.access_token)).toEqual({ active: false });
    expect(await introspectOne(tb_.access_token)).toEqual({ active: false });
    // The sub-task ended with its parent.
    const child = await two.broker.deps.tasks.get(tb_.task_id);
    expect(child).toMatchObject({ state: 'canceled', endReason: 'parent_ended' });
  });

  test('another agent cannot end a task it is not part of (404, nothing ends)', async () => {
    const tb = await broker();
    const { agents, user, as } = await delegationWorld(tb, { agents: 2 });
    const [a, stranger] = agents as [(typeof agents)[0], (typeof agents)[0]];
    const { credential } = await delegateViaCiba(tb, as, a, user, { scope: 'openid notes:read', resource: NOTES });
    const ta = await exchange(tb, as, a, { subject_token: credential, subject_token_type: TT_JWT });
    const res = await postForm(`${tb.url}/tasks/${ta.task_id}/end`, {
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(stranger, tb.url),
    });
    expect(res.status).toBe(404);
    expect((await tb.broker.deps.tasks.get(ta.task_id))?.state).toBe('working');
  });

  test('a task past its deadline stops issuing and is ended by maintenance', async () => {
    const tb = await broker();
    const { api, agents, user, as } = await delegationWorld(tb, { agents: 1 });
    const a = agents[0]!;
    const introspect = await introspector(tb, api, [NOTES]);
    const { credential } = await delegateViaCiba(tb, as, a, user, { scope: 'openid notes:read', resource: NOTES });
    const ta = await exchange(tb, as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      authorization_details: JSON.stringify([{ type: 'errand_task', ttl: 120 }]),
    });
    const claims = decodeJwt(ta.access_token);
    expect((claims.exp as number) - (claims.iat as number)).toBeLessThanOrEqual(120);
    tb.clock.advance(121);
    // Past the deadline the token has expired and the task cannot mint again, even before maintenance.
    expect(await introspect(ta.access_token)).toEqual({ active: false });
    const again = await exchangeRaw(tb, as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      authorization_details: JSON.stringify([{ type: 'errand_task', task_id: ta.task_id }]),
    });
    expect(again.status).toBe(400);
    expect(await again.json()).toMatchObject({ error: 'invalid_request' });
    await tb.broker.maintain();
    expect(await tb.broker.deps.tasks.get(ta.task_id)).toMatchObject({
      state: 'failed',
      endReason: 'deadline_exceeded',
    });
  });

  test('re-minting a short token for a live task keeps the task and its act chain', async () => {
    const tb = await broker();
    const { agents, user, as } = await delegationWorld(tb, { agents: 1 });
    const a = agents[0]!;
    const { credential } = await delegateViaCiba(tb, as, a, user, {
      scope: 'openid notes:read notes:write',
      resource: NOTES,
    });
    const first = await exchange(tb, as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      scope: 'notes:read',
    });
    const again = await exchange(tb, as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      scope: 'notes:write',
      authorization_details: JSON.stringify([{ type: 'errand_task', task_id: first.task_id }]),
    });
    expect(again.task_id).toBe(first.task_id);
    expect(decodeJwt(again.access_token).act).toEqual({ sub: a.clientId });
    expect(decodeJwt(again.access_token).jti).not.toBe(decodeJwt(first.access_token).jti);
  });
});
