import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  type Api,
  delegateViaCiba,
  delegationWorld,
  exchange,
  exchangeRaw,
  TT_JWT,
  userApi,
} from './delegation-fixtures.js';
import { startBroker, type TestAgent, type TestBroker } from './fixtures.js';

/**
 * Organisation policies through the admin API (README "Organisation policies"): versions, checks,
 * shadow, publish and rollback; what a published or shadowed policy does to a real exchange at
 * /token; people's groups; and who may use any of it.
 */

const NOTES = 'https://notes.example.test/mcp';
const CALENDAR = 'https://calendar.example.test/api';

const DEFAULT = `@id("default")
permit (principal, action in Errand::Action::"delegated", resource);
`;
const forbidNotes = (id: string) => `${DEFAULT}
@id("${id}")
forbid (principal, action == Errand::Action::"exchange", resource == Errand::Resource::"${NOTES}");
`;

let tb: TestBroker;
let world: Awaited<ReturnType<typeof delegationWorld>>;
let api: Api;
let agent: TestAgent;

beforeAll(async () => {
  tb = await startBroker();
  world = await delegationWorld(tb, { agents: 1 });
  api = world.api;
  [agent] = world.agents as [TestAgent];
});
afterAll(() => tb.close());

const notesTest = (name: string, expect: 'allow' | 'deny') => ({
  name,
  action: 'exchange',
  agent: { id: 'agt_any' },
  user: { id: 'usr_any' },
  resource: { url: NOTES },
  expect,
});

async function json<T = Record<string, unknown>>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return JSON.parse(text) as T;
}

async function save(text: string, tests: unknown[] = [], comment?: string): Promise<number> {
  const body = await json<{ version: number; status: string }>(
    await api.call('POST', '/api/admin/policies', { text, tests, ...(comment ? { comment } : {}) }),
    201,
  );
  expect(body.status).toBe('draft');
  return body.version;
}

const setStatus = (version: number, status: string) =>
  api.call('POST', `/api/admin/policies/${version}/status`, { status });

/** A delegation of notes and calendar from the world's user to the agent, and its credential. */
async function delegate() {
  return delegateViaCiba(tb, world.as, agent, world.user, {
    scope: 'openid notes:read calendar:read',
    resource: [NOTES, CALENDAR],
  });
}

const startTask = (credential: string, resource = NOTES) =>
  exchangeRaw(tb, world.as, agent, { subject_token: credential, subject_token_type: TT_JWT, resource });

/** Puts the enforced policies back to the built-in default's behaviour for the next test. */
async function publishDefault() {
  const v = await save(DEFAULT, [], 'reset');
  await json(await setStatus(v, 'published'), 200);
}

