import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  AuthzenDecisionSchema,
  AuthzenEvaluationsResponseSchema,
  AuthzenMetadataSchema,
} from '../services/policy/authzen.js';
import { savePolicyDraft, setPolicyStatus } from '../services/policy/policy-admin.js';
import { delegateViaCiba, delegationWorld, exchangeRaw, TT_JWT } from './delegation-fixtures.js';
import { addAgent, clientAssertion, startBroker, type TestAgent, type TestBroker } from './fixtures.js';

/**
 * OpenID AuthZEN Authorization API 1.0 (README "AuthZEN authorization API"): requests shaped as the
 * specification's examples, the metadata document, who may ask, and the same policy answer as the
 * token endpoint gives.
 */

const NOTES = 'https://notes.example.test/mcp';
const CALENDAR = 'https://calendar.example.test/api';

let tb: TestBroker;
let world: Awaited<ReturnType<typeof delegationWorld>>;
let rs: TestAgent;
let agent: TestAgent;
let other: TestAgent;
let secretRs: { id: string; secret: string };

type Decision = { decision: boolean; context: Record<string, unknown> & { reason_admin?: { en: string } } };

beforeAll(async () => {
  tb = await startBroker();
  world = await delegationWorld(tb, { agents: 2 });
  [agent, other] = world.agents as [TestAgent, TestAgent];
  rs = await addAgent(world.api, {
    kind: 'resource_server',
    name: 'notes server',
    resources: [NOTES],
    grant_types: ['client_credentials'],
  });
  const res = await world.api.call('POST', '/api/admin/clients', {
    kind: 'resource_server',
    name: 'gateway',
    resources: [NOTES, CALENDAR],
    token_endpoint_auth_method: 'client_secret_basic',
    allow_static_secret: true,
  });
  expect(res.status).toBe(201);
  const created = (await res.json()) as { client_id: string; client_secret: string };
  secretRs = { id: created.client_id, secret: created.client_secret };
});

afterAll(async () => {
  await tb?.close();
});

async function bearer(client: TestAgent = rs, over: Parameters<typeof clientAssertion>[2] = {}) {
  return `Bearer ${await clientAssertion(client, tb.url, over)}`;
}

