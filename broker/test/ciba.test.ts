import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentClient, delegationWorld, exchange, exchangeRaw, TT_JWT, userApi } from './delegation-fixtures.js';
import { createUser, insecure, startBroker, type TestAgent, type TestBroker } from './fixtures.js';

const NOTES = 'https://notes.example.test/mcp';
const CALENDAR = 'https://calendar.example.test/api';

let tb: TestBroker;
let world: Awaited<ReturnType<typeof delegationWorld>>;
let a: TestAgent;
let b: TestAgent;
let me: Awaited<ReturnType<typeof userApi>>;

beforeAll(async () => {
  tb = await startBroker();
  world = await delegationWorld(tb, { agents: 2 });
  [a, b] = world.agents as [TestAgent, TestAgent];
  me = await userApi(tb, world.user);
});
afterAll(() => tb.close());

type Params = Record<string, string | string[]>;

/** A raw backchannel authentication request (no login_hint is added). */
function bcRequest(agent: TestAgent, params: Params) {
  const [client, auth] = agentClient(tb, agent);
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
  return oauth.backchannelAuthenticationRequest(world.as, client, auth, body, insecure);
}

/** A successful backchannel request, parsed by oauth4webapi; notes read/write for the world's user. */
async function start(params: Params = {}, agent: TestAgent = a) {
  const [client] = agentClient(tb, agent);
  const res = await bcRequest(agent, {
    scope: 'openid notes:read notes:write',
    resource: NOTES,
    login_hint: world.user.username,
    ...params,
  });
  const started = await oauth.processBackchannelAuthenticationResponse(world.as, client, res);
  const pending = await listPending();
  const delegation = pending.find((x) => x.agent_id === agent.clientId && x.status === 'pending');
  expect(delegation).toBeDefined();
  return { ...started, delegationId: delegation!.delegation_id as string };
}

async function listPending() {
  const res = await me.call('GET', '/api/me/delegations?status=pending');
  expect(res.status).toBe(200);
  return ((await res.json()) as { delegations: Record<string, unknown>[] }).delegations;
}

/** Polls the token endpoint with the CIBA grant (raw response). */
function poll(agent: TestAgent, authReqId: string) {
  const [client, auth] = agentClient(tb, agent);
  return oauth.backchannelAuthenticationGrantRequest(world.as, client, auth, authReqId, insecure);
}

async function expectError(res: Response, status: number, error: string) {
  const body = (await res.json()) as { error: string; error_description?: string };
  expect({ status: res.status, error: body.error }).toEqual({ status, error });
  return body;
}

/** Cancels what a test left pending, so the next test's lookup by agent finds its own request. */
async function denyAllPending() {
  for (const x of await listPending()) await me.call('POST', `/api/me/delegations/${x.delegation_id}/deny`);
}

