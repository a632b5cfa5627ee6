import * as oauth from 'oauth4webapi';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentClient, delegationWorld, userApi } from '../broker/test/delegation-fixtures.js';
import { addAgent, createUser, insecure, startBroker, type TestBroker } from '../broker/test/fixtures.js';
import { launchChromium, screenshot } from './fixtures/chromium.js';

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

/** Signs in through the real form, by label and button name. */
async function signIn(user: { username: string; password: string }, next = '/admin'): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${tb.url}/signin?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Username').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${tb.url}${next}`);
  return page;
}

describe('the admin console in Chromium: resources, people, passwords', () => {
  test('an administrator adds a resource with scope descriptions, edits one, and deletes it after confirming', async () => {
    const admin = await createUser(tb, 'admin');
    const page = await signIn(admin, '/admin');
    await page.getByRole('link', { name: 'Resources' }).click();
    await page.waitForURL(`${tb.url}/admin/resources`);
    // Only the built-in endpoints so far: the empty state says how to add the first.
    await expect.poll(() => page.getByText('No resources of your own yet').isVisible()).toBe(true);
    await screenshot(page, 'resources-empty');

    await page.getByLabel('URL').fill('https://wiki.example.test/api');
    await page.getByLabel('Name', { exact: true }).fill('Team wiki');
    await page.getByLabel('Scopes').fill('wiki:read Read the pages of the team wiki\nwiki:edit Change pages');
    await page.getByRole('button', { name: 'Add resource' }).click();
    await page.waitForURL(/done=created/);
    const row = page.locator('tr', { hasText: 'Team wiki' });
    await expect.poll(() => row.getByText('Read the pages of the team wiki').isVisible()).toBe(true);
    await expect.poll(() => row.getByText('Change pages').isVisible()).toBe(true);
    expect(await page.getByText('No resources of your own yet').count()).toBe(0);
    await screenshot(page, 'resources-list');

    await row.getByRole('link', { name: 'Edit Team wiki' }).click();
    await page.getByLabel('Description of wiki:edit').fill('Change and create pages of the team wiki');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.waitForURL(/done=updated/);
    await expect.poll(() => row.getByText('Change and create pages of the team wiki').isVisible()).toBe(true);

    // Delete: the link leads to a confirmation page; nothing happens until the person confirms.
    await row.getByRole('link', { name: 'Delete Team wiki' }).click();
    await page.getByRole('heading', { name: 'Delete Team wiki?' }).waitFor();
    await screenshot(page, 'resources-confirm-delete');
    expect(await tb.broker.deps.clients.getResource('https://wiki.example.test/api')).not.toBeNull();
    await page.getByRole('button', { name: 'Delete Team wiki' }).click();
    await page.waitForURL(/done=deleted/);
    expect(await page.locator('tr', { hasText: 'Team wiki' }).count()).toBe(0);
    expect(await tb.broker.deps.clients.getResource('https://wiki.example.test/api')).toBeNull();
  });

  test('an administrator disables a person after confirming; that person can no longer sign in', async () => {
    const admin = await createUser(tb, 'admin');
    const person = await createUser(tb, 'user', 'carol-disabled');
    const page = await signIn(admin, '/admin/users');
    await page.getByRole('link', { name: 'Disable carol-disabled' }).click();
    await page.getByRole('heading', { name: 'Disable carol-disabled?' }).waitFor();
    await page.getByRole('button', { name: 'Disable carol-disabled' }).click();
    await page.waitForURL(/done=disabled/);
    const row = page.locator('tr', { hasText: 'carol-disabled' });
    await expect.poll(() => row.getByRole('button', { name: 'Enable carol-disabled' }).isVisible()).toBe(true);
    await screenshot(page, 'people-disabled');

    const theirs = await (await browser.newContext()).newPage();
    await theirs.goto(`${tb.url}/signin`);
    await theirs.getByLabel('Username').fill(person.username);
    await theirs.getByLabel('Password').fill(person.password);
    await theirs.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => theirs.getByText('The username or password is not correct.').isVisible()).toBe(true);
    expect(new URL(theirs.url()).pathname).toBe('/signin');
  });

  test('a person changes their own password from the user menu, then signs in with it', async () => {
    const person = await createUser(tb);
    const page = await signIn(person, '/my/requests');
    await page.getByRole('link', { name: 'Change password' }).click();
    await page.waitForURL(`${tb.url}/my/password`);
    await page.getByLabel('Current password').fill(person.password);
    await page.getByLabel('New password (12 characters or more)').fill('a-brand-new-passphrase-7');
    await page.getByLabel('New password again').fill('a-brand-new-passphrase-7');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.waitForURL(/done=changed/);
    await expect.poll(() => page.getByText('Password changed.').isVisible()).toBe(true);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/signin/);

    await page.getByLabel('Username').fill(person.username);
    await page.getByLabel('Password').fill(person.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByText('The username or password is not correct.').isVisible()).toBe(true);
    await page.getByLabel('Password').fill('a-brand-new-passphrase-7');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((u) => u.pathname === '/admin');
  });

  test('the approval page explains the request, preselects safe defaults and ends on a link to the delegation', async () => {
    const NOTES = 'https://notes.example.test/mcp';
    const { api, user, as } = await delegationWorld(tb, { agents: 0, resources: {} });
    const created = await api.call('POST', '/api/admin/resources', {
      url: NOTES,
      name: 'Team notes',
      scopes: [{ name: 'notes:read', description: 'Read your notes' }, 'notes:write'],
    });
    expect(created.status).toBe(201);
    const owner = await createUser(tb, 'user', 'dana-owner');
    const agent = await addAgent(api, { name: 'Inbox sorter', owner_id: owner.id, grant_types: undefined });
    const [client, auth] = agentClient(tb, agent);
    const ask = new URLSearchParams({
      login_hint: user.username,
      scope: 'openid notes:read notes:write',
      resource: NOTES,
      max_depth: '2',
      delegation_expires_in: String(7 * 86_400),
      max_token_ttl: '300',
    });
    const started = await oauth.processBackchannelAuthenticationResponse(
      as,
      client,
      await oauth.backchannelAuthenticationRequest(as, client, auth, ask, insecure),
    );
    expect(started.auth_req_id).toBeTruthy();

    const page = await signIn(user, '/my/requests');
    const card = page.getByRole('article', { name: 'Inbox sorter asks to act for you' });
    await card.waitFor({ timeout: 10_000 });
    // Who asks, for what, in words: owner, resource name, scope description (or the scope itself).
    await expect.poll(() => card.getByText('dana-owner, who answers for what this agent does').isVisible()).toBe(true);
    await expect.poll(() => card.getByText('Team notes').isVisible()).toBe(true);
    await expect.poll(() => card.getByRole('checkbox', { name: /Read your notes/ }).isChecked()).toBe(true);
    await expect.poll(() => card.getByRole('checkbox', { name: 'notes:write' }).isChecked()).toBe(true);
    await expect
      .poll(() => card.getByText(/not known yet: the agent has not authenticated|NHI-AAL1: it proves/).isVisible())
      .toBe(true);
    // Safe defaults, not the maximum asked: 8 hours (asked 7 days), one sub-agent level (asked 2).
    const expiry = card.getByLabel('For how long');
    const depth = card.getByLabel('How many levels of sub-agents it may hand work to');
    expect(await expiry.inputValue()).toBe(String(8 * 3600));
    expect(await depth.inputValue()).toBe('1');
    expect(await card.getByLabel('Longest life of each task token').inputValue()).toBe('300');
    // The person may raise them up to what was asked.
    const options = await expiry.locator('option').allTextContents();
    expect(options[0]).toBe('7 days (as asked)');
    await screenshot(page, 'approval-explained');

    await card.getByRole('checkbox', { name: 'notes:write' }).uncheck();
    await card.getByRole('button', { name: 'Approve' }).click();
    await page.waitForURL(/done=approved/);
    await page.getByRole('link', { name: 'See what you granted' }).click();
    await page.waitForURL(/\/my\/delegations\/dlg_/);
    const id = new URL(page.url()).pathname.split('/').pop()!;
    const granted = await tb.broker.deps.delegations.get(id);
    expect(granted).toMatchObject({ status: 'active', maxDepth: 1, grants: { [NOTES]: ['notes:read'] } });
    expect(granted!.expiresAt - granted!.decidedAt!).toBe(8 * 3600);
    await screenshot(page, 'approval-granted');
    // The person's own API agrees.
    const me = await userApi(tb, user);
    expect((await me.call('GET', `/api/me/delegations/${id}`)).status).toBe(200);
  });
});
