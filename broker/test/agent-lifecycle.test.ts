import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { z } from 'zod';
import { issuedTokens } from '../../db/schema/index.js';
import { API_OPERATIONS, type ApiOperation } from '../http/routes/api-operations.js';
import {
  type Api,
  delegateViaCiba,
  exchange,
  exchangeRaw,
  introspector,
  TT_ACCESS,
  TT_JWT,
  userApi,
} from './delegation-fixtures.js';
import { addAgent, addResource, adminApi, createUser, discover, startBroker } from './fixtures.js';

/**
 * README "Agent lifecycle: owners, certification and right-sizing": usage (granted vs used), owner
 * lapse and suspension, certification campaigns through the JSON API, and right-sizing.
 */

const NOTES = 'https://notes.example.test/mcp';
const CAL = 'https://calendar.example.test/api';
const GRACE = 120;

type Person = Awaited<ReturnType<typeof createUser>>;
// biome-ignore lint/suspicious/noExplicitAny: JSON answers read field by field in assertions
type Body = any;

async function world(env: Record<string, string> = {}) {
  const tb = await startBroker({ ERRAND_OWNER_GRACE_PERIOD: String(GRACE), ...env });
  const api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  await addResource(api, CAL, ['calendar:read']);
  const as = await discover(tb);
  const introspect = await introspector(tb, api, [NOTES, CAL]);
  return { tb, api, as, introspect };
}

type World = Awaited<ReturnType<typeof world>>;

/** An agent owned by `owner`, delegated notes:read notes:write + calendar:read by `user`, with one notes:read task. */
async function busyAgent(w: World, owner: Person, user: Person, name = 'busy agent') {
  const agent = await addAgent(w.api, { name, owner_id: owner.id, grant_types: undefined });
  const { credential, delegationId } = await delegateViaCiba(w.tb, w.as, agent, user, {
    scope: 'openid notes:read notes:write calendar:read',
    resource: [NOTES, CAL],
  });
  const task = await exchange(w.tb, w.as, agent, {
    subject_token: credential,
    subject_token_type: TT_JWT,
    resource: NOTES,
    scope: 'notes:read',
  });
  return { agent, credential, delegationId, task };
}