describe('CIBA poll mode', () => {
  test('pending, slow_down, then the credential once: Bearer, an ID token, no refresh token', async () => {
    await denyAllPending();
    const started = await start({ binding_message: 'Triage inbox 42' });
    expect(started.interval).toBe(5);
    expect(started.expires_in).toBeGreaterThan(0);

    await expectError(await poll(a, started.auth_req_id), 400, 'authorization_pending');
    // Again at once, faster than `interval`.
    await expectError(await poll(a, started.auth_req_id), 400, 'slow_down');
    // oauth4webapi surfaces the same as a ResponseBodyError.
    tb.clock.advance(10);
    const [client, auth] = agentClient(tb, a);
    const pendingRes = await oauth.backchannelAuthenticationGrantRequest(
      world.as,
      client,
      auth,
      started.auth_req_id,
      insecure,
    );
    await expect(
      oauth.processBackchannelAuthenticationGrantResponse(world.as, client, pendingRes),
    ).rejects.toMatchObject({ error: 'authorization_pending' });

    const approved = await me.call('POST', `/api/me/delegations/${started.delegationId}/approve`, {});
    expect(approved.status).toBe(200);
    tb.clock.advance(15);
    const res = await poll(a, started.auth_req_id);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toContain('no-store');
    const raw = (await res.clone().json()) as Record<string, unknown>;
    expect(raw.token_type).toBe('Bearer');
    expect(raw.issued_token_type).toBe(TT_JWT);
    expect(raw.refresh_token).toBeUndefined();
    expect(raw.delegation_id).toBe(started.delegationId);
    const tokens = await oauth.processBackchannelAuthenticationGrantResponse(world.as, client, res);
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.scope?.split(' ').sort()).toEqual(['notes:read', 'notes:write', 'openid']);
    const idClaims = oauth.getValidatedIdTokenClaims(tokens)!;
    expect(idClaims.sub).toBe(world.user.id);
    expect(idClaims.aud).toBe(a.clientId);
    expect(idClaims.iss).toBe(tb.url);

    // The credential works for an exchange.
    const task = await exchange(tb, world.as, a, { subject_token: tokens.access_token, subject_token_type: TT_JWT });
    expect(task.scope).toBe('notes:read notes:write');

    // The same auth_req_id again.
    tb.clock.advance(15);
    await expectError(await poll(a, started.auth_req_id), 400, 'invalid_grant');
  });

  test('after the user denies, access_denied', async () => {
    await denyAllPending();
    const started = await start();
    const denied = await me.call('POST', `/api/me/delegations/${started.delegationId}/deny`);
    expect(denied.status).toBe(200);
    expect(await denied.json()).toMatchObject({ status: 'denied' });
    await expectError(await poll(a, started.auth_req_id), 400, 'access_denied');
    // Approving a denied request is a conflict.
    const late = await me.call('POST', `/api/me/delegations/${started.delegationId}/approve`, {});
    await expectError(late, 409, 'conflict');
  });

  test('after requested_expiry passes, expired_token', async () => {
    await denyAllPending();
    const started = await start({ requested_expiry: '60' });
    expect(started.expires_in).toBe(60);
    await expectError(await poll(a, started.auth_req_id), 400, 'authorization_pending');
    tb.clock.advance(61);
    await expectError(await poll(a, started.auth_req_id), 400, 'expired_token');
  });

  test('an expired request can no longer be approved and never yields the credential', async () => {
    await denyAllPending();
    const started = await start({ requested_expiry: '60' });
    tb.clock.advance(61);
    // The user is told the request expired, and the agent polling gets expired_token.
    const approved = await me.call('POST', `/api/me/delegations/${started.delegationId}/approve`, {});
    expect(approved.status).toBe(409);
    expect(await approved.json()).toMatchObject({
      error: 'conflict',
      error_description: expect.stringContaining('expired'),
    });
    await expectError(await poll(a, started.auth_req_id), 400, 'expired_token');
  });

  test("another client polling with someone's auth_req_id, or an unknown one, gets invalid_grant", async () => {
    await denyAllPending();
    const started = await start();
    await expectError(await poll(b, started.auth_req_id), 400, 'invalid_grant');
    await expectError(await poll(a, 'ear_not-a-real-request-id'), 400, 'invalid_grant');
    // B's attempt did not consume or disturb A's request.
    await expectError(await poll(a, started.auth_req_id), 400, 'authorization_pending');
    // Not even after approval.
    await me.call('POST', `/api/me/delegations/${started.delegationId}/approve`, {});
    tb.clock.advance(10);
    await expectError(await poll(b, started.auth_req_id), 400, 'invalid_grant');
    expect((await poll(a, started.auth_req_id)).status).toBe(200);
  });
});

describe('backchannel authentication request errors', () => {
  const base = () => ({
    scope: 'openid notes:read',
    resource: NOTES,
    login_hint: world.user.username,
  });

  test('scope without openid is invalid_scope', async () => {
    await expectError(await bcRequest(a, { ...base(), scope: 'notes:read' }), 400, 'invalid_scope');
  });

  test('two hints or none are invalid_request', async () => {
    await expectError(await bcRequest(a, { ...base(), id_token_hint: 'x.y.z' }), 400, 'invalid_request');
    await expectError(await bcRequest(a, { ...base(), login_hint_token: 'abc' }), 400, 'invalid_request');
    const { login_hint: _, ...noHint } = base();
    await expectError(await bcRequest(a, noHint), 400, 'invalid_request');
  });

  test('an unknown user is unknown_user_id', async () => {
    await expectError(await bcRequest(a, { ...base(), login_hint: 'nobody-by-this-name' }), 400, 'unknown_user_id');
  });

  test('a long or control-character binding_message is invalid_binding_message', async () => {
    for (const message of ['x'.repeat(200), 'Triage\u0007inbox', 'line one\nline two', 'tab\there']) {
      await expectError(await bcRequest(a, { ...base(), binding_message: message }), 400, 'invalid_binding_message');
    }
  });

  test('a scope the resource does not offer is invalid_scope', async () => {
    await expectError(await bcRequest(a, { ...base(), scope: 'openid calendar:read' }), 400, 'invalid_scope');
    await expectError(await bcRequest(a, { ...base(), scope: 'openid' }), 400, 'invalid_scope');
  });

  test('no resource, or an unknown one, is invalid_target', async () => {
    const { resource: _, ...noResource } = base();
    await expectError(await bcRequest(a, noResource), 400, 'invalid_target');
    await expectError(
      await bcRequest(a, { ...base(), resource: 'https://unknown.example.test/' }),
      400,
      'invalid_target',
    );
  });

  test('none of these left a pending delegation behind', async () => {
    await denyAllPending();
    const before = (await tb.broker.deps.audit.query({ type: 'delegation.requested', limit: 1000 })).length;
    await bcRequest(a, { ...base(), scope: 'notes:read' });
    await bcRequest(a, { ...base(), login_hint: 'nobody-by-this-name' });
    await bcRequest(a, { ...base(), binding_message: 'x'.repeat(200) });
    expect(await listPending()).toEqual([]);
    expect((await tb.broker.deps.audit.query({ type: 'delegation.requested', limit: 1000 })).length).toBe(before);
  });
});

