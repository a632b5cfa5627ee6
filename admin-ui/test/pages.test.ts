import { eq } from 'drizzle-orm';
import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  agentClient,
  delegateViaCiba,
  delegationWorld,
  exchange,
  exchangeRaw,
  TT_JWT,
} from '../../broker/test/delegation-fixtures.js';
import {
  addAgent,
  adminApi,
  Browser,
  createUser,
  hiddenInput,
  insecure,
  startBroker,
  type TestBroker,
} from '../../broker/test/fixtures.js';
import { clients } from '../../db/schema/index.js';

const NOTES = 'https://notes.example.test/mcp';
let tb: TestBroker;
beforeAll(async () => {
  tb = await startBroker({ ERRAND_UNUSED_AGENT_DAYS: '10' });
});
afterAll(() => tb.close());

async function signedIn(user: { username: string; password: string }) {
  const browser = new Browser();
  const page = await browser.fetch(`${tb.url}/signin`);
  const res = await browser.postForm(`${tb.url}/signin`, {
    username: user.username,
    password: user.password,
    _csrf: hiddenInput(await page.text(), '_csrf'),
    next: '/admin',
  });
  expect(res.status).toBe(303);
  const home = await (await browser.fetch(`${tb.url}/admin`)).text();
  return { browser, csrf: hiddenInput(home, '_csrf') };
}