async function auditTypes(api: Api, type: string, clientId: string) {
  const res = await api.call('GET', `/api/admin/audit?type=${type}&client_id=${clientId}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: { type: string; reason: string | null; details: Record<string, unknown> }[] })
    .events;
}

describe('usage and right-sizing', () => {
  let w: World;
  beforeAll(async () => {
    w = await world();
  });
  afterAll(() => w.tb.close());

  test('granted vs used per delegation, the reduction suggested and the Cedar rule for unused resources', async () => {
    const owner = await createUser(w.tb);
    const user = await createUser(w.tb);
    const { agent, delegationId } = await busyAgent(w, owner, user);
    const res = await w.api.call('GET', `/api/admin/clients/${agent.clientId}/usage?days=30`);
    expect(res.status).toBe(200);
    const usage = (await res.json()) as Record<string, Body>;
    expect(usage.has_unused).toBe(true);
    expect(usage.resources).toEqual({ granted: [CAL, NOTES], used: [NOTES], unused: [CAL] });
    const [d] = usage.delegations;
    expect(d.delegation_id).toBe(delegationId);
    expect(d.resources[NOTES]).toEqual({
      granted: ['notes:read', 'notes:write'],
      used: ['notes:read'],
      unused: ['notes:write'],
    });
    expect(d.resources[CAL]).toEqual({ granted: ['calendar:read'], used: [], unused: ['calendar:read'] });
    expect(d.reduce_to).toEqual({ [NOTES]: ['notes:read'] });
    expect(usage.last_used_at).toBeGreaterThan(0);
    expect(usage.suggested_policy).toContain(
      `forbid (principal == Errand::Agent::"${agent.clientId}", action, resource == Errand::Resource::"${CAL}");`,
    );
  });

  test('MCP tools granted vs used; reducing to what was used keeps only the tools used', async () => {
    const owner = await createUser(w.tb);
    const user = await createUser(w.tb);
    const agent = await addAgent(w.api, { name: 'tooled', owner_id: owner.id, grant_types: undefined });
    const tools = { type: 'mcp_tool', locations: [NOTES], actions: ['list_notes', 'read_note'] };
    const { credential, delegationId } = await delegateViaCiba(w.tb, w.as, agent, user, {
      scope: 'openid notes:read',
      resource: NOTES,
      authorization_details: JSON.stringify([tools]),
    });
    const task = await exchange(w.tb, w.as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      authorization_details: JSON.stringify([{ ...tools, actions: ['list_notes'] }]),
    });
    const usage = (await (await w.api.call('GET', `/api/admin/clients/${agent.clientId}/usage`)).json()) as Body;
    expect(usage.delegations[0].tools[NOTES]).toEqual({
      granted: ['list_notes', 'read_note'],
      used: ['list_notes'],
      unused: ['read_note'],
    });
    expect(usage.has_unused).toBe(true);
    const res = await w.api.call('POST', `/api/admin/delegations/${delegationId}/reduce`, { to: 'used' });
    expect(res.status).toBe(200);
    const d = (await (await userApi(w.tb, user)).call('GET', `/api/me/delegations/${delegationId}`)).json();
    expect(await d).toMatchObject({ authorization_details: [{ ...tools, actions: ['list_notes'] }] });
    expect(await w.introspect(task.access_token)).toMatchObject({ active: false });
    const [event] = await auditTypes(w.api, 'delegation.reduced', agent.clientId);
    expect(event?.details.dropped_tools).toEqual([`${NOTES}#read_note`]);
  });

  test("a sub-agent's tokens under the delegation count as its use; the agent's own scope only its own", async () => {
    const owner = await createUser(w.tb);
    const user = await createUser(w.tb);
    const a = await addAgent(w.api, { name: 'lead', owner_id: owner.id, grant_types: undefined });
    const b = await addAgent(w.api, { name: 'helper', owner_id: owner.id, grant_types: undefined });
    const { credential, delegationId } = await delegateViaCiba(w.tb, w.as, a, user, {
      scope: 'openid notes:read notes:write',
      resource: NOTES,
      max_depth: '1',
    });
    const lead = await exchange(w.tb, w.as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      scope: 'notes:read',
    });
    await exchange(w.tb, w.as, b, { subject_token: lead.access_token, subject_token_type: TT_ACCESS });
    // Only the helper's token row is left in the window (setup: the lead's own row is gone).
    await w.tb.broker.deps.db.q.delete(issuedTokens).where(eq(issuedTokens.clientId, a.clientId));
    const usage = (await (await w.api.call('GET', `/api/admin/clients/${a.clientId}/usage`)).json()) as Body;
    expect(usage.delegations[0].resources[NOTES].used).toEqual(['notes:read']);
    expect(usage.resources.used).toEqual([NOTES]);
    const res = await w.api.call('POST', `/api/admin/delegations/${delegationId}/reduce`, { to: 'used' });
    expect(await res.json()).toEqual({ delegation_id: delegationId, grants: { [NOTES]: ['notes:read'] } });
  });

  test('bad days, an unknown agent and a non-administrator are refused plainly', async () => {
    const agent = await addAgent(w.api, { name: 'idle' });
    const bad = await w.api.call('GET', `/api/admin/clients/${agent.clientId}/usage?days=0`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringMatching(/^days/),
    });
    expect((await w.api.call('GET', '/api/admin/clients/cli_nope/usage')).status).toBe(404);
    const person = await userApi(w.tb, await createUser(w.tb));
    const refused = await person.call('GET', `/api/admin/clients/${agent.clientId}/usage`);
    expect(refused.status).toBe(403);
  });

  test("the delegation's person reduces it to what was used: dropped grants stop working and its tasks end", async () => {
    const owner = await createUser(w.tb);
    const user = await createUser(w.tb);
    const { agent, credential, delegationId, task } = await busyAgent(w, owner, user);
    const me = await userApi(w.tb, user);
    const other = await userApi(w.tb, await createUser(w.tb));

    // Someone else's delegation is not found; no CSRF token is refused; a widening or empty body is a clear 400.
    expect((await other.call('POST', `/api/me/delegations/${delegationId}/reduce`, { to: 'used' })).status).toBe(404);
    const noCsrf = await me.browser.fetch(`${w.tb.url}/api/me/delegations/${delegationId}/reduce`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'used' }),
    });
    expect(noCsrf.status).toBe(403);
    const empty = await me.call('POST', `/api/me/delegations/${delegationId}/reduce`, {});
    expect(empty.status).toBe(400);
    expect(await empty.json()).toMatchObject({ error: 'invalid_request' });
    const widen = await me.call('POST', `/api/me/delegations/${delegationId}/reduce`, {
      grants: { [NOTES]: ['notes:read', 'notes:admin'] },
    });
    expect(widen.status).toBe(400);
    expect(await widen.json()).toMatchObject({ error_description: expect.stringContaining('notes:admin') });
    expect(await w.introspect(task.access_token)).toMatchObject({ active: true });

    const res = await me.call('POST', `/api/me/delegations/${delegationId}/reduce`, { to: 'used' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ delegation_id: delegationId, grants: { [NOTES]: ['notes:read'] } });
    expect(await w.introspect(task.access_token)).toMatchObject({ active: false });
    const calendar = await exchangeRaw(w.tb, w.as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: CAL,
      scope: 'calendar:read',
    });
    expect(calendar.status).toBe(400);
    // What was kept still works.
    const again = await exchange(w.tb, w.as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      scope: 'notes:read',
    });
    expect(await w.introspect(again.access_token)).toMatchObject({ active: true });
    const [event] = await auditTypes(w.api, 'delegation.reduced', agent.clientId);
    expect(event?.details.dropped).toEqual({ [NOTES]: ['notes:write'], [CAL]: ['calendar:read'] });
  });
});

