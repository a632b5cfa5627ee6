import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { delegateViaCiba, delegationWorld, exchange, TT_JWT } from '../../broker/test/delegation-fixtures.js';
import {
  addAgent,
  adminApi,
  Browser,
  clientAssertion,
  createUser,
  hiddenInput,
  postForm,
  startBroker,
  type TestBroker,
} from '../../broker/test/fixtures.js';

/**
 * The console's client, trusted-issuer and oversight pages refuse what they must: people who are not
 * administrators, forms without the CSRF token, a GET that would change something, bad input.
 */

const NOTES = 'https://notes.example.test/mcp';
let tb: TestBroker;
beforeAll(async () => {
  tb = await startBroker();
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
  return { browser, csrf: hiddenInput(await (await browser.fetch(`${tb.url}/admin`)).text(), '_csrf') };
}

describe('the console pages refuse', () => {
  test('a person who is not an administrator: 403 on every page and form, nothing changes', async () => {
    const api = await adminApi(tb);
    const agent = await addAgent(api, { name: 'kept' });
    const person = await createUser(tb);
    const { browser, csrf } = await signedIn(person);
    for (const path of [
      '/admin/clients',
      '/admin/clients/new',
      `/admin/clients/${agent.clientId}`,
      `/admin/clients/${agent.clientId}/delete`,
      '/admin/trusted-issuers',
      '/admin/trusted-issuers/new',
      '/admin/tasks',
      '/admin/delegations',
    ]) {
      expect((await browser.fetch(`${tb.url}${path}`)).status, path).toBe(403);
    }
    for (const path of [
      `/admin/clients/${agent.clientId}/delete`,
      `/admin/clients/${agent.clientId}/disable`,
      `/admin/clients/${agent.clientId}`,
    ]) {
      const res = await browser.postForm(`${tb.url}${path}`, { _csrf: csrf, name: 'taken' });
      expect(res.status, path).toBe(403);
    }
    expect(await tb.broker.deps.clients.get(agent.clientId)).toMatchObject({ name: 'kept', status: 'active' });
  });

  test('forms without the CSRF token: 403, nothing changes', async () => {
    const { api, agents, user, as } = await delegationWorld(tb, { agents: 1, resources: { [NOTES]: ['notes:read'] } });
    const agent = agents[0]!;
    const { credential, delegationId } = await delegateViaCiba(tb, as, agent, user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    const task = await exchange(tb, as, agent, { subject_token: credential, subject_token_type: TT_JWT });
    const { browser } = await signedIn(api.admin);
    for (const path of [
      `/admin/clients/${agent.clientId}/delete`,
      `/admin/clients/${agent.clientId}/disable`,
      `/admin/clients/${agent.clientId}/keys`,
      `/admin/tasks/${task.task_id}/end`,
      `/admin/delegations/${delegationId}/revoke`,
      '/admin/trusted-issuers/new',
    ]) {
      const res = await browser.postForm(`${tb.url}${path}`, { _csrf: 'forged', jwks_uri: 'https://k.example.test/j' });
      expect(res.status, path).toBe(403);
    }
    expect(await tb.broker.deps.clients.get(agent.clientId)).toMatchObject({ status: 'active', jwksUri: null });
    expect((await tb.broker.deps.tasks.get(task.task_id))?.state).toBe('working');
    expect((await tb.broker.deps.delegations.get(delegationId))?.status).toBe('active');
    expect(await tb.broker.deps.trustedIssuers.list()).toEqual([]);
  });

  test('the first step of a destructive action only asks: GET on its URL changes nothing', async () => {
    const { api, agents, user, as } = await delegationWorld(tb, { agents: 1, resources: {} });
    const agent = agents[0]!;
    const { credential, delegationId } = await delegateViaCiba(tb, as, agent, user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    const task = await exchange(tb, as, agent, { subject_token: credential, subject_token_type: TT_JWT });
    const { browser } = await signedIn(api.admin);
    for (const [path, heading] of [
      [`/admin/clients/${agent.clientId}/delete`, 'Delete agent 0?'],
      [`/admin/clients/${agent.clientId}/disable`, 'Disable agent 0?'],
      [`/admin/tasks/${task.task_id}/end`, `End agent 0&#39;s task for ${user.username}?`],
      [`/admin/delegations/${delegationId}/revoke`, `Revoke ${user.username}&#39;s delegation to agent 0?`],
    ] as const) {
      const res = await browser.fetch(`${tb.url}${path}`);
      expect(res.status, path).toBe(200);
      const html = await res.text();
      expect(html).toContain(heading);
      expect(html).toMatch(new RegExp(`<form method="post" action="${path}"`));
    }
    expect(await tb.broker.deps.clients.get(agent.clientId)).toMatchObject({ status: 'active' });
    expect((await tb.broker.deps.tasks.get(task.task_id))?.state).toBe('working');
    expect((await tb.broker.deps.delegations.get(delegationId))?.status).toBe('active');
  });

  test('unknown ids are 404 pages; bad input is shown on the form with what to fix', async () => {
    const api = await adminApi(tb);
    const { browser, csrf } = await signedIn(api.admin);
    for (const path of [
      '/admin/clients/cli_nope',
      '/admin/clients/cli_nope/delete',
      '/admin/tasks/tsk_nope/end',
      '/admin/delegations/dlg_nope/revoke',
      '/admin/trusted-issuers/tis_nope',
    ]) {
      expect((await browser.fetch(`${tb.url}${path}`)).status, path).toBe(404);
    }
    expect((await browser.postForm(`${tb.url}/admin/clients/cli_nope/delete`, { _csrf: csrf })).status).toBe(404);

    const cases: [Record<string, string>, string][] = [
      [{ name: 'no key', auth_method: 'private_key_jwt' }, 'private_key_jwt needs jwks or jwks_uri'],
      [{ name: 'bad json', jwks: '{ "keys": [' }, 'not valid JSON'],
      [{ name: '', jwks_uri: 'https://k.example.test/j' }, 'name:'],
      [
        { name: 'bad scope', jwks_uri: 'https://k.example.test/j', scope: 'ok b@d"' },
        'scope.1: is not a valid scope token',
      ],
    ];
    for (const [form, message] of cases) {
      const res = await browser.postForm(`${tb.url}/admin/clients/new`, { _csrf: csrf, kind: 'agent', ...form });
      expect(res.status, JSON.stringify(form)).toBe(400);
      expect(await res.text()).toContain(message);
    }
    const issuer = await browser.postForm(`${tb.url}/admin/trusted-issuers/new`, {
      _csrf: csrf,
      kind: 'ci',
      name: 'CI',
      issuer: 'https://ci.example.test',
      rule_count: '1',
      rule0_agent: 'cli_nope',
      rule0_match: 'sub = x',
    });
    expect(issuer.status).toBe(400);
    expect(await issuer.text()).toContain('cli_nope is not an agent registered with token_endpoint_auth_method');
    const noClaim = await browser.postForm(`${tb.url}/admin/trusted-issuers/new`, {
      _csrf: csrf,
      kind: 'ci',
      name: 'CI',
      issuer: 'https://ci.example.test',
      rule_count: '1',
      rule0_agent: 'cli_nope',
      rule0_match: 'just a pattern',
    });
    expect(noClaim.status).toBe(400);
    expect(await noClaim.text()).toContain('write each match as claim = pattern');
  });
});

describe('an admin service added on the console', () => {
  test('gets errand:admin tokens by client_credentials and calls the admin API; other scopes are refused', async () => {
    const api = await adminApi(tb);
    const { browser, csrf } = await signedIn(api.admin);
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const publicJwk = { ...(await exportJWK(publicKey)), kid: 'deploy-1', alg: 'ES256', use: 'sig' };

    const form = (await browser.fetch(`${tb.url}/admin/clients/new?kind=admin_service`)).text();
    expect(await form).toContain('Add an admin service');
    const wider = await browser.postForm(`${tb.url}/admin/clients/new`, {
      _csrf: csrf,
      kind: 'admin_service',
      name: 'deploy pipeline',
      jwks: JSON.stringify(publicJwk),
      scope: 'errand:admin notes:read',
    });
    expect(wider.status).toBe(400);
    expect(await wider.text()).toContain('has scope');

    const created = await browser.postForm(`${tb.url}/admin/clients/new`, {
      _csrf: csrf,
      kind: 'admin_service',
      name: 'deploy pipeline',
      jwks: JSON.stringify(publicJwk),
    });
    expect(created.status).toBe(303);
    const clientId = decodeURIComponent(/\/admin\/clients\/([^?]+)/.exec(created.headers.get('location') ?? '')![1]!);
    expect(await tb.broker.deps.clients.get(clientId)).toMatchObject({
      kind: 'admin_service',
      scope: ['errand:admin'],
      grantTypes: ['client_credentials'],
    });

    const service = { clientId, privateKey, publicJwk, kid: 'deploy-1' };
    const token = await postForm(`${tb.url}/token`, {
      grant_type: 'client_credentials',
      resource: `${tb.url}/api/admin`,
      scope: 'errand:admin',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(service, tb.url),
    });
    expect(token.status, await token.clone().text()).toBe(200);
    const { access_token } = (await token.json()) as { access_token: string };
    const clients = await fetch(`${tb.url}/api/admin/clients`, {
      headers: { authorization: `Bearer ${access_token}` },
    });
    expect(clients.status).toBe(200);

    // The console's edit form cannot widen it either.
    const edit = await browser.postForm(`${tb.url}/admin/clients/${encodeURIComponent(clientId)}`, {
      _csrf: csrf,
      name: 'deploy pipeline',
      scope: 'errand:admin notes:read',
      grant_types: 'client_credentials',
    });
    expect(edit.status).toBe(400);
    expect((await tb.broker.deps.clients.get(clientId))?.scope).toEqual(['errand:admin']);
  });
});
