import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentToken, legacyClient, refusalOf } from '../../mcp-server/errand/test/mcp-fixtures.js';
import { savePolicyDraft, setPolicyStatus } from '../services/policy/policy-admin.js';
import { DEFAULT_POLICIES } from '../services/policy/schema.js';
import { agentClient, TT_ACCESS, TT_JWT, userApi } from './delegation-fixtures.js';
import {
  addAgent,
  addResource,
  adminApi,
  createUser,
  discover,
  insecure,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';
import { cibaDelegation, type DoorAnswer, DoorClients, freshActorToken } from './parity-fixtures.js';

/**
 * The organisation's policies at every door (README "Organisation policies"): a deny by policy is
 * the same `access_denied`, naming the same policy, at the token endpoint, the MCP tools and the
 * A2A skills, for asks, approvals, exchanges and hand-offs; it comes after the delegation rules,
 * never instead of them; a version in shadow only records what it would have decided.
 */

const NOTES = 'https://notes.example.test/mcp';
const FILES = 'https://files.example.test/api';
const VAULT = 'https://vault.example.test/api';

let tb: TestBroker;
let as: oauth.AuthorizationServer;
let doors: DoorClients;
let agent: TestAgent;
let sub: TestAgent;
let asker: TestAgent;
let alice: { username: string; id: string; me: Awaited<ReturnType<typeof userApi>> };
let bob: { username: string; id: string; me: Awaited<ReturnType<typeof userApi>> };
let admin: { adminId: string; requestId: string };

const policies = (asker: string, bob: string) => `${DEFAULT_POLICIES}
@id("interns-no-files")
forbid (principal, action in [Errand::Action::"exchange", Errand::Action::"hand_off"], resource == Errand::Resource::"${FILES}")
when { context.user in Errand::Group::"interns" };

@id("no-written-hand-offs")
forbid (principal, action == Errand::Action::"hand_off", resource)
when { context.scopes.contains("notes:write") };

@id("quiet-agent")
forbid (principal == Errand::Agent::"${asker}", action == Errand::Action::"ask_delegation", resource);

@id("bob-keeps-files")
forbid (principal == Errand::User::"${bob}", action == Errand::Action::"approve_delegation", resource == Errand::Resource::"${FILES}");
`;

async function publish(text: string, status: 'published' | 'shadow' = 'published') {
  const deps = tb.broker.deps;
  const saved = await savePolicyDraft({ ...deps }, { text, tests: [] }, admin);
  await setPolicyStatus({ ...deps }, saved.version, status, admin);
  return saved.version;
}

const refusedByPolicy = (a: DoorAnswer, policy: string) => {
  expect(a).toMatchObject({ ok: false, error: 'access_denied' });
  expect((a as { description: string }).description).toContain(`"${policy}"`);
};

async function auditOf(type: string, clientId: string) {
  return (await tb.broker.deps.audit.query({ type, clientId, limit: 50 })).filter((e) => e.type === type);
}

beforeAll(async () => {
  tb = await startBroker({ ERRAND_CIBA_INTERVAL: '1', ERRAND_SESSION_TTL: String(86_400) });
  const api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  await addResource(api, FILES, ['files:read']);
  await addResource(api, VAULT, ['vault:read']);
  const scope = ['errand:delegate', 'errand:tasks', 'notes:read', 'notes:write', 'files:read', 'vault:read'];
  agent = await addAgent(api, { name: 'agent', scope, grant_types: undefined });
  sub = await addAgent(api, { name: 'sub-agent', scope, grant_types: undefined });
  asker = await addAgent(api, { name: 'quiet agent', scope, grant_types: undefined });
  const a = await createUser(tb);
  const b = await createUser(tb);
  alice = { username: a.username, id: a.id, me: await userApi(tb, a) };
  bob = { username: b.username, id: b.id, me: await userApi(tb, b) };
  await tb.broker.deps.db.write((tx) => tb.broker.deps.policyStore.setGroups(alice.id, 'local', ['interns'], tx));
  admin = { adminId: (await createUser(tb, 'admin')).id, requestId: 'req_test' };
  as = await discover(tb);
  doors = await DoorClients.open(tb, as, [agent, sub, asker]);
  await publish(policies(asker.clientId, bob.id));
});
afterAll(async () => {
  await doors?.close();
  await tb?.close();
});

describe('a deny by policy is the same at every door', () => {
  let credential: string;
  let delegationId: string;

  beforeAll(async () => {
    const got = await cibaDelegation(
      tb,
      as,
      agent,
      alice,
      { resource: [NOTES, FILES], scope: 'openid notes:read notes:write files:read', max_depth: '2' },
      {},
    );
    credential = got.credential;
    delegationId = got.delegation.delegation_id;
  });

  test('an exchange for a resource a policy forbids is access_denied naming the policy, at /token, MCP and A2A', async () => {
    const target = { resource: FILES, scope: 'files:read' };
    const answers = {
      token: await doors.exchange(agent, { subject_token: credential, subject_token_type: TT_JWT, ...target }),
      mcp: await doors.mcp(agent, 'start_task', { delegation_id: delegationId, ...target }),
      a2a: await doors.a2a(agent, 'issue_task_token', { delegation_id: delegationId, ...target }),
    };
    for (const a of Object.values(answers)) refusedByPolicy(a, 'interns-no-files');
    // Audited with both identities (the person and the agent), the policy and its version.
    const denied = (await auditOf('exchange.denied', agent.clientId)).filter((e) => e.reason === 'policy_denied');
    expect(denied).toHaveLength(3);
    for (const e of denied) {
      expect(e).toMatchObject({ userId: alice.id, clientId: agent.clientId, audience: FILES });
      expect(e.details).toMatchObject({ policies: ['interns-no-files'], action: 'exchange' });
    }
  });

  test('the MCP refusal reaches a 1.x SDK client (which validates tool results) as the same access_denied', async () => {
    const token = await agentToken(tb, as, agent, `${tb.url}/mcp`, 'errand:delegate errand:tasks');
    const { client } = await legacyClient(tb, token);
    try {
      const result = await client.callTool({
        name: 'start_task',
        arguments: { delegation_id: delegationId, resource: FILES, scope: 'files:read' },
      });
      expect(result.isError).toBe(true);
      expect(refusalOf(result)).toMatchObject({ error: 'access_denied' });
      expect(String(refusalOf(result)?.error_description)).toContain('"interns-no-files"');
      // What no policy forbids is issued to it too, and its output validates against the schema.
      const issued = await client.callTool({
        name: 'start_task',
        arguments: { delegation_id: delegationId, resource: NOTES, scope: 'notes:read' },
      });
      expect(issued.isError).toBeFalsy();
      expect(issued.structuredContent).toMatchObject({ scope: 'notes:read' });
    } finally {
      await client.close();
    }
  });

  test('what no policy forbids is issued at every door', async () => {
    const target = { resource: NOTES, scope: 'notes:read' };
    const answers = [
      await doors.exchange(agent, { subject_token: credential, subject_token_type: TT_JWT, ...target }),
      await doors.mcp(agent, 'start_task', { delegation_id: delegationId, ...target }),
      await doors.a2a(agent, 'issue_task_token', { delegation_id: delegationId, ...target }),
    ];
    for (const a of answers) expect(a).toMatchObject({ ok: true, value: { scope: 'notes:read' } });
  });

  test('the delegation rules come first: what the delegation does not cover keeps its own error', async () => {
    const target = { resource: VAULT, scope: 'vault:read' };
    const answers = [
      await doors.exchange(agent, { subject_token: credential, subject_token_type: TT_JWT, ...target }),
      await doors.mcp(agent, 'start_task', { delegation_id: delegationId, ...target }),
      await doors.a2a(agent, 'issue_task_token', { delegation_id: delegationId, ...target }),
    ];
    for (const a of answers) expect(a).toMatchObject({ ok: false, error: 'invalid_target' });
  });

  test('a hand-off a policy forbids is refused at every door; a narrower one passes', async () => {
    const start = { resource: NOTES, scope: 'notes:read notes:write' };
    const token = await doors.exchange(agent, { subject_token: credential, subject_token_type: TT_JWT, ...start });
    const mcp = await doors.mcp(agent, 'start_task', { delegation_id: delegationId, ...start });
    const a2a = await doors.a2a(agent, 'issue_task_token', { delegation_id: delegationId, ...start });
    const [t, m, a] = [token, mcp, a2a].map((x) => {
      expect(x.ok).toBe(true);
      return (x as { value: Record<string, unknown> }).value;
    });
    const handOff = async (scope: string) => ({
      token: await doors.exchange(agent, {
        subject_token: String(t!.access_token),
        subject_token_type: TT_ACCESS,
        actor_token: await freshActorToken(tb, sub),
        actor_token_type: TT_JWT,
        resource: NOTES,
        scope,
      }),
      mcp: await doors.mcp(agent, 'delegate_to_subagent', {
        task_id: String(m!.task_id),
        sub_agent_id: sub.clientId,
        actor_token: await freshActorToken(tb, sub),
        resource: NOTES,
        scope,
      }),
      a2a: await doors.a2a(agent, 'delegate_to_subagent', {
        task_id: String(a!.task_id),
        sub_agent_id: sub.clientId,
        actor_token: await freshActorToken(tb, sub),
        resource: NOTES,
        scope,
      }),
    });
    for (const x of Object.values(await handOff('notes:write'))) refusedByPolicy(x, 'no-written-hand-offs');
    for (const x of Object.values(await handOff('notes:read')))
      expect(x).toMatchObject({ ok: true, value: { scope: 'notes:read' } });
    const denied = (await auditOf('exchange.denied', sub.clientId)).filter((e) => e.reason === 'policy_denied');
    expect(denied.map((e) => e.details.action)).toEqual(['hand_off', 'hand_off', 'hand_off']);
    // The actor chain of a refused hand-off names the sub-agent and the agent above it.
    for (const e of denied) expect(e.actorChain.slice(0, 2)).toEqual([sub.clientId, agent.clientId]);
  });
});

describe('asks and approvals', () => {
  test('an agent a policy keeps from asking is refused at the backchannel endpoint, MCP and A2A', async () => {
    const [client, auth] = agentClient(tb, asker);
    const res = await oauth.backchannelAuthenticationRequest(
      as,
      client,
      auth,
      new URLSearchParams({ login_hint: alice.username, resource: NOTES, scope: 'openid notes:read' }),
      insecure,
    );
    expect(res.status).toBe(403);
    const body = (await res.json()) as { error: string; error_description: string };
    expect(body.error).toBe('access_denied');
    expect(body.error_description).toContain('"quiet-agent"');
    const args = { user: alice.username, resources: [NOTES], scopes: ['notes:read'] };
    refusedByPolicy(await doors.mcp(asker, 'request_delegation', args), 'quiet-agent');
    refusedByPolicy(await doors.a2a(asker, 'request_delegation', args), 'quiet-agent');
    // Nothing was created: the person has no request from this agent.
    const pending = (await (await alice.me.call('GET', '/api/me/delegations?status=pending')).json()) as {
      delegations: { agent_id: string }[];
    };
    expect(pending.delegations.filter((d) => d.agent_id === asker.clientId)).toEqual([]);
    const audited = await auditOf('delegation.policy_denied', asker.clientId);
    expect(audited.map((e) => e.details.door).sort()).toEqual(['a2a', 'backchannel', 'mcp']);
    for (const e of audited) expect(e).toMatchObject({ userId: alice.id, reason: 'policy_denied' });
  });

  test('a person a policy keeps from granting a resource cannot approve it; the request stays pending', async () => {
    const [client, auth] = agentClient(tb, agent);
    const bc = await oauth.backchannelAuthenticationRequest(
      as,
      client,
      auth,
      new URLSearchParams({ login_hint: bob.username, resource: FILES, scope: 'openid files:read' }),
      insecure,
    );
    expect(bc.status).toBe(200);
    const pending = (await (await bob.me.call('GET', '/api/me/delegations?status=pending')).json()) as {
      delegations: { delegation_id: string }[];
    };
    const id = pending.delegations[0]!.delegation_id;
    const res = await bob.me.call('POST', `/api/me/delegations/${id}/approve`, {});
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: 'access_denied' });
    const still = (await (await bob.me.call('GET', `/api/me/delegations/${id}`)).json()) as { status: string };
    expect(still.status).toBe('pending');
    const audited = await auditOf('delegation.policy_denied', agent.clientId);
    expect(audited.find((e) => e.delegationId === id)?.details).toMatchObject({
      action: 'approve_delegation',
      policies: ['bob-keeps-files'],
      door: 'user_api',
    });
  });
});