async function post(path: string, body: unknown, authorization?: string, headers: Record<string, string> = {}) {
  return fetch(`${tb.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(authorization ? { authorization } : {}),
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const evaluation = async (body: unknown) => post('/access/v1/evaluation', body, await bearer());
const evaluations = async (body: unknown) => post('/access/v1/evaluations', body, await bearer());

const asAgent = (id = agent.clientId) => ({ type: 'agent', id });
const notes = { type: 'resource', id: NOTES };
const tool = (name: string, resource = NOTES) => ({ type: 'tool', id: name, properties: { resource } });

/** Publishes a policy version through the same service the console uses. */
async function publish(text: string) {
  const deps = tb.broker.deps;
  const actor = { adminId: world.api.admin.id, requestId: 'test' };
  const saved = await savePolicyDraft(deps, { text, tests: [] }, actor);
  await setPolicyStatus(deps, saved.version, 'published', actor);
  return saved.version;
}

async function expectError(res: Response, status: number, error: string, description?: RegExp) {
  const body = (await res.json()) as { error: string; error_description: string };
  expect({ status: res.status, error: body.error }).toEqual({ status, error });
  if (description) expect(body.error_description).toMatch(description);
}

describe('PDP metadata (AuthZEN §9)', () => {
  test('GET /.well-known/authzen-configuration names the PDP and both endpoints', async () => {
    const res = await fetch(`${tb.url}/.well-known/authzen-configuration`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const doc = await res.json();
    expect(AuthzenMetadataSchema.safeParse(doc).success).toBe(true);
    expect(doc).toEqual({
      policy_decision_point: tb.url,
      access_evaluation_endpoint: `${tb.url}/access/v1/evaluation`,
      access_evaluations_endpoint: `${tb.url}/access/v1/evaluations`,
    });
  });
});

describe('Access Evaluation API (AuthZEN §6)', () => {
  test('a single evaluation is decided by the policies in force, and X-Request-ID is echoed', async () => {
    const res = await post(
      '/access/v1/evaluation',
      {
        subject: asAgent(),
        resource: notes,
        action: { name: 'exchange', properties: { method: 'POST' } },
        context: { user: world.user.id, time: '1985-10-26T01:22-07:00' },
      },
      await bearer(),
      { 'X-Request-ID': 'bfe9eb29-ab87-4ca3-be83-a1d5d8305716' },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('bfe9eb29-ab87-4ca3-be83-a1d5d8305716');
    expect(await res.json()).toEqual({
      decision: true,
      context: { id: '0', policies: ['default'], policy_version: 0 },
    });
  });

  test('client_secret_basic works as well as a client assertion', async () => {
    const basic = `Basic ${Buffer.from(`${secretRs.id}:${secretRs.secret}`).toString('base64')}`;
    const res = await post(
      '/access/v1/evaluation',
      {
        subject: asAgent(),
        resource: tool('list_notes'),
        action: { name: 'call_tool' },
        context: { user: world.user.id },
      },
      basic,
    );
    expect(res.status).toBe(200);
    expect(((await res.json()) as Decision).decision).toBe(true);
  });

  test('an unknown agent, person or resource is decision false with its reason, audited', async () => {
    const cases: [unknown, string][] = [
      [
        {
          subject: asAgent('cl_nobody'),
          resource: notes,
          action: { name: 'exchange' },
          context: { user: world.user.id },
        },
        'unknown_agent',
      ],
      [
        { subject: asAgent(), resource: notes, action: { name: 'exchange' }, context: { user: 'usr_nobody' } },
        'unknown_user',
      ],
      // The resource server speaks for NOTES only (as at introspection).
      [
        {
          subject: asAgent(),
          resource: { type: 'resource', id: CALENDAR },
          action: { name: 'exchange' },
          context: { user: world.user.id },
        },
        'resource_not_served',
      ],
    ];
    for (const [body, reason] of cases) {
      const res = await evaluation(body);
      expect(res.status).toBe(200);
      const d = (await res.json()) as Decision;
      expect(d).toMatchObject({ decision: false, context: { id: '0', reason } });
      expect(d.context.reason_admin?.en).toBeTruthy();
    }
    const basic = `Basic ${Buffer.from(`${secretRs.id}:${secretRs.secret}`).toString('base64')}`;
    const unknownResource = await post(
      '/access/v1/evaluation',
      {
        subject: asAgent(),
        resource: { type: 'resource', id: 'https://nowhere.example.test/' },
        action: { name: 'exchange' },
        context: { user: world.user.id },
      },
      basic,
    );
    expect(((await unknownResource.json()) as Decision).decision).toBe(false);
    const events = await tb.broker.deps.audit.query({ type: 'authzen.denied', limit: 50 });
    expect(events.map((e) => e.reason).sort()).toEqual(
      expect.arrayContaining(['unknown_agent', 'unknown_user', 'resource_not_served']),
    );
    const e = events.find((x) => x.reason === 'unknown_user');
    expect(e).toMatchObject({ result: 'denied', clientId: agent.clientId, audience: NOTES });
    expect(e?.details).toMatchObject({
      resource_server: rs.clientId,
      action: 'exchange',
      subject: `agent:${agent.clientId}`,
    });
  });

  test('a person approving a delegation (subject type user) is asked about with the agent in context', async () => {
    const ask = (agentId: string) =>
      evaluation({
        subject: { type: 'user', id: world.user.id },
        action: { name: 'approve_delegation' },
        resource: notes,
        context: { agent: agentId },
      });
    expect(await (await ask(agent.clientId)).json()).toEqual({
      decision: true,
      context: { id: '0', policies: ['default'], policy_version: 0 },
    });
    expect(await (await ask('cli_nobody')).json()).toMatchObject({
      decision: false,
      context: { reason: 'unknown_agent' },
    });
  });

  test('a disabled agent is decision false, whatever the policies say', async () => {
    const extra = await addAgent(world.api, { name: 'soon disabled', grant_types: undefined });
    const body = {
      subject: asAgent(extra.clientId),
      resource: notes,
      action: { name: 'exchange' },
      context: { user: world.user.id },
    };
    expect(((await (await evaluation(body)).json()) as Decision).decision).toBe(true);
    const disabled = await world.api.call('PATCH', `/api/admin/clients/${extra.clientId}`, { status: 'disabled' });
    expect(disabled.status).toBe(200);
    expect(await (await evaluation(body)).json()).toMatchObject({
      decision: false,
      context: { reason: 'agent_inactive' },
    });
  });
});

describe('authentication: resource servers only', () => {
  const body = () => ({
    subject: asAgent(),
    resource: notes,
    action: { name: 'exchange' },
    context: { user: world.user.id },
  });

  test('no credentials: 401 with a challenge (and the request id still echoed)', async () => {
    const res = await post('/access/v1/evaluation', body(), undefined, { 'X-Request-ID': 'pep-42' });
    expect(res.headers.get('www-authenticate')).toMatch(/Basic/);
    expect(res.headers.get('x-request-id')).toBe('pep-42');
    await expectError(res, 401, 'invalid_client', /client authentication is required/);
  });

  test('an agent (not a resource server) authenticates but is refused: 403', async () => {
    await expectError(
      await post('/access/v1/evaluation', body(), await bearer(agent)),
      403,
      'forbidden',
      /resource_server/,
    );
    await expectError(await post('/access/v1/evaluations', body(), await bearer(other)), 403, 'forbidden');
  });

  test('an assertion signed with another key, with alg none, or replayed: 401', async () => {
    const wrongKey = await bearer(rs, { key: agent.privateKey });
    await expectError(await post('/access/v1/evaluation', body(), wrongKey), 401, 'invalid_client');

    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: rs.clientId, sub: rs.clientId, aud: tb.url, jti: 'none-1', iat: now, exp: now + 60 };
    const unsigned = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
    await expectError(await post('/access/v1/evaluation', body(), `Bearer ${unsigned}`), 401, 'invalid_client', /alg/);

    const once = await bearer();
    expect((await post('/access/v1/evaluation', body(), once)).status).toBe(200);
    await expectError(await post('/access/v1/evaluation', body(), once), 401, 'invalid_client', /already been used/);

    const wrongSecret = `Basic ${Buffer.from(`${secretRs.id}:not-the-secret`).toString('base64')}`;
    await expectError(await post('/access/v1/evaluation', body(), wrongSecret), 401, 'invalid_client');
    await expectError(await post('/access/v1/evaluation', body(), 'Digest abc'), 401, 'invalid_client');
  });
});

describe('bad input: 400 with what to fix', () => {
  test.each([
    ['not JSON', '{"subject":', /not valid JSON/],
    ['no subject', { resource: { type: 'resource', id: NOTES }, action: { name: 'exchange' } }, /subject: is required/],
    [
      'subject without id',
      { subject: { type: 'agent' }, resource: { type: 'resource', id: NOTES }, action: { name: 'exchange' } },
      /subject\.id: is required/,
    ],
    [
      'an action Errand does not decide',
      {
        subject: { type: 'agent', id: 'x' },
        resource: { type: 'resource', id: NOTES },
        action: { name: 'can_read' },
        context: { user: 'u' },
      },
      /action\.name must be one of/,
    ],
    [
      'a person asking to exchange',
      {
        subject: { type: 'user', id: 'u' },
        resource: { type: 'resource', id: NOTES },
        action: { name: 'exchange' },
        context: { agent: 'a' },
      },
      /approve_delegation/,
    ],
    [
      'an agent without context.user',
      { subject: { type: 'agent', id: 'x' }, resource: { type: 'resource', id: NOTES }, action: { name: 'exchange' } },
      /context\.user/,
    ],
    [
      'a tool call on a resource',
      {
        subject: { type: 'agent', id: 'x' },
        resource: { type: 'resource', id: NOTES },
        action: { name: 'call_tool' },
        context: { user: 'u' },
      },
      /resource\.type must be "tool"/,
    ],
    [
      'a tool without its resource',
      {
        subject: { type: 'agent', id: 'x' },
        resource: { type: 'tool', id: 't' },
        action: { name: 'call_tool' },
        context: { user: 'u' },
      },
      /resource\.properties\.resource/,
    ],
    [
      'a depth that is not a number',
      {
        subject: { type: 'agent', id: 'x' },
        resource: { type: 'resource', id: NOTES },
        action: { name: 'hand_off' },
        context: { user: 'u', depth: 'two' },
      },
      /context\.depth/,
    ],
    [
      'an address that is not one',
      {
        subject: { type: 'agent', id: 'x' },
        resource: { type: 'resource', id: NOTES },
        action: { name: 'exchange' },
        context: { user: 'u', source_address: 'here' },
      },
      /context\.source_address/,
    ],
  ])('%s', async (_name, body, description) => {
    await expectError(await evaluation(body), 400, 'invalid_request', description);
  });

  test('a batch: an empty evaluations array, an unknown semantic, an entry missing its action', async () => {
    await expectError(await evaluations({ evaluations: [] }), 400, 'invalid_request', /evaluations/);
    await expectError(
      await evaluations({ subject: asAgent(), options: { evaluations_semantic: 'first_one' }, evaluations: [{}] }),
      400,
      'invalid_request',
      /options\.evaluations_semantic/,
    );
    await expectError(
      await evaluations({ subject: asAgent(), context: { user: world.user.id }, evaluations: [{ resource: notes }] }),
      400,
      'invalid_request',
      /evaluations\[0\]: action is required/,
    );
  });
});

describe('organisation policies: the same answer here as at /token', () => {
  test('a forbid policy: decision false naming the policy, and /token refuses the exchange with it', async () => {
    const { credential } = await delegateViaCiba(tb, world.as, agent, world.user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    const version = await publish(`@id("default")
permit (principal, action in Errand::Action::"delegated", resource);

@id("no-notes-for-${agent.clientId}")
forbid (principal == Errand::Agent::"${agent.clientId}", action in [Errand::Action::"exchange", Errand::Action::"call_tool"], resource in Errand::Resource::"${NOTES}");
`);
    const policyId = `no-notes-for-${agent.clientId}`;
    const d = (await (
      await evaluation({
        subject: asAgent(),
        resource: notes,
        action: { name: 'exchange' },
        context: { user: world.user.id },
      })
    ).json()) as Decision;
    expect(AuthzenDecisionSchema.safeParse(d).success, 'the answer is what the OpenAPI document says').toBe(true);
    expect(d).toEqual({
      decision: false,
      context: {
        id: '0',
        reason: 'policy_denied',
        reason_admin: { en: `denied by organisation policy "${policyId}" (policy version ${version})` },
        policies: [policyId],
        policy_version: version,
      },
    });

    const refused = await exchangeRaw(tb, world.as, agent, { subject_token: credential, subject_token_type: TT_JWT });
    const body = (await refused.json()) as { error: string; error_description: string };
    expect({ status: refused.status, error: body.error }).toEqual({ status: 400, error: 'access_denied' });
    expect(body.error_description).toBe(d.context.reason_admin?.en);

    const denied = await tb.broker.deps.audit.query({ type: 'authzen.denied', clientId: agent.clientId, limit: 50 });
    expect(denied.find((e) => e.reason === 'policy_denied')?.details).toMatchObject({
      policies: [policyId],
      policy_version: version,
      resource_server: rs.clientId,
    });

    // The other agent is not named by the policy.
    const otherD = (await (
      await evaluation({
        subject: asAgent(other.clientId),
        resource: notes,
        action: { name: 'exchange' },
        context: { user: world.user.id },
      })
    ).json()) as Decision;
    expect(otherD).toMatchObject({ decision: true, context: { policies: ['default'], policy_version: version } });
  });

  test('batches (AuthZEN §7): defaults inherited, each evaluations_semantic', async () => {
    // §7.1.1: top-level subject, action and context are defaults; an entry's own action wins.
    const base = {
      subject: asAgent(),
      context: { user: world.user.id },
      action: { name: 'call_tool' },
    };
    const entries = [
      { subject: asAgent(other.clientId), resource: tool('list_notes') }, // allowed
      { resource: tool('list_notes') }, // forbidden for `agent`
      { subject: asAgent(other.clientId), action: { name: 'exchange' }, resource: notes }, // allowed
    ];
    const all = await evaluations({ ...base, options: { evaluations_semantic: 'execute_all' }, evaluations: entries });
    expect(all.status).toBe(200);
    const allBody = (await all.json()) as { evaluations: Decision[] };
    expect(AuthzenEvaluationsResponseSchema.safeParse(allBody).success).toBe(true);
    expect(allBody.evaluations.map((e) => e.decision)).toEqual([true, false, true]);
    expect(allBody.evaluations.map((e) => e.context.id)).toEqual(['0', '1', '2']);
    expect(allBody.evaluations[1]?.context).toMatchObject({ reason: 'policy_denied' });

    // Without options: execute_all.
    const plain = (await (await evaluations({ ...base, evaluations: entries })).json()) as { evaluations: Decision[] };
    expect(plain.evaluations.map((e) => e.decision)).toEqual([true, false, true]);

    const denyFirst = (await (
      await evaluations({ ...base, options: { evaluations_semantic: 'deny_on_first_deny' }, evaluations: entries })
    ).json()) as { evaluations: Decision[] };
    expect(denyFirst.evaluations.map((e) => e.decision)).toEqual([true, false]);

    const permitFirst = (await (
      await evaluations({
        ...base,
        options: { evaluations_semantic: 'permit_on_first_permit' },
        evaluations: [entries[1], entries[0], entries[2]],
      })
    ).json()) as { evaluations: Decision[] };
    expect(permitFirst.evaluations.map((e) => e.decision)).toEqual([false, true]);

    // §7.1: without an evaluations array, the single-evaluation request and answer.
    const single = (await (await evaluations({ ...base, resource: tool('list_notes') })).json()) as Decision;
    expect(single).toMatchObject({ decision: false, context: { reason: 'policy_denied' } });
  });
});