describe('right-sizing in the console', () => {
  let w: World;
  beforeAll(async () => {
    w = await world();
  });
  afterAll(() => w.tb.close());

  test("the person's Reduce button narrows their delegation; another person and a missing CSRF token are refused", async () => {
    const owner = await createUser(w.tb);
    const user = await createUser(w.tb);
    const { delegationId, task } = await busyAgent(w, owner, user);
    const me = await userApi(w.tb, user);
    const other = await userApi(w.tb, await createUser(w.tb));
    const url = `${w.tb.url}/my/delegations/${delegationId}/reduce`;
    expect((await me.browser.postForm(url, {})).status).toBe(403);
    expect((await other.browser.postForm(url, { _csrf: other.csrf })).status).toBe(404);
    expect(await w.introspect(task.access_token)).toMatchObject({ active: true });
    const page = await me.browser.fetch(`${w.tb.url}/my/delegations/${delegationId}`);
    expect(await page.text()).toContain('Reduce to what the agent used');
    const res = await me.browser.postForm(url, { _csrf: me.csrf });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/my/delegations?done=reduced');
    const d = (await (await me.call('GET', `/api/me/delegations/${delegationId}`)).json()) as Body;
    expect(d.scopes).toEqual({ [NOTES]: ['notes:read'] });
    expect(await w.introspect(task.access_token)).toMatchObject({ active: false });
    // The administrator's button on the agent's Usage page, for a delegation already reduced: nothing to drop.
    const again = await w.api.browser.postForm(`${w.tb.url}/admin/delegations/${delegationId}/reduce`, {
      _csrf: w.api.csrf,
      days: '30',
    });
    expect(again.status).toBe(303);
  });
});

