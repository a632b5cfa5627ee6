import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { delegateViaCiba, exchange, introspector, TT_JWT } from '../broker/test/delegation-fixtures.js';
import {
  addAgent,
  addResource,
  adminApi,
  createUser,
  discover,
  startBroker,
  type TestBroker,
} from '../broker/test/fixtures.js';
import { launchChromium, screenshot } from './fixtures/chromium.js';

/**
 * A certification campaign end to end in Chromium (README "Agent lifecycle: owners, certification
 * and right-sizing"): an administrator opens it, an owner signs in and keeps agent A, another owner
 * does not attest agent B, the administrator closes the campaign, B is suspended and the token of
 * B's task is no longer active at introspection while A's still is.
 */

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

async function signIn(user: { username: string; password: string }, next: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${tb.url}/signin?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Username').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${tb.url}${next}`);
  return page;
}

describe('certification campaign in the browser', () => {
  test('owner attests agent A, agent B lapses and is suspended at close: its task token dies', async () => {
    const api = await adminApi(tb);
    await addResource(api, NOTES, ['notes:read', 'notes:write']);
    const as = await discover(tb);
    const introspect = await introspector(tb, api, [NOTES]);
    const alice = await createUser(tb, 'user', 'alice-owner');
    const bob = await createUser(tb, 'user', 'bob-owner');
    const user = await createUser(tb);
    const admin = await createUser(tb, 'admin');

    // Two agents, each with a live notes:read task under a notes:read notes:write delegation from `user`.
    const running = async (name: string, ownerId: string) => {
      const agent = await addAgent(api, { name, owner_id: ownerId, grant_types: undefined });
      const { credential } = await delegateViaCiba(tb, as, agent, user, {
        scope: 'openid notes:read notes:write',
        resource: NOTES,
      });
      const task = await exchange(tb, as, agent, {
        subject_token: credential,
        subject_token_type: TT_JWT,
        resource: NOTES,
        scope: 'notes:read',
      });
      return { agent, token: task.access_token };
    };
    const a = await running('Agent A', alice.id);
    const b = await running('Agent B', bob.id);
    expect(await introspect(b.token)).toMatchObject({ active: true });

    // The administrator opens a campaign in the console.
    const adminPage = await signIn(admin, '/admin/certifications');
    await adminPage.getByLabel('Name').fill('Quarterly agent review');
    await adminPage.getByLabel('Deadline (days from now)').fill('7');
    await adminPage.getByLabel('Usage window (days)').fill('30');
    await adminPage.getByRole('button', { name: 'Open campaign' }).click();
    await adminPage.waitForURL(/\/admin\/certifications\/cmp_[^?]+\?done=opened/);
    const campaignUrl = adminPage.url().split('?')[0]!;
    await expect
      .poll(() => adminPage.locator(`tr[data-agent-id="${a.agent.clientId}"]`).getByText('to attest').isVisible())
      .toBe(true);
    await screenshot(adminPage, 'certification-opened');

    // Alice signs in and sees her agent (not Bob's) with its snapshot; she keeps it.
    const alicePage = await signIn(alice, '/my/certifications');
    await alicePage.getByRole('heading', { name: 'Your agents to certify' }).waitFor();
    expect(await alicePage.getByText('Agent B').count()).toBe(0);
    const row = alicePage.locator(`tr[data-agent-id="${a.agent.clientId}"]`);
    await expect.poll(() => row.getByText('Granted but unused').isVisible()).toBe(true);
    await screenshot(alicePage, 'certification-owner');
    await row.getByRole('button', { name: 'Keep Agent A' }).click();
    await alicePage.waitForURL(/done=keep/);
    await expect
      .poll(() => alicePage.getByText('No agent of yours is waiting for certification.').isVisible())
      .toBe(true);

    // The administrator closes the campaign now: Bob never attested Agent B.
    await adminPage.goto(campaignUrl);
    await adminPage.getByRole('button', { name: 'Close now' }).click();
    await adminPage.waitForURL(/done=closed/);
    await expect
      .poll(() => adminPage.locator(`tr[data-agent-id="${b.agent.clientId}"]`).getByText('lapsed').isVisible())
      .toBe(true);
    await expect
      .poll(() => adminPage.locator(`tr[data-agent-id="${a.agent.clientId}"]`).getByText('keep').isVisible())
      .toBe(true);
    await screenshot(adminPage, 'certification-closed');

    // B is suspended and the token of its task is dead; A keeps working.
    expect(await introspect(b.token)).toMatchObject({ active: false });
    expect(await introspect(a.token)).toMatchObject({ active: true });
    await adminPage.goto(`${tb.url}/admin/agents`);
    const bRow = adminPage.locator(`tr[data-client-id="${b.agent.clientId}"]`);
    await expect.poll(() => bRow.getByText('suspended: certification lapsed').isVisible()).toBe(true);
    await screenshot(adminPage, 'certification-agents');
  });

  test('the right-sizing view shows granted-but-unused, suggests the Cedar rule, and reduces in one click', async () => {
    const api = await adminApi(tb);
    const CAL = 'https://calendar.example.test/api';
    await addResource(api, CAL, ['calendar:read']);
    const as = await discover(tb);
    const introspect = await introspector(tb, api, [NOTES, CAL]);
    const user = await createUser(tb);
    const admin = await createUser(tb, 'admin');
    const agent = await addAgent(api, { name: 'Wide agent', grant_types: undefined });
    const { credential } = await delegateViaCiba(tb, as, agent, user, {
      scope: 'openid notes:read notes:write calendar:read',
      resource: [NOTES, CAL],
    });
    const task = await exchange(tb, as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      scope: 'notes:read',
    });

    const page = await signIn(admin, '/admin/agents');
    await page.locator(`tr[data-client-id="${agent.clientId}"]`).getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { name: 'Usage of Wide agent' }).waitFor();
    const policy = await page.locator('pre').textContent();
    expect(policy).toContain(
      `forbid (principal == Errand::Agent::"${agent.clientId}", action, resource == Errand::Resource::"${CAL}");`,
    );
    await screenshot(page, 'right-sizing-before');
    // The long policy lines scroll in their box; the page itself does not scroll sideways.
    expect(await page.evaluate<boolean>('document.documentElement.scrollWidth > window.innerWidth')).toBe(false);
    await page.getByRole('button', { name: /to what was used$/ }).click();
    await page.waitForURL(/done=reduced/);
    await expect.poll(() => page.getByText('uses what it holds').isVisible()).toBe(true);
    await screenshot(page, 'right-sizing-after');
    // The delegation's task ended with the reduction; the calendar is out of reach from now on.
    expect(await introspect(task.access_token)).toMatchObject({ active: false });
  });
});
