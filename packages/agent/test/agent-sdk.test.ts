import { AgentKeys, ErrandAgent, ErrandError, privateKeyJwt, workloadIdentity } from '@errand/agent';
import { type ServerType, serve } from '@hono/node-server';
import { Hono } from 'hono';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { userApi } from '../../../broker/test/delegation-fixtures.js';
import {
  addResource,
  adminApi,
  createUser,
  freePort,
  postForm,
  startBroker,
  type TestBroker,
} from '../../../broker/test/fixtures.js';
import { startWorkloadIssuer, type WorkloadIssuer } from '../../../broker/test/workload-issuer.js';

const NOTES = 'https://notes.example.test/mcp';
const TD = 'spiffe://example.test';

let tb: TestBroker;
let wi: WorkloadIssuer;
let keys: AgentKeys;
let jwksServer: ServerType;
let keyedId: string;
let helperId: string;
let api: Awaited<ReturnType<typeof adminApi>>;

/** The SDK on the broker's (movable) clock. */
const sdkNow = () => Date.now() + tb.clock.offset * 1000;

/** Approves (or denies) the next pending request of `agentId` for `user`, as the person would. */
async function decide(user: { username: string; password: string }, agentId: string, how: 'approve' | 'deny') {
  const me = await userApi(tb, user);
  for (let i = 0; i < 100; i++) {
    const pending = (await (await me.call('GET', '/api/me/delegations?status=pending')).json()) as {
      delegations: { delegation_id: string; agent_id: string }[];
    };
    const mine = pending.delegations.find((d) => d.agent_id === agentId);
    if (mine) {
      expect((await me.call('POST', `/api/me/delegations/${mine.delegation_id}/${how}`, {})).status).toBe(200);
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no pending request');
}

beforeAll(async () => {
  tb = await startBroker({
    ERRAND_FETCH_ALLOW_PRIVATE: 'true',
    ERRAND_CIBA_INTERVAL: '1',
    ERRAND_ACCESS_TOKEN_TTL: '60',
    ERRAND_DPOP_NONCE_REQUIRED: 'true',
  });
  wi = await startWorkloadIssuer({ now: () => tb.clock.now() });
  api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  // An agent with its own rotating keys, published at its jwks_uri.
  keys = await AgentKeys.create();
  const port = await freePort();
  const app = new Hono().get('/jwks.json', (c) => c.json(keys.jwks()));
  jwksServer = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () => resolve(s));
  });
  const keyed = await api.call('POST', '/api/admin/clients', {
    kind: 'agent',
    name: 'keyed',
    jwks_uri: `http://127.0.0.1:${port}/jwks.json`,
  });
  keyedId = ((await keyed.json()) as { client_id: string }).client_id;
  // A sub-agent vouched for by its platform.
  const helper = await api.call('POST', '/api/admin/clients', {
    kind: 'agent',
    name: 'helper',
    token_endpoint_auth_method: 'workload_federation',
  });
  helperId = ((await helper.json()) as { client_id: string }).client_id;
  const ti = await api.call('POST', '/api/admin/trusted-issuers', {
    kind: 'spiffe',
    name: 'mesh',
    issuer: TD,
    jwks: wi.jwks(),
    rules: [{ match: { sub: `${TD}/helper` }, agent_id: helperId }],
  });
  expect(ti.status).toBe(201);
});
afterAll(async () => {
  await new Promise<void>((r) => jwksServer?.close(() => r()));
  await wi?.close();
  await tb?.close();
});