describe('owner lifecycle', () => {
  let w: World;
  beforeAll(async () => {
    w = await world();
  });
  afterAll(() => w.tb.close());

  const view = async (id: string) => (await (await w.api.call('GET', `/api/admin/clients/${id}`)).json()) as Body;

  test('an agent whose owner is disabled is flagged, then suspended after the grace period: its tasks end', async () => {
    const owner = await createUser(w.tb);
    const user = await createUser(w.tb);
    const { agent, task } = await busyAgent(w, owner, user);
    expect(await view(agent.clientId)).toMatchObject({ owner_status: 'active', owner_lapsed_at: null });

    const disabled = await w.api.call('PATCH', `/api/admin/users/${owner.id}`, { status: 'disabled' });
    expect(disabled.status).toBe(200);
    expect(await view(agent.clientId)).toMatchObject({ owner_status: 'disabled', status: 'active' });
    await w.tb.broker.maintain();
    const flagged = await view(agent.clientId);
    expect(flagged.owner_lapsed_at).toBeGreaterThan(0);
    expect(flagged.status).toBe('active');

    // Within the grace period nothing happens.
    w.tb.clock.advance(GRACE - 30);
    await w.tb.broker.maintain();
    expect((await view(agent.clientId)).status).toBe('active');
    expect(await w.introspect(task.access_token)).toMatchObject({ active: true });

    w.tb.clock.advance(31);
    await w.tb.broker.maintain();
    expect(await view(agent.clientId)).toMatchObject({ status: 'disabled', suspended_reason: 'owner_lapsed' });
    expect(await w.introspect(task.access_token)).toMatchObject({ active: false });
    const [event] = await auditTypes(w.api, 'client.suspended', agent.clientId);
    expect(event).toMatchObject({ reason: 'owner_lapsed', details: { owner_status: 'disabled' } });
  });

  test('no owner is flagged "missing"; assigning an owner clears the flag and the agent is not suspended', async () => {
    const agent = await addAgent(w.api, { name: 'orphan' });
    expect((await w.api.call('PATCH', `/api/admin/clients/${agent.clientId}`, { owner_id: null })).status).toBe(200);
    expect(await view(agent.clientId)).toMatchObject({ owner_status: 'missing' });
    w.tb.clock.advance(60);
    await w.tb.broker.maintain();
    expect((await view(agent.clientId)).owner_lapsed_at).toBeGreaterThan(0);

    const owner = await createUser(w.tb);
    const res = await w.api.call('PATCH', `/api/admin/clients/${agent.clientId}`, { owner_id: owner.id });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ owner_status: 'active', owner_lapsed_at: null });
    w.tb.clock.advance(GRACE + 60);
    await w.tb.broker.maintain();
    expect(await view(agent.clientId)).toMatchObject({
      status: 'active',
      owner_status: 'active',
      owner_lapsed_at: null,
    });
  });

  test("the console's Assign clears the flag too, and is audited as client.updated", async () => {
    const agent = await addAgent(w.api, { name: 'console-owned' });
    await w.tb.broker.deps.clients.update(agent.clientId, { ownerId: null });
    expect(await view(agent.clientId)).toMatchObject({ owner_status: 'missing' });
    const owner = await createUser(w.tb);
    const url = `${w.tb.url}/admin/agents/${agent.clientId}/owner`;
    expect((await w.api.browser.postForm(url, { owner_id: owner.id })).status).toBe(403);
    const res = await w.api.browser.postForm(url, { _csrf: w.api.csrf, owner_id: owner.id });
    expect(res.status).toBe(303);
    expect(await view(agent.clientId)).toMatchObject({ owner_status: 'active', owner_id: owner.id });
    const [event] = await auditTypes(w.api, 'client.updated', agent.clientId);
    expect(event?.details).toMatchObject({ fields: 'owner_id' });
    const page = await (await w.api.browser.fetch(`${w.tb.url}/admin/agents`)).text();
    expect(page).toContain(`/admin/clients/${agent.clientId}/usage`);
  });

  test('an owner id naming no account is "deleted"', async () => {
    const agent = await addAgent(w.api, { name: 'ghost-owned' });
    await w.tb.broker.deps.clients.update(agent.clientId, { ownerId: 'usr_gone' });
    expect(await view(agent.clientId)).toMatchObject({ owner_status: 'deleted' });
    const list = (await (await w.api.call('GET', '/api/admin/clients')).json()) as { clients: Body[] };
    expect(list.clients.find((c) => c.client_id === agent.clientId)).toMatchObject({ owner_status: 'deleted' });
  });
});

