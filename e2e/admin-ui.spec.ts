import * as oauth from 'oauth4webapi';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  agentClient,
  delegationWorld,
  exchange,
  exchangeRaw,
  introspector,
  TT_ACCESS,
  TT_JWT,
} from '../broker/test/delegation-fixtures.js';
import { createUser, insecure, startBroker, type TestAgent, type TestBroker } from '../broker/test/fixtures.js';
import { launchChromium, screenshot } from './fixtures/chromium.js';

const NOTES = 'https://notes.example.test/mcp';

let tb: TestBroker;
let browser: Browser;
beforeAll(async () => {
  tb = await startBroker();
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await tb?.close();
});

/** Signs in through the real form, as a person would: by label and button name. */
async function signIn(user: { username: string; password: string }, next = '/admin'): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${tb.url}/signin?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Username').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${tb.url}${next}`);
  return page;
}

/** The agent asks for a delegation over CIBA (an independent OAuth client on the other side). */
async function askOverCiba(as: oauth.AuthorizationServer, agent: TestAgent, username: string) {
  const [client, auth] = agentClient(tb, agent);
  const params = new URLSearchParams({
    login_hint: username,
    scope: 'openid notes:read notes:write',
    resource: NOTES,
    binding_message: 'Sort my notes',
    max_depth: '2',
  });
  const res = await oauth.backchannelAuthenticationRequest(as, client, auth, params, insecure);
  return oauth.processBackchannelAuthenticationResponse(as, client, res);
}