describe('shadow mode and versions', () => {
  test('a version in shadow decides nothing, and records what it would have denied', async () => {
    const c = await createUser(tb);
    const carol = { username: c.username, me: await userApi(tb, c) };
    const { credential } = await cibaDelegation(
      tb,
      as,
      agent,
      carol,
      { resource: NOTES, scope: 'openid notes:read' },
      {},
    );
    const enforced = tb.broker.deps.policy.current.version;
    const shadow = await publish(
      `${policies(asker.clientId, bob.id)}
@id("notes-closed") forbid (principal, action == Errand::Action::"exchange", resource == Errand::Resource::"${NOTES}");`,
      'shadow',
    );
    const issued = await doors.exchange(agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
    });
    expect(issued.ok).toBe(true);
    expect(tb.broker.deps.policy.current).toMatchObject({ version: enforced, shadow });
    await expect
      .poll(async () => (await auditOf('policy.shadow_decision', agent.clientId)).map((e) => e.details))
      .toContainEqual(
        expect.objectContaining({
          action: 'exchange',
          resource: NOTES,
          enforced: 'allow',
          shadow: 'deny',
          shadow_version: shadow,
          shadow_policies: ['notes-closed'],
        }),
      );
    // Published, the same version refuses the same exchange.
    await setPolicyStatus({ ...tb.broker.deps }, shadow, 'published', admin);
    const refused = await doors.exchange(agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
    });
    refusedByPolicy(refused, 'notes-closed');
    expect(tb.broker.deps.policy.current).toMatchObject({ version: shadow, shadow: null });
    // Rolled back to the version before: issued again.
    await setPolicyStatus({ ...tb.broker.deps }, enforced, 'published', admin);
    expect(
      await doors.exchange(agent, { subject_token: credential, subject_token_type: TT_JWT, resource: NOTES }),
    ).toMatchObject({
      ok: true,
    });
  });
});