describe('certification campaigns (JSON API)', () => {
  let w: World;
  let alice: Person;
  let bob: Person;
  let user: Person;
  let kept: Awaited<ReturnType<typeof busyAgent>>;
  let reduced: Awaited<ReturnType<typeof busyAgent>>;
  let lapsed: Awaited<ReturnType<typeof busyAgent>>;
  let campaignId: string;
  const itemOf = async (owner: Person, agentId: string) => {
    const me = await userApi(w.tb, owner);
    const { items } = (await (await me.call('GET', '/api/me/certifications')).json()) as {
      items: { item_id: string; agent_id: string; snapshot: Body }[];
    };
    return { me, items, item: items.find((i) => i.agent_id === agentId)! };
  };

  beforeAll(async () => {
    w = await world();
    alice = await createUser(w.tb);
    bob = await createUser(w.tb);
    user = await createUser(w.tb);
    kept = await busyAgent(w, alice, user, 'kept');
    reduced = await busyAgent(w, alice, user, 'reduced');
    lapsed = await busyAgent(w, bob, user, 'lapsed');
  });
  afterAll(() => w.tb.close());

  test('bad input, a non-administrator and a missing CSRF token cannot open a campaign', async () => {
    const deadline = w.tb.clock.now() + 3600;
    const past = await w.api.call('POST', '/api/admin/certification-campaigns', { name: 'q', deadline: 1 });
    expect(past.status).toBe(400);
    expect(await past.json()).toEqual({
      error: 'invalid_request',
      error_description: 'deadline: must be in the future',
    });
    const noName = await w.api.call('POST', '/api/admin/certification-campaigns', { deadline });
    expect(noName.status).toBe(400);
    expect(await noName.json()).toMatchObject({ error_description: expect.stringMatching(/^name/) });
    const badDays = await w.api.call('POST', '/api/admin/certification-campaigns', {
      name: 'q',
      deadline,
      usage_days: 0,
    });
    expect(badDays.status).toBe(400);
    const person = await userApi(w.tb, alice);
    expect((await person.call('POST', '/api/admin/certification-campaigns', { name: 'q', deadline })).status).toBe(403);
    const noCsrf = await w.api.browser.fetch(`${w.tb.url}/api/admin/certification-campaigns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'q', deadline }),
    });
    expect(noCsrf.status).toBe(403);
    expect(((await (await w.api.call('GET', '/api/admin/certification-campaigns')).json()) as Body).campaigns).toEqual(
      [],
    );
  });

  test('an administrator opens a campaign: one item per active agent with its snapshot', async () => {
    const res = await w.api.call('POST', '/api/admin/certification-campaigns', {
      name: 'Q4 review',
      deadline: w.tb.clock.now() + 7 * 86_400,
      usage_days: 30,
    });
    expect(res.status).toBe(201);
    const opened = (await res.json()) as { campaign_id: string; status: string };
    expect(opened.status).toBe('open');
    campaignId = opened.campaign_id;
    const { items } = (await (await w.api.call('GET', `/api/admin/certification-campaigns/${campaignId}`)).json()) as {
      items: Body[];
    };
    const item = items.find((i) => i.agent_id === kept.agent.clientId);
    expect(item).toMatchObject({ owner_id: alice.id, decision: null });
    expect(item.snapshot).toMatchObject({
      agent_name: 'kept',
      owner_username: alice.username,
      owner_status: 'active',
      credential_kind: 'private_key_jwt',
      static_secret: false,
    });
    expect(item.snapshot.usage.delegations[0].resources[NOTES].unused).toEqual(['notes:write']);
    const audit = await w.api.call('GET', '/api/admin/audit?type=campaign.opened');
    const [event] = ((await audit.json()) as { events: { details: Record<string, unknown> }[] }).events;
    expect(event?.details).toMatchObject({ campaign_id: campaignId, name: 'Q4 review' });
  });

  test("an owner sees only their agents and cannot attest another owner's", async () => {
    const { items, item } = await itemOf(alice, kept.agent.clientId);
    expect(items.map((i) => i.agent_id).sort()).toEqual([kept.agent.clientId, reduced.agent.clientId].sort());
    expect(item.snapshot.agent_name).toBe('kept');
    const bobs = await itemOf(bob, lapsed.agent.clientId);
    const refused = await bobs.me.call('POST', `/api/me/certifications/${item.item_id}/attest`, { decision: 'keep' });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: 'forbidden' });
    const bad = await bobs.me.call('POST', `/api/me/certifications/${bobs.item.item_id}/attest`, { decision: 'maybe' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringMatching(/^decision/),
    });
    const noCsrf = await bobs.me.browser.fetch(`${w.tb.url}/api/me/certifications/${bobs.item.item_id}/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'keep' }),
    });
    expect(noCsrf.status).toBe(403);
  });

  test('keep records the attestation; reduce narrows to what was used and ends the tasks', async () => {
    const k = await itemOf(alice, kept.agent.clientId);
    const res = await k.me.call('POST', `/api/me/certifications/${k.item.item_id}/attest`, { decision: 'keep' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ decision: 'keep', decided_by: alice.id });
    const again = await k.me.call('POST', `/api/me/certifications/${k.item.item_id}/attest`, { decision: 'remove' });
    expect(again.status).toBe(409);

    const r = await itemOf(alice, reduced.agent.clientId);
    const red = await r.me.call('POST', `/api/me/certifications/${r.item.item_id}/attest`, { decision: 'reduce' });
    expect(red.status).toBe(200);
    expect(await red.json()).toMatchObject({
      decision: 'reduce',
      outcome: { kept: { [reduced.delegationId]: { [NOTES]: ['notes:read'] } } },
    });
    expect(await w.introspect(reduced.task.access_token)).toMatchObject({ active: false });
    expect(await w.introspect(kept.task.access_token)).toMatchObject({ active: true });
    const [event] = await auditTypes(w.api, 'certification.attested', kept.agent.clientId);
    expect(event?.details).toMatchObject({ campaign_id: campaignId, decision: 'keep' });
  });

  test('closing lapses what was not attested: the agent is suspended and its tasks end; the export says so', async () => {
    expect(await w.introspect(lapsed.task.access_token)).toMatchObject({ active: true });
    const person = await userApi(w.tb, alice);
    expect((await person.call('POST', `/api/admin/certification-campaigns/${campaignId}/close`)).status).toBe(403);
    const res = await w.api.call('POST', `/api/admin/certification-campaigns/${campaignId}/close`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'closed', lapsed: 1 });
    expect(await w.introspect(lapsed.task.access_token)).toMatchObject({ active: false });
    const client = (await (await w.api.call('GET', `/api/admin/clients/${lapsed.agent.clientId}`)).json()) as Body;
    expect(client).toMatchObject({ status: 'disabled', suspended_reason: 'certification_lapsed' });
    expect(await w.introspect(kept.task.access_token)).toMatchObject({ active: true });
    expect(await auditTypes(w.api, 'certification.lapsed', lapsed.agent.clientId)).toHaveLength(1);
    expect((await w.api.call('POST', `/api/admin/certification-campaigns/${campaignId}/close`)).status).toBe(409);

    const json = (await (
      await w.api.call('GET', `/api/admin/certification-campaigns/${campaignId}/export?format=json`)
    ).json()) as { items: Body[] };
    expect(json.items.find((i) => i.agent_id === lapsed.agent.clientId)).toMatchObject({
      decision: 'lapsed',
      owner_username: bob.username,
    });
    const csv = await w.api.call('GET', `/api/admin/certification-campaigns/${campaignId}/export?format=csv`);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (await csv.text()).trim().split('\r\n');
    expect(lines[0]).toMatch(/^campaign_id,campaign_name,item_id,agent_id/);
    expect(lines.some((l) => l.includes(kept.agent.clientId) && l.includes('"keep"'))).toBe(true);
    const bad = await w.api.call('GET', `/api/admin/certification-campaigns/${campaignId}/export?format=xml`);
    expect(bad.status).toBe(400);
    const audit = await w.api.call('GET', '/api/admin/audit?type=campaign.closed');
    expect(((await audit.json()) as { events: unknown[] }).events).toHaveLength(1);
  });

  test('the deadline closes a campaign at maintenance, and the schedule opens the next one', async () => {
    const tb = await startBroker({ ERRAND_CERTIFICATION_SCHEDULE_DAYS: '30' });
    try {
      let api = await adminApi(tb);
      const owner = await createUser(tb);
      const agent = await addAgent(api, { name: 'scheduled', owner_id: owner.id });
      await tb.broker.maintain();
      const list = async () =>
        ((await (await api.call('GET', '/api/admin/certification-campaigns')).json()) as { campaigns: Body[] })
          .campaigns;
      const [first] = await list();
      expect(first).toMatchObject({ status: 'open', opened_by: 'schedule', usage_days: 30 });
      tb.clock.advance(14 * 86_400 + 1);
      await tb.broker.maintain();
      api = await adminApi(tb); // the session from two weeks ago has expired
      expect((await list()).find((c) => c.campaign_id === first.campaign_id)).toMatchObject({ status: 'closed' });
      const client = (await (await api.call('GET', `/api/admin/clients/${agent.clientId}`)).json()) as Body;
      expect(client).toMatchObject({ status: 'disabled', suspended_reason: 'certification_lapsed' });
      tb.clock.advance(16 * 86_400);
      await tb.broker.maintain();
      api = await adminApi(tb);
      expect(await list()).toHaveLength(2);
    } finally {
      await tb.close();
    }
  });
});