describe('versions: save, check, shadow, publish, rollback', () => {
  test('with nothing published the list shows the built-in default as version 0', async () => {
    const list = await json<{ published: number; shadow: null; versions: { version: number; status: string }[] }>(
      await api.call('GET', '/api/admin/policies'),
      200,
    );
    expect(list.published).toBe(0);
    expect(list.versions.at(-1)).toMatchObject({ version: 0, status: 'built_in' });
    const zero = await json<{ text: string }>(await api.call('GET', '/api/admin/policies/0'), 200);
    expect(zero.text).toContain('@id("default")');
    const schema = await json<{ schema: string }>(await api.call('GET', '/api/admin/policies/schema'), 200);
    expect(schema.schema).toContain('namespace Errand');
    await json(await api.call('GET', '/api/admin/policies/999'), 404);
    expect((await json(await api.call('GET', '/api/admin/policies/latest'), 400)).error).toBe('invalid_request');
  });

  test('invalid Cedar is refused with 400 invalid_request naming the policy', async () => {
    const bad = `${DEFAULT}
@id("typo-attr")
forbid (principal, action == Errand::Action::"exchange", resource) when { principal.nmae == "x" };
`;
    const body = await json<{ error: string; error_description: string }>(
      await api.call('POST', '/api/admin/policies', { text: bad }),
      400,
    );
    expect(body.error).toBe('invalid_request');
    expect(body.error_description).toMatch(/typo-attr/);
    const syntax = await json<{ error: string }>(
      await api.call('POST', '/api/admin/policies', { text: 'permit (principal, action' }),
      400,
    );
    expect(syntax.error).toBe('invalid_request');
    // A malformed test is refused at the edge, with the field named.
    const test = await json<{ error_description: string }>(
      await api.call('POST', '/api/admin/policies', { text: DEFAULT, tests: [{ name: 'x', action: 'fly' }] }),
      400,
    );
    expect(test.error_description).toMatch(/^tests/);
  });

  test('check validates and runs tests without saving', async () => {
    const before = (await json<{ versions: unknown[] }>(await api.call('GET', '/api/admin/policies'), 200)).versions
      .length;
    const run = await json<{ valid: boolean; passed: number; failed: number; results: Record<string, unknown>[] }>(
      await api.call('POST', '/api/admin/policies/check', {
        text: forbidNotes('no-notes'),
        tests: [notesTest('notes are closed', 'deny'), notesTest('notes are open', 'allow')],
      }),
      200,
    );
    expect(run).toMatchObject({ valid: true, passed: 1, failed: 1 });
    expect(run.results[0]).toMatchObject({
      name: 'notes are closed',
      actual: 'deny',
      passed: true,
      policies: ['no-notes'],
    });
    expect(run.results[1]).toMatchObject({ name: 'notes are open', actual: 'deny', passed: false });
    const invalid = await json<{ valid: boolean; problems: { policy: string | null }[] }>(
      await api.call('POST', '/api/admin/policies/check', { text: 'forbid (principal, action, resource) when { 1 };' }),
      200,
    );
    expect(invalid.valid).toBe(false);
    expect(invalid.problems.length).toBeGreaterThan(0);
    const after = (await json<{ versions: unknown[] }>(await api.call('GET', '/api/admin/policies'), 200)).versions
      .length;
    expect(after).toBe(before);
  });

  test('publishing refuses a version whose tests fail, naming them; shadow does not', async () => {
    const v = await save(forbidNotes('no-notes'), [notesTest('notes stay open', 'allow')]);
    const refused = await json<{ error: string; error_description: string }>(await setStatus(v, 'published'), 400);
    expect(refused.error).toBe('invalid_request');
    expect(refused.error_description).toMatch(/"notes stay open" \(expected allow, got deny\)/);
    const shadowed = await json<{ status: string }>(await setStatus(v, 'shadow'), 200);
    expect(shadowed.status).toBe('shadow');
    const stopped = await json<{ status: string }>(await setStatus(v, 'draft'), 200);
    expect(stopped.status).toBe('draft');
    // Only a version in shadow goes back to draft.
    expect((await json(await setStatus(v, 'draft'), 409)).error).toBe('conflict');
    expect((await json(await setStatus(9999, 'published'), 404)).error).toBe('not_found');
    expect(
      (await json(await api.call('POST', `/api/admin/policies/${v}/status`, { status: 'retired' }), 400)).error,
    ).toBe('invalid_request');
  });

  test('publish, then roll back by publishing the older version; each change is audited', async () => {
    const first = await save(DEFAULT, [notesTest('open', 'allow')], 'first');
    const second = await save(forbidNotes('closed'), [notesTest('closed', 'deny')], 'second');
    await json(await setStatus(first, 'published'), 200);
    await json(await setStatus(second, 'published'), 200);
    let list = await json<{ published: number; versions: { version: number; status: string }[] }>(
      await api.call('GET', '/api/admin/policies'),
      200,
    );
    expect(list.published).toBe(second);
    expect(list.versions.find((v) => v.version === first)?.status).toBe('retired');
    expect(list.versions.some((v) => v.version === 0)).toBe(false);
    expect(list.versions[0]?.version).toBeGreaterThan(list.versions[1]?.version ?? 0);
    await json(await setStatus(first, 'published'), 200);
    list = await json(await api.call('GET', '/api/admin/policies'), 200);
    expect(list.published).toBe(first);
    expect(list.versions.find((v) => v.version === second)?.status).toBe('retired');
    const events = await tb.broker.deps.audit.query({ limit: 1000 });
    const types = events.map((e) => e.type);
    for (const t of ['policy.saved', 'policy.published', 'policy.shadowed', 'policy.unshadowed']) {
      expect(types).toContain(t);
    }
    const published = events.find((e) => e.type === 'policy.published');
    expect(published?.details).toMatchObject({ version: first, address: '127.0.0.1' });
  });
});