describe('the user decides', () => {
  test('the pending delegation shows what was asked', async () => {
    await denyAllPending();
    const details = [{ type: 'mcp_tool', locations: [NOTES], actions: ['search', 'read_note'] }];
    const started = await start({
      scope: 'openid notes:read notes:write calendar:read',
      resource: [NOTES, CALENDAR],
      binding_message: 'Plan the offsite',
      max_depth: '2',
      max_token_ttl: '120',
      delegation_expires_in: '3600',
      sub_agents: b.clientId,
      authorization_details: JSON.stringify(details),
    });
    const view = (await listPending()).find((x) => x.delegation_id === started.delegationId);
    expect(view).toMatchObject({
      status: 'pending',
      source: 'ciba',
      agent_id: a.clientId,
      user_id: world.user.id,
      binding_message: 'Plan the offsite',
      requested: {
        scopes: { [NOTES]: ['notes:read', 'notes:write'], [CALENDAR]: ['calendar:read'] },
        authorization_details: [{ type: 'mcp_tool', locations: [NOTES], actions: ['read_note', 'search'] }],
        max_depth: 2,
        max_token_ttl: 120,
        expires_in: 3600,
        sub_agents: [b.clientId],
      },
    });
    const one = await me.call('GET', `/api/me/delegations/${started.delegationId}`);
    expect(one.status).toBe(200);
    expect(await one.json()).toMatchObject({ delegation_id: started.delegationId, status: 'pending' });
  });

  test('another user can neither see nor decide it', async () => {
    await denyAllPending();
    const started = await start();
    const other = await createUser(tb);
    const them = await userApi(tb, other);
    const list = (await (await them.call('GET', '/api/me/delegations?status=pending')).json()) as {
      delegations: unknown[];
    };
    expect(list.delegations).toEqual([]);
    await expectError(await them.call('GET', `/api/me/delegations/${started.delegationId}`), 404, 'not_found');
    await expectError(
      await them.call('POST', `/api/me/delegations/${started.delegationId}/approve`, {}),
      404,
      'not_found',
    );
    await expectError(await them.call('POST', `/api/me/delegations/${started.delegationId}/deny`), 404, 'not_found');
    await expectError(await them.call('POST', `/api/me/delegations/${started.delegationId}/revoke`), 404, 'not_found');
    // Still pending for its user.
    await expectError(await poll(a, started.auth_req_id), 400, 'authorization_pending');
  });

  test('narrowing beyond what was asked is invalid_request', async () => {
    await denyAllPending();
    const started = await start({ max_depth: '1', delegation_expires_in: '3600', sub_agents: b.clientId });
    const approve = (body: unknown) => me.call('POST', `/api/me/delegations/${started.delegationId}/approve`, body);
    const attempts: unknown[] = [
      { scopes: { [NOTES]: ['notes:read', 'notes:delete'] } },
      { scopes: { [CALENDAR]: ['calendar:read'] } },
      { max_depth: 2 },
      { expires_in: 7200 },
      { max_token_ttl: 100_000 },
      { sub_agents: null },
      { sub_agents: [b.clientId, a.clientId] },
      { scopes: { [NOTES]: [] } },
      { authorization_details: [{ type: 'mcp_tool', locations: [NOTES], actions: ['search'] }] },
      { unknown_field: true },
    ];
    for (const body of attempts) {
      const res = await approve(body);
      const err = await expectError(res, 400, 'invalid_request');
      expect(err.error_description).toBeTruthy();
    }
    // Nothing was decided by those.
    await expectError(await poll(a, started.auth_req_id), 400, 'authorization_pending');
    expect((await approve({ max_depth: 0, expires_in: 600 })).status).toBe(200);
  });

  test('a narrowed approval is what the credential carries; approving twice is 409', async () => {
    await denyAllPending();
    const started = await start({ scope: 'openid notes:read notes:write', max_depth: '2' });
    const approve = () =>
      me.call('POST', `/api/me/delegations/${started.delegationId}/approve`, {
        scopes: { [NOTES]: ['notes:read'] },
        max_depth: 1,
        expires_in: 600,
      });
    const first = await approve();
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({
      status: 'active',
      scopes: { [NOTES]: ['notes:read'] },
      max_depth: 1,
      requested: { scopes: { [NOTES]: ['notes:read', 'notes:write'] }, max_depth: 2 },
    });
    await expectError(await approve(), 409, 'conflict');
    await expectError(await me.call('POST', `/api/me/delegations/${started.delegationId}/deny`), 409, 'conflict');

    tb.clock.advance(10);
    const [client] = agentClient(tb, a);
    const tokens = await oauth.processBackchannelAuthenticationGrantResponse(
      world.as,
      client,
      await poll(a, started.auth_req_id),
    );
    expect(tokens.scope).toBe('openid notes:read');
    expect(tokens.expires_in).toBeLessThanOrEqual(600);
    const dropped = await exchangeRaw(tb, world.as, a, {
      subject_token: tokens.access_token,
      subject_token_type: TT_JWT,
      scope: 'notes:write',
    });
    await expectError(dropped, 400, 'invalid_scope');
    const kept = await exchange(tb, world.as, a, { subject_token: tokens.access_token, subject_token_type: TT_JWT });
    expect(kept.scope).toBe('notes:read');
  });
});