describe('admin pages', () => {
  test('the inventory flags static secrets and highlights agents unused for the configured days', async () => {
    const api = await adminApi(tb);
    const secretAgent = await api.call('POST', '/api/admin/clients', {
      kind: 'agent',
      name: 'legacy bot',
      token_endpoint_auth_method: 'client_secret_basic',
      allow_static_secret: true,
      grant_types: ['client_credentials'],
    });
    const { client_id: legacyId } = (await secretAgent.json()) as { client_id: string };
    const fresh = await addAgent(api, { name: 'fresh bot' });
    // Make the legacy bot look old and unused.
    await tb.broker.deps.db.q
      .update(clients)
      .set({ createdAt: tb.clock.now() - 11 * 86_400 })
      .where(eq(clients.id, legacyId));
    const { browser } = await signedIn(api.admin);
    const html = await (await browser.fetch(`${tb.url}/admin/agents`)).text();
    const row = (id: string) => new RegExp(`<tr[^>]*data-client-id="${id}"[^>]*>([\\s\\S]*?)</tr>`).exec(html);
    expect(row(legacyId)?.[0]).toMatch(/class="stale"/);
    expect(row(legacyId)?.[1]).toContain('static secret');
    expect(row(legacyId)?.[1]).toContain('unused');
    expect(row(fresh.clientId)?.[0]).not.toMatch(/class="stale"/);
    expect(row(fresh.clientId)?.[1]).not.toContain('static secret');
  });

  test('state-changing forms without the CSRF token are refused and change nothing', async () => {
    const api = await adminApi(tb);
    const agent = await addAgent(api, { name: 'csrf target' });
    const { browser } = await signedIn(api.admin);
    const res = await browser.postForm(`${tb.url}/admin/agents/${agent.clientId}/status`, {
      status: 'disabled',
      _csrf: 'forged',
    });
    expect(res.status).toBe(403);
    expect((await tb.broker.deps.clients.get(agent.clientId))?.status).toBe('active');
  });

  test('owner assignment, people and key rotation work from their pages', async () => {
    const api = await adminApi(tb);
    const agent = await addAgent(api, { name: 'ownerless' });
    const person = await createUser(tb);
    const { browser, csrf } = await signedIn(api.admin);
    expect(
      (await browser.postForm(`${tb.url}/admin/agents/${agent.clientId}/owner`, { owner_id: person.id, _csrf: csrf }))
        .status,
    ).toBe(303);
    expect((await tb.broker.deps.clients.get(agent.clientId))?.ownerId).toBe(person.id);

    const added = await browser.postForm(`${tb.url}/admin/users`, {
      username: 'newcomer',
      password: 'long-enough-pass',
      role: 'user',
      _csrf: csrf,
    });
    expect(added.status).toBe(303);
    expect(await tb.broker.deps.users.findByUsername('newcomer')).not.toBeNull();
    const weak = await browser.postForm(`${tb.url}/admin/users`, {
      username: 'weak',
      password: 'short',
      role: 'user',
      _csrf: csrf,
    });
    expect(weak.status).toBe(400);
    expect(await weak.text()).toContain('at least 12 characters');

    const before = tb.broker.deps.keys.describe().length;
    expect((await browser.postForm(`${tb.url}/admin/keys/rotate`, { _csrf: csrf })).status).toBe(303);
    expect(tb.broker.deps.keys.describe().length).toBe(before + 1);
    expect(await (await browser.fetch(`${tb.url}/admin/keys`)).text()).toContain('next');
  });

  test('the audit log filters and exports as JSONL and CSV', async () => {
    const { api, agents, user, as } = await delegationWorld(tb, {
      agents: 1,
      resources: { 'https://audit.example.test/api': ['a:read'] },
    });
    const agent = agents[0]!;
    const { credential } = await delegateViaCiba(tb, as, agent, user, {
      scope: 'openid a:read',
      resource: 'https://audit.example.test/api',
    });
    const token = await exchange(tb, as, agent, { subject_token: credential, subject_token_type: TT_JWT });
    const { browser } = await signedIn(api.admin);
    const page = await (await browser.fetch(`${tb.url}/admin/audit?task=${token.task_id}`)).text();
    expect(page).toContain('token.exchanged');
    expect(page).toContain('data-event-type="token.exchanged"');
    expect(page).not.toContain('data-event-type="delegation.approved"'); // filtered to the task

    const jsonl = await browser.fetch(`${tb.url}/admin/audit/export?format=jsonl&agent=${agent.clientId}`);
    expect(jsonl.headers.get('content-type')).toMatch(/application\/x-ndjson/);
    expect(jsonl.headers.get('content-disposition')).toMatch(/attachment; filename="errand-audit-.*\.jsonl"/);
    const events = (await jsonl.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; actor_chain: string[]; user_id: string | null });
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.actor_chain.includes(agent.clientId))).toBe(true);
    const exchanged = events.find((e) => e.type === 'token.exchanged');
    expect(exchanged?.user_id).toBe(user.id);

    const csv = await browser.fetch(`${tb.url}/admin/audit/export?format=csv&agent=${agent.clientId}`);
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    const lines = (await csv.text()).trim().split('\r\n');
    expect(lines[0]).toBe(
      'id,at,type,result,user_id,client_id,actor_chain,task_id,delegation_id,audience,scope,reason,request_id',
    );
    expect(lines.length).toBe(events.length + 1);
    expect(lines.some((l) => l.includes('"token.exchanged"') && l.includes(`"${user.id}"`))).toBe(true);
  });

  test('a person revokes a delegation from its page; its tasks end', async () => {
    const { agents, user, as } = await delegationWorld(tb, { agents: 1, resources: { [NOTES]: ['notes:read'] } });
    const agent = agents[0]!;
    const { credential, delegationId } = await delegateViaCiba(tb, as, agent, user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    const task = await exchange(tb, as, agent, { subject_token: credential, subject_token_type: TT_JWT });
    const { browser, csrf } = await signedIn(user);
    const detail = await browser.fetch(`${tb.url}/my/delegations/${delegationId}`);
    expect(await detail.text()).toContain('Revoke this delegation');
    expect((await browser.postForm(`${tb.url}/my/delegations/${delegationId}/revoke`, { _csrf: csrf })).status).toBe(
      303,
    );
    expect((await tb.broker.deps.delegations.get(delegationId))?.status).toBe('revoked');
    expect((await tb.broker.deps.tasks.get(task.task_id))?.state).toBe('canceled');
    // Someone else's delegation page is not found.
    const stranger = await createUser(tb);
    const other = await signedIn(stranger);
    expect((await other.browser.fetch(`${tb.url}/my/delegations/${delegationId}`)).status).toBe(404);
  });
});