describe('what policies do to a real exchange at /token', () => {
  test('a published forbid refuses the exchange with access_denied naming the policy; the other resource still works', async () => {
    const { credential } = await delegate();
    const v = await save(forbidNotes('no-notes-for-agents'), [notesTest('closed', 'deny')]);
    await json(await setStatus(v, 'published'), 200);
    const refused = await json<{ error: string; error_description: string }>(await startTask(credential), 400);
    expect(refused.error).toBe('access_denied');
    expect(refused.error_description).toContain('"no-notes-for-agents"');
    expect(refused.error_description).toContain(`policy version ${v}`);
    const denied = await tb.broker.deps.audit.query({ type: 'exchange.denied', limit: 10 });
    expect(denied[0]).toMatchObject({ reason: 'policy_denied', clientId: agent.clientId, userId: world.user.id });
    expect(denied[0]?.details).toMatchObject({ policies: ['no-notes-for-agents'], policy_version: v });
    // The calendar is not named by the forbid.
    const calendar = await exchange(tb, world.as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: CALENDAR,
    });
    expect(calendar.access_token).toBeTruthy();
    // Rolling back to a permissive version lets it through again.
    await publishDefault();
    expect((await startTask(credential)).status).toBe(200);
  });

  test('the same forbid in shadow lets the exchange through and records what it would have denied', async () => {
    await publishDefault();
    const { credential } = await delegate();
    const v = await save(forbidNotes('shadow-no-notes'), []);
    await json(await setStatus(v, 'shadow'), 200);
    const res = await startTask(credential);
    expect(res.status, await res.clone().text()).toBe(200);
    // The audit write follows the decision without holding the exchange up.
    let decisions: { shadow: string; shadow_policies: string[]; principal: string; resource: string }[] = [];
    for (let i = 0; i < 50 && decisions.length === 0; i++) {
      ({ decisions } = await json(await api.call('GET', '/api/admin/policies/shadow-decisions'), 200));
      if (decisions.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(decisions[0]).toMatchObject({
      action: 'exchange',
      enforced: 'allow',
      shadow: 'deny',
      shadow_policies: ['shadow-no-notes'],
      principal: agent.clientId,
      resource: NOTES,
    });
    const events = await tb.broker.deps.audit.query({ type: 'policy.shadow_decision', limit: 10 });
    expect(events[0]).toMatchObject({ result: 'denied', userId: world.user.id, clientId: agent.clientId });
    await json(await setStatus(v, 'draft'), 200);
    const none = await json<{ version: null }>(await api.call('GET', '/api/admin/policies/shadow-decisions'), 200);
    expect(none.version).toBeNull();
  });

  test("a person's groups decide a policy; setting them is audited", async () => {
    await publishDefault();
    const { credential } = await delegate();
    const v = await save(
      `${DEFAULT}
@id("contractors-no-notes")
forbid (principal, action == Errand::Action::"exchange", resource == Errand::Resource::"${NOTES}")
  when { context.user in Errand::Group::"contractors" };
`,
    );
    await json(await setStatus(v, 'published'), 200);
    expect((await startTask(credential)).status).toBe(200);
    const set = await json<{ groups: string[] }>(
      await api.call('PUT', `/api/admin/users/${world.user.id}/groups`, { groups: ['contractors', 'staff', 'staff'] }),
      200,
    );
    expect(set.groups).toEqual(['contractors', 'staff']);
    const refused = await json<{ error: string; error_description: string }>(await startTask(credential), 400);
    expect(refused).toMatchObject({ error: 'access_denied' });
    expect(refused.error_description).toContain('"contractors-no-notes"');
    const [event] = await tb.broker.deps.audit.query({ type: 'user.groups_updated', limit: 1 });
    expect(event?.details).toMatchObject({
      target_user_id: world.user.id,
      source: 'local',
      groups: ['contractors', 'staff'],
      address: '127.0.0.1',
    });
    await json(await api.call('PUT', `/api/admin/users/${world.user.id}/groups`, { groups: [] }), 200);
    expect((await startTask(credential)).status).toBe(200);
    expect((await json(await api.call('PUT', '/api/admin/users/usr_nobody/groups', { groups: [] }), 404)).error).toBe(
      'not_found',
    );
    expect(
      (await json(await api.call('PUT', `/api/admin/users/${world.user.id}/groups`, { groups: ['a\nb'] }), 400)).error,
    ).toBe('invalid_request');
    await publishDefault();
  });
});

describe('the effective-access explorer', () => {
  test('what an agent can do for a person, and why; a draft version can be asked instead', async () => {
    await publishDefault();
    const { delegationId } = await delegate();
    const q = `agent_id=${agent.clientId}&user=${world.user.username}`;
    const view = await json<{
      version: number;
      resources: {
        url: string;
        actions: {
          action: string;
          delegations: { delegation_id: string }[];
          policy: { decision: string; policies: string[] };
          allowed: boolean;
        }[];
      }[];
    }>(await api.call('GET', `/api/admin/access/agent?${q}`), 200);
    const notes = view.resources.find((r) => r.url === NOTES);
    const exchangeRow = notes?.actions.find((a) => a.action === 'exchange');
    expect(exchangeRow?.delegations.map((d) => d.delegation_id)).toContain(delegationId);
    expect(exchangeRow).toMatchObject({ allowed: true, policy: { decision: 'allow', policies: ['default'] } });
    expect(notes?.actions.map((a) => a.action)).toEqual(['exchange', 'hand_off', 'ask_delegation']);
    // A hand-off needs a delegation that reaches below the agent: this one (max_depth 0) does not.
    const shallow = await tb.broker.deps.delegations.get(delegationId);
    expect(shallow?.maxDepth).toBe(0);
    expect(notes?.actions.find((a) => a.action === 'hand_off')).toMatchObject({ delegations: [], allowed: false });
    const deep = await delegateViaCiba(tb, world.as, agent, world.user, {
      scope: 'openid notes:read',
      resource: NOTES,
      max_depth: '1',
    });
    const again = await json<typeof view>(await api.call('GET', `/api/admin/access/agent?${q}`), 200);
    const handOff = again.resources.find((r) => r.url === NOTES)?.actions.find((a) => a.action === 'hand_off');
    expect(handOff?.delegations.map((d) => d.delegation_id)).toEqual([deep.delegationId]);
    expect(handOff?.allowed).toBe(true);

    const draft = await save(forbidNotes('draft-no-notes'), []);
    const asDraft = await json<typeof view>(
      await api.call('GET', `/api/admin/access/agent?${q}&version=${draft}`),
      200,
    );
    expect(asDraft.version).toBe(draft);
    const denied = asDraft.resources.find((r) => r.url === NOTES)?.actions.find((a) => a.action === 'exchange');
    expect(denied).toMatchObject({ allowed: false, policy: { decision: 'deny', policies: ['draft-no-notes'] } });
    const calendar = asDraft.resources.find((r) => r.url === CALENDAR)?.actions.find((a) => a.action === 'exchange');
    expect(calendar?.allowed).toBe(true);

    // Who can reach the notes: this agent, for this person, with the draft's verdict.
    const reach = await json<{
      holders: { agent_id: string; user_id: string; policy: { decision: string; policies: string[] } }[];
    }>(await api.call('GET', `/api/admin/access/resource?resource=${encodeURIComponent(NOTES)}&version=${draft}`), 200);
    const mine = reach.holders.find((h) => h.agent_id === agent.clientId && h.user_id === world.user.id);
    expect(mine?.policy).toEqual({ decision: 'deny', policies: ['draft-no-notes'], errors: [] });

    expect((await json(await api.call('GET', '/api/admin/access/agent?agent_id=nope&user=nope'), 404)).error).toBe(
      'not_found',
    );
    expect((await json(await api.call('GET', `/api/admin/access/agent?${q}&version=424242`), 404)).error).toBe(
      'not_found',
    );
    expect(
      (await json(await api.call('GET', '/api/admin/access/resource?resource=https://nowhere.test'), 404)).error,
    ).toBe('not_found');
    expect((await json(await api.call('GET', `/api/admin/access/agent?agent_id=${agent.clientId}`), 400)).error).toBe(
      'invalid_request',
    );
  });
});

describe('who may use it', () => {
  test('a signed-in person who is not an administrator is refused everywhere with 403', async () => {
    const person = await userApi(tb, world.user);
    for (const [method, path, body] of [
      ['GET', '/api/admin/policies'],
      ['GET', '/api/admin/policies/0'],
      ['GET', '/api/admin/policies/schema'],
      ['GET', '/api/admin/policies/shadow-decisions'],
      ['POST', '/api/admin/policies', { text: DEFAULT }],
      ['POST', '/api/admin/policies/check', { text: DEFAULT }],
      ['POST', '/api/admin/policies/1/status', { status: 'published' }],
      ['GET', `/api/admin/access/agent?agent_id=${agent.clientId}&user=${world.user.id}`],
      ['GET', `/api/admin/access/resource?resource=${encodeURIComponent(NOTES)}`],
      ['PUT', `/api/admin/users/${world.user.id}/groups`, { groups: ['admins'] }],
    ] as const) {
      const res = await person.call(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(((await res.json()) as { error: string }).error).toBe('forbidden');
    }
  });

  test('an administrator without the CSRF token cannot change anything; without a session nothing is shown', async () => {
    const noCsrf = (method: string, path: string, body: unknown) =>
      api.browser.fetch(`${tb.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const before = (await tb.broker.deps.policyStore.list()).length;
    for (const [method, path, body] of [
      ['POST', '/api/admin/policies', { text: DEFAULT }],
      ['POST', '/api/admin/policies/1/status', { status: 'published' }],
      ['PUT', `/api/admin/users/${world.user.id}/groups`, { groups: ['x'] }],
    ] as const) {
      const res = await noCsrf(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
    }
    expect((await tb.broker.deps.policyStore.list()).length).toBe(before);
    expect((await fetch(`${tb.url}/api/admin/policies`)).status).toBe(401);
  });
});