describe('certification console forms', () => {
  let w: World;
  beforeAll(async () => {
    w = await world();
  });
  afterAll(() => w.tb.close());

  test("CSRF on every form; another owner's item, a non-administrator and bad input are refused", async () => {
    const alice = await createUser(w.tb);
    const bob = await createUser(w.tb);
    await addAgent(w.api, { name: 'alice agent', owner_id: alice.id });
    const opened = await w.api.call('POST', '/api/admin/certification-campaigns', {
      name: 'console',
      deadline: w.tb.clock.now() + 3600,
    });
    const { campaign_id: campaignId } = (await opened.json()) as { campaign_id: string };
    const a = await userApi(w.tb, alice);
    const b = await userApi(w.tb, bob);
    const [item] = ((await (await a.call('GET', '/api/me/certifications')).json()) as { items: { item_id: string }[] })
      .items;
    const attest = `${w.tb.url}/my/certifications/${item!.item_id}/attest`;

    expect((await a.browser.postForm(attest, { decision: 'keep' })).status).toBe(403);
    expect((await b.browser.postForm(attest, { _csrf: b.csrf, decision: 'keep' })).status).toBe(403);
    const bad = await a.browser.postForm(attest, { _csrf: a.csrf, decision: 'later' });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('decision:');
    expect((await b.browser.postForm(`${w.tb.url}/admin/certifications`, { _csrf: b.csrf, name: 'x' })).status).toBe(
      403,
    );
    const close = `${w.tb.url}/admin/certifications/${campaignId}/close`;
    expect((await w.api.browser.postForm(close, {})).status).toBe(403);
    const noDeadline = await w.api.browser.postForm(`${w.tb.url}/admin/certifications`, {
      _csrf: w.api.csrf,
      name: 'x',
      deadline_days: '0',
      usage_days: '30',
    });
    expect(noDeadline.status).toBe(400);
    expect(await noDeadline.text()).toContain('deadline');

    // Still undecided after all of that; the owner's form with its token works.
    const ok = await a.browser.postForm(attest, { _csrf: a.csrf, decision: 'keep' });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/my/certifications?done=keep');
  });
});