describe('agent SDK', () => {
  test('private_key_jwt with rotating keys, server nonces, per-task keys, refresh, sub-agents, ending', async () => {
    const user = await createUser(tb);
    const agent = await ErrandAgent.connect({
      issuer: tb.url,
      credential: privateKeyJwt({ clientId: keyedId, keys }),
      keyPerTask: true,
      now: sdkNow,
    });
    const [delegation] = await Promise.all([
      agent.requestDelegation({
        user: user.username,
        resources: [NOTES],
        scope: 'notes:read notes:write',
        maxDepth: 1,
        subAgents: [helperId],
      }),
      decide(user, keyedId, 'approve'),
    ]);
    expect(delegation.scope).toBe('notes:read notes:write');

    // Nonces are required here: the SDK retries with the one Errand sends.
    const task = await agent.startTask(delegation, { resource: NOTES, scope: 'notes:read notes:write' });
    expect(task.jkt).not.toBe(agent.jkt); // a key of its own for this task
    const first = await task.accessToken();
    expect(decodeJwt(first)).toMatchObject({ cnf: { jkt: task.jkt }, task_id: task.id, errand_aal: 'NHI-AAL1' });

    // The agent rotates its key; Errand picks it up from the jwks_uri.
    tb.clock.advance(15);
    await keys.rotate();
    // Near expiry (60 s tokens, refreshed 30 s ahead) the SDK gets a new token for the same task.
    tb.clock.advance(20);
    const second = await task.accessToken();
    expect(second).not.toBe(first);
    expect(decodeJwt(second)).toMatchObject({ task_id: task.id, cnf: { jkt: task.jkt } });

    // A sub-agent, vouched for by its platform, gets a narrower token bound to its own key.
    const helper = await ErrandAgent.connect({
      issuer: tb.url,
      credential: workloadIdentity(() => wi.svid(`${TD}/helper`, tb.url), { spiffe: true }),
      now: sdkNow,
    });
    const handoff = await task.handOff();
    const sub = await helper.joinTask(handoff, { scope: 'notes:read' });
    expect(decodeJwt(await sub.accessToken())).toMatchObject({
      client_id: helperId,
      scope: 'notes:read',
      errand_aal: 'NHI-AAL2',
      cnf: { jkt: helper.jkt },
      act: { sub: helperId, act: { sub: keyedId } },
    });
    await expect(helper.joinTask(handoff, { scope: 'notes:read notes:delete' })).rejects.toMatchObject({
      code: 'invalid_scope',
    });

    // Ending the task ends the sub-task: neither can get tokens again.
    await task.end();
    await expect(task.refresh()).rejects.toMatchObject({ code: 'invalid_request' });
    await expect(sub.refresh()).rejects.toBeInstanceOf(ErrandError);
  });

  test('actor tokens: a sub-agent proves itself as the actor of an exchange another agent makes', async () => {
    const user = await createUser(tb);
    const agent = await ErrandAgent.connect({
      issuer: tb.url,
      credential: privateKeyJwt({ clientId: keyedId, keys }),
      now: sdkNow,
    });
    const [delegation] = await Promise.all([
      agent.requestDelegation({
        user: user.username,
        resources: [NOTES],
        scope: 'notes:read notes:write',
        maxDepth: 1,
      }),
      decide(user, keyedId, 'approve'),
    ]);
    const task = await agent.startTask(delegation, { resource: NOTES });

    // Two sub-agents: one with its own keys (published inline), one vouched for by its platform.
    const subKeys = await AgentKeys.create();
    const created = await api.call('POST', '/api/admin/clients', {
      kind: 'agent',
      name: 'keyed helper',
      jwks: subKeys.jwks(),
    });
    const subId = ((await created.json()) as { client_id: string }).client_id;
    const keyedHelper = await ErrandAgent.connect({
      issuer: tb.url,
      credential: privateKeyJwt({ clientId: subId, keys: subKeys }),
      now: sdkNow,
    });
    const workloadHelper = await ErrandAgent.connect({
      issuer: tb.url,
      credential: workloadIdentity((audience) => wi.svid(`${TD}/helper`, audience), { spiffe: true }),
      now: sdkNow,
    });

    // The parent presents the sub-agent's actor token in its own exchange (RFC 8693 §2.1).
    const parent = privateKeyJwt({ clientId: keyedId, keys });
    const post = async (url: string, form: Record<string, string>) => {
      const auth = await parent.authenticate(tb.url, tb.clock.now());
      return postForm(url, {
        ...form,
        client_assertion_type: auth.client_assertion_type,
        client_assertion: auth.client_assertion,
      });
    };
    const cases = [
      { helper: keyedHelper, id: subId, level: 'NHI-AAL1', typ: 'actor+jwt' },
      { helper: workloadHelper, id: helperId, level: 'NHI-AAL2', typ: 'JWT' },
    ];
    for (const { helper, id, level, typ } of cases) {
      const actorToken = await helper.actorToken();
      expect(decodeProtectedHeader(actorToken).typ).toBe(typ);
      const res = await post(`${tb.url}/token`, {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: await task.accessToken(),
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        actor_token: actorToken,
        actor_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        scope: 'notes:read',
      });
      expect(res.status).toBe(200);
      expect(decodeJwt(((await res.json()) as { access_token: string }).access_token)).toMatchObject({
        client_id: id,
        scope: 'notes:read',
        errand_aal: level,
        act: { sub: id, act: { sub: keyedId } },
      });
      // Handed over, it never authenticates the sub-agent itself.
      const asClient = await postForm(`${tb.url}/bc-authorize`, {
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await helper.actorToken(),
        scope: 'openid notes:read',
        login_hint: user.username,
        resource: NOTES,
      });
      expect(asClient.status).toBe(401);
      expect(await asClient.json()).toMatchObject({ error: 'invalid_client' });
    }
    await task.end();
  });

  test('a denied request rejects with access_denied', async () => {
    const user = await createUser(tb);
    const agent = await ErrandAgent.connect({
      issuer: tb.url,
      credential: privateKeyJwt({ clientId: keyedId, keys }),
      now: sdkNow,
    });
    const [outcome] = await Promise.allSettled([
      agent.requestDelegation({ user: user.username, resources: [NOTES], scope: 'notes:read' }),
      decide(user, keyedId, 'deny'),
    ]);
    expect(outcome.status).toBe('rejected');
    expect((outcome as PromiseRejectedResult).reason).toMatchObject({ code: 'access_denied' });
  });
});