describe('the Requests page and tool-level grants (RFC 9396 mcp_tool)', () => {
  const TOOLS_URL = 'https://tools.example.test/mcp';
  const FILES_URL = 'https://files.example.test/api';

  test('every tool unticked is refused with what to do, never "every tool"; unticking the scopes too leaves the resource out', async () => {
    const { agents, user, as } = await delegationWorld(tb, {
      agents: 1,
      resources: { [TOOLS_URL]: ['tools:read', 'tools:write'], [FILES_URL]: ['files:read'] },
    });
    const agent = agents[0]!;
    // The agent asks over CIBA for named tools at both resources.
    const [client, auth] = agentClient(tb, agent);
    const params = new URLSearchParams({
      login_hint: user.username,
      scope: 'openid tools:read tools:write files:read',
      authorization_details: JSON.stringify([
        { type: 'mcp_tool', locations: [TOOLS_URL], actions: ['list_notes', 'read_note'] },
        { type: 'mcp_tool', locations: [FILES_URL], actions: ['get_file'] },
      ]),
    });
    params.append('resource', TOOLS_URL);
    params.append('resource', FILES_URL);
    const asked = await oauth.processBackchannelAuthenticationResponse(
      as,
      client,
      await oauth.backchannelAuthenticationRequest(as, client, auth, params, insecure),
    );

    const { browser, csrf } = await signedIn(user);
    const page = await (await browser.fetch(`${tb.url}/my/requests`)).text();
    const id = /data-request-id="(dlg_[^"]+)"/.exec(page)?.[1];
    expect(id).toBeDefined();
    expect(page).toContain('Keep at least one ticked; to give it nothing at this resource, untick its scopes instead.');
    const approve = (fields: [string, string][]) =>
      browser.fetch(`${tb.url}/my/requests/${id}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams([['_csrf', csrf], ...fields]).toString(),
      });
    const allScopes: [string, string][] = [
      ['grant', `${TOOLS_URL} tools:read`],
      ['grant', `${TOOLS_URL} tools:write`],
      ['grant', `${FILES_URL} files:read`],
    ];

    // Every tool unticked, scopes kept: refused on the page, nothing decided.
    const none = await approve(allScopes);
    expect(none.status).toBe(400);
    const noneHtml = await none.text();
    expect(noneHtml).toContain(`cannot approve: no tool is granted at ${TOOLS_URL}`);
    expect(noneHtml).toContain('keep at least one of its tools, or leave out its scopes to grant nothing there');
    expect((await tb.broker.deps.delegations.get(id!))?.status).toBe('pending');

    // The tools of one resource unticked, its scopes kept: refused too.
    const oneDropped = await approve([...allScopes, ['tool', `${TOOLS_URL} read_note`]]);
    expect(oneDropped.status).toBe(400);
    expect(await oneDropped.text()).toContain(`no tool is granted at ${FILES_URL}`);
    expect((await tb.broker.deps.delegations.get(id!))?.status).toBe('pending');

    // Files unticked altogether (scopes and tools), one tool kept at the tool server: approved.
    const ok = await approve([
      ['grant', `${TOOLS_URL} tools:read`],
      ['tool', `${TOOLS_URL} read_note`],
    ]);
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe(`/my/requests?done=approved&delegation=${id}`);
    const granted = await tb.broker.deps.delegations.get(id!);
    expect(granted).toMatchObject({
      status: 'active',
      grants: { [TOOLS_URL]: ['tools:read'] },
      authorizationDetails: [{ type: 'mcp_tool', locations: [TOOLS_URL], actions: ['read_note'] }],
    });

    // The task token carries the one tool, and the dropped resource is out of reach.
    tb.clock.advance(asked.interval ?? 5);
    const polled = await oauth.backchannelAuthenticationGrantRequest(as, client, auth, asked.auth_req_id, insecure);
    const { access_token: credential } = await oauth.processBackchannelAuthenticationGrantResponse(as, client, polled);
    const task = await exchange(tb, as, agent, { subject_token: credential, subject_token_type: TT_JWT });
    expect(decodeJwt(task.access_token).authorization_details).toEqual([
      { type: 'mcp_tool', locations: [TOOLS_URL], actions: ['read_note'] },
    ]);
    const files = await exchangeRaw(tb, as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: FILES_URL,
    });
    expect(files.status).toBe(400);
    expect(await files.json()).toMatchObject({ error: 'invalid_target' });
  });
});