describe('the lifecycle answers match the OpenAPI document', () => {
  let w: World;
  beforeAll(async () => {
    w = await world();
  });
  afterAll(() => w.tb.close());

  /** Parses a response with its operation's response schema (strict: no undocumented field). */
  async function conforms(method: ApiOperation['method'], path: string, res: Response) {
    const o = API_OPERATIONS.find(
      (x) => x.method === method && new RegExp(`^${x.path.replace(/:\w+/g, '[^/]+')}$`).test(path.split('?')[0]!),
    );
    expect(o, `${method} ${path} is described`).toBeDefined();
    expect(res.status, `${method} ${path}: ${await res.clone().text()}`).toBe(o!.status ?? 200);
    const parsed = (o!.response as z.ZodType).safeParse(await res.json());
    expect(parsed.success, `${method} ${path}: ${parsed.success ? '' : JSON.stringify(parsed.error.issues)}`).toBe(
      true,
    );
  }

  test('campaigns, items, usage, reduction and export', async () => {
    const owner = await createUser(w.tb);
    const user = await createUser(w.tb);
    const one = await busyAgent(w, owner, user, 'one');
    const two = await busyAgent(w, owner, user, 'two');
    const call = async (method: ApiOperation['method'], path: string, body?: unknown) => {
      const res = await w.api.call(method, path, body);
      await conforms(method, path, res.clone());
      return res.json() as Promise<Body>;
    };
    await call('GET', `/api/admin/clients/${one.agent.clientId}`);
    await call('GET', `/api/admin/clients/${one.agent.clientId}/usage?days=7`);
    const campaign = await call('POST', '/api/admin/certification-campaigns', {
      name: 'conform',
      deadline: w.tb.clock.now() + 3600,
    });
    await call('GET', '/api/admin/certification-campaigns');
    const me = await userApi(w.tb, owner);
    const mine = await me.call('GET', '/api/me/certifications');
    await conforms('GET', '/api/me/certifications', mine.clone());
    const { items } = (await mine.json()) as { items: { item_id: string; agent_id: string }[] };
    const item = items.find((i) => i.agent_id === one.agent.clientId)!;
    const attest = `/api/me/certifications/${item.item_id}/attest`;
    await conforms('POST', attest, await me.call('POST', attest, { decision: 'reduce' }));
    const reduce = `/api/admin/delegations/${two.delegationId}/reduce`;
    await call('POST', reduce, { grants: { [NOTES]: ['notes:read'] } });
    const mineReduce = `/api/me/delegations/${two.delegationId}/reduce`;
    await conforms('POST', mineReduce, await (await userApi(w.tb, user)).call('POST', mineReduce, { to: 'used' }));
    await call('GET', `/api/admin/certification-campaigns/${campaign.campaign_id}`);
    await call('POST', `/api/admin/certification-campaigns/${campaign.campaign_id}/close`);
    await call('GET', `/api/admin/certification-campaigns/${campaign.campaign_id}/export`);
    await call('GET', `/api/admin/clients/${two.agent.clientId}`);
  });
});