describe('the admin UI in Chromium', () => {
  test('a person approves a narrowed delegation live, watches the task tree, ends it; an admin disables an agent', async () => {
    const { api, agents, user, as } = await delegationWorld(tb, { agents: 2 });
    const [agentA, agentB] = agents as [TestAgent, TestAgent];
    const introspect = await introspector(tb, api, [NOTES]);

    // The user signs in and opens their pending requests: nothing yet.
    const page = await signIn(user, '/my/requests');
    await expect.poll(() => page.getByText('No agent is waiting for you').isVisible()).toBe(true);
    await screenshot(page, 'requests-empty');

    // The agent asks over CIBA; the request appears on the open page without a reload.
    const started = await askOverCiba(as, agentA, user.username);
    const card = page.getByRole('article', { name: /asks to act for you/ });
    await card.waitFor({ timeout: 10_000 });
    await expect.poll(() => card.getByText('Sort my notes').isVisible()).toBe(true);
    await screenshot(page, 'requests-pending');

    // The user narrows (drops notes:write) and approves.
    await card.getByRole('checkbox', { name: 'notes:write' }).uncheck();
    await card.getByRole('button', { name: 'Approve' }).click();
    await page.waitForURL(/done=approved/);
    await expect.poll(() => page.getByText('Approved.').isVisible()).toBe(true);

    // The agent collects its credential and gets a task token; a sub-agent gets a narrower one.
    tb.clock.advance(started.interval ?? 5);
    const [clientA, authA] = agentClient(tb, agentA);
    const grant = await oauth.backchannelAuthenticationGrantRequest(as, clientA, authA, started.auth_req_id, insecure);
    const credential = await oauth.processBackchannelAuthenticationGrantResponse(as, clientA, grant);
    expect(credential.scope).toBe('openid notes:read');
    const taskToken = await exchange(tb, as, agentA, {
      subject_token: credential.access_token,
      subject_token_type: TT_JWT,
    });
    const subToken = await exchange(tb, as, agentB, {
      subject_token: taskToken.access_token,
      subject_token_type: TT_ACCESS,
    });

    // The task tree shows both, with the actor chain.
    await page.getByRole('link', { name: 'Tasks' }).click();
    await page.waitForURL(`${tb.url}/my/tasks`);
    const root = page.locator(`li[data-task-id="${taskToken.task_id}"]`);
    const child = root.locator(`li[data-task-id="${subToken.task_id}"]`);
    await expect.poll(() => child.isVisible()).toBe(true);
    await expect.poll(async () => (await child.textContent()) ?? '').toContain('agent 1 ← agent 0');
    await expect
      .poll(async () => (await root.locator('.task-line').first().textContent()) ?? '')
      .toContain('tokens: 1');
    await screenshot(page, 'tasks-tree');

    // The user ends the task: the tree shows it ended, and introspection says inactive.
    await root.locator('.task-line').first().getByRole('button', { name: 'End task' }).click();
    await page.waitForURL(/done=ended/);
    await expect
      .poll(
        async () =>
          (await page.locator(`li[data-task-id="${taskToken.task_id}"] .task-line`).first().textContent()) ?? '',
      )
      .toContain('canceled');
    await expect
      .poll(
        async () =>
          (await page.locator(`li[data-task-id="${subToken.task_id}"] .task-line`).first().textContent()) ?? '',
      )
      .toContain('canceled');
    expect(await introspect(taskToken.access_token)).toEqual({ active: false });
    expect(await introspect(subToken.access_token)).toEqual({ active: false });
    await screenshot(page, 'tasks-ended');

    await page.getByRole('link', { name: 'Delegations' }).click();
    await expect.poll(() => page.getByRole('cell', { name: 'agent 0' }).isVisible()).toBe(true);
    await screenshot(page, 'delegations');

    // An administrator disables agent B; its next exchange is refused.
    const admin = await createUser(tb, 'admin');
    const adminPage = await signIn(admin, '/admin/agents');
    await screenshot(adminPage, 'admin-agents');
    const before = await exchangeRaw(tb, as, agentA, {
      subject_token: credential.access_token,
      subject_token_type: TT_JWT,
    });
    expect(before.status).toBe(200);
    // Disabling is two steps: the link opens a page that says what happens; its button does it.
    await adminPage.getByRole('link', { name: 'Disable agent 0' }).click();
    await adminPage.getByRole('heading', { name: 'Disable agent 0?' }).waitFor();
    await adminPage.getByRole('button', { name: 'Disable agent 0' }).click();
    await adminPage.waitForURL(/done=disabled/);
    await expect.poll(() => adminPage.getByRole('button', { name: 'Enable agent 0' }).isVisible()).toBe(true);
    const after = await exchangeRaw(tb, as, agentA, {
      subject_token: credential.access_token,
      subject_token_type: TT_JWT,
    });
    expect(after.status).toBe(401);
    expect(await after.json()).toMatchObject({ error: 'invalid_client' });

    // The other admin pages render with their data.
    await adminPage.goto(`${tb.url}/admin/clients`);
    await expect.poll(() => adminPage.getByText('administrator').first().isVisible()).toBe(true);
    await screenshot(adminPage, 'admin-clients');
    await adminPage.goto(`${tb.url}/admin/keys`);
    await expect.poll(() => adminPage.getByText('current').isVisible()).toBe(true);
    await screenshot(adminPage, 'admin-keys');
    await adminPage.goto(`${tb.url}/admin/audit?agent=${encodeURIComponent(agentB.clientId)}`);
    await expect.poll(() => adminPage.getByRole('cell', { name: 'token.exchanged' }).first().isVisible()).toBe(true);
    await screenshot(adminPage, 'admin-audit');
  });

  test('a person sees only their own tasks and cannot end someone else’s', async () => {
    const { agents, as } = await delegationWorld(tb, { agents: 1, resources: {} });
    const owner = await createUser(tb);
    const other = await createUser(tb);
    const agent = agents[0]!;
    const started = await askOverCiba(as, agent, owner.username);
    const ownerPage = await signIn(owner, '/my/requests');
    const card = ownerPage.getByRole('article', { name: /asks to act for you/ });
    await card.waitFor();
    await card.getByRole('button', { name: 'Approve' }).click();
    await ownerPage.waitForURL(/done=approved/);
    tb.clock.advance(started.interval ?? 5);
    const [client, auth] = agentClient(tb, agent);
    const credential = await oauth.processBackchannelAuthenticationGrantResponse(
      as,
      client,
      await oauth.backchannelAuthenticationGrantRequest(as, client, auth, started.auth_req_id, insecure),
    );
    const task = await exchange(tb, as, agent, { subject_token: credential.access_token, subject_token_type: TT_JWT });

    const otherPage = await signIn(other, '/my/tasks');
    await expect.poll(() => otherPage.getByText('No task has run for you yet').isVisible()).toBe(true);
    expect(await otherPage.locator(`[data-task-id="${task.task_id}"]`).count()).toBe(0);
    // Crafted requests for the owner's task answer 404 and change nothing.
    const api = await otherPage.request.get(`${tb.url}/api/me/tasks/${task.task_id}`);
    expect(api.status()).toBe(404);
    const requests = await otherPage.goto(`${tb.url}/my/delegations`);
    expect(requests?.status()).toBe(200);
    expect(await otherPage.getByRole('cell', { name: 'agent 0' }).count()).toBe(0);
    expect((await tb.broker.deps.tasks.get(task.task_id))?.state).toBe('working');
  });

  test('unticking every tool is refused on the page with what to do; the tools kept are what is granted', async () => {
    const TOOLS_URL = 'https://tools.example.test/mcp';
    const { agents, user, as } = await delegationWorld(tb, { agents: 1, resources: { [TOOLS_URL]: ['tools:read'] } });
    const [client, auth] = agentClient(tb, agents[0]!);
    const params = new URLSearchParams({
      login_hint: user.username,
      scope: 'openid tools:read',
      resource: TOOLS_URL,
      authorization_details: JSON.stringify([
        { type: 'mcp_tool', locations: [TOOLS_URL], actions: ['list_notes', 'read_note'] },
      ]),
    });
    await oauth.processBackchannelAuthenticationResponse(
      as,
      client,
      await oauth.backchannelAuthenticationRequest(as, client, auth, params, insecure),
    );
    const page = await signIn(user, '/my/requests');
    const card = page.getByRole('article', { name: /asks to act for you/ });
    await card.waitFor();
    const tools = card.getByRole('group', { name: 'Only these tools' });
    await expect.poll(() => tools.getByText('Keep at least one ticked').isVisible()).toBe(true);

    // Every tool unticked: refused, with what to do instead; the request is still waiting.
    await tools.getByRole('checkbox', { name: 'list_notes' }).uncheck();
    await tools.getByRole('checkbox', { name: 'read_note' }).uncheck();
    await card.getByRole('button', { name: 'Approve' }).click();
    await expect
      .poll(() => page.getByText(`cannot approve: no tool is granted at ${TOOLS_URL}`).isVisible())
      .toBe(true);
    await screenshot(page, 'requests-no-tool-refused');
    const [pending] = await tb.broker.deps.delegations.listForUser(user.id, 'pending');
    expect(pending?.status).toBe('pending');

    // One tool unticked: approved with the other only.
    const again = page.getByRole('article', { name: /asks to act for you/ });
    await again
      .getByRole('group', { name: 'Only these tools' })
      .getByRole('checkbox', { name: 'list_notes' })
      .uncheck();
    await again.getByRole('button', { name: 'Approve' }).click();
    await page.waitForURL(/done=approved/);
    expect((await tb.broker.deps.delegations.get(pending!.id))?.authorizationDetails).toEqual([
      { type: 'mcp_tool', locations: [TOOLS_URL], actions: ['read_note'] },
    ]);
  });

  test('admin pages refuse a person who is not an administrator', async () => {
    const person = await createUser(tb);
    const page = await signIn(person, '/my/requests');
    const res = await page.goto(`${tb.url}/admin/agents`);
    expect(res?.status()).toBe(403);
    expect(await page.getByRole('heading', { name: 'Not allowed' }).isVisible()).toBe(true);
  });
});
