import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { delegateViaCiba, delegationWorld, exchangeRaw, TT_JWT } from '../broker/test/delegation-fixtures.js';
import { createUser, startBroker, type TestAgent, type TestBroker } from '../broker/test/fixtures.js';
import { launchChromium, screenshot } from './fixtures/chromium.js';

/**
 * Organisation policies in the console, in Chromium (README "Organisation policies"): an
 * administrator writes a version in the editor, checks it against its tests, saves it, starts its
 * shadow, and sees live traffic it would deny; publishing a version whose tests fail is refused with
 * their names; the access explorer says what an agent may do for a person and which policy decides.
 */

const NOTES = 'https://notes.example.test/mcp';

const POLICIES = `@id("default")
permit (principal, action in Errand::Action::"delegated", resource);

@id("notes-closed")
forbid (principal, action == Errand::Action::"exchange", resource == Errand::Resource::"${NOTES}");
`;
const testsExpecting = (expect: 'allow' | 'deny') =>
  JSON.stringify(
    [
      {
        name: 'agents reach the notes',
        action: 'exchange',
        agent: { id: 'agt_any' },
        user: { id: 'usr_any' },
        resource: { url: NOTES },
        expect,
      },
    ],
    null,
    2,
  );

let tb: TestBroker;
let browser: Browser;
let world: Awaited<ReturnType<typeof delegationWorld>>;
let agent: TestAgent;
let admin: { username: string; password: string };

beforeAll(async () => {
  tb = await startBroker();
  browser = await launchChromium();
  world = await delegationWorld(tb, { agents: 1 });
  [agent] = world.agents as [TestAgent];
  admin = await createUser(tb, 'admin');
});
afterAll(async () => {
  await browser?.close();
  await tb?.close();
});

async function signIn(next: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${tb.url}/signin?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Username').fill(admin.username);
  await page.getByLabel('Password').fill(admin.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${tb.url}${next}`);
  return page;
}

/** Writes a version in the editor (from the list's "New version"). */
async function writeVersion(page: Page, tests: string) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Policies' }).click();
  await page.waitForURL(`${tb.url}/admin/policies`);
  await page.getByRole('link', { name: 'New version' }).click();
  await page.getByLabel('Policies (Cedar)').fill(POLICIES);
  await page.getByLabel('Tests (JSON array)').fill(tests);
}

let shadowVersion = 0;

describe('the policy editor, shadow and publish', () => {
  test('check shows a failing then a passing test; saved, shadowed, live traffic it would deny is listed', async () => {
    const page = await signIn('/admin');
    await writeVersion(page, testsExpecting('allow'));
    await page.getByRole('button', { name: 'Check' }).click();
    const results = page.locator('[data-check-results]');
    expect(await results.getByRole('heading').textContent()).toMatch(/0 test\(s\) passed, 1 failed/);
    expect(await results.getByRole('row', { name: /agents reach the notes/ }).textContent()).toMatch(
      /allow.*deny.*fail.*notes-closed/,
    );
    // The editor keeps what was typed.
    expect(await page.getByLabel('Policies (Cedar)').inputValue()).toContain('notes-closed');

    await page.getByLabel('Tests (JSON array)').fill(testsExpecting('deny'));
    await page.getByRole('button', { name: 'Check' }).click();
    expect(await page.locator('[data-check-results]').getByRole('heading').textContent()).toMatch(
      /1 test\(s\) passed, 0 failed/,
    );
    await screenshot(page, 'policy-editor-check');
    await page.getByLabel('Comment').fill('close the notes');
    await page.getByRole('button', { name: 'Save as draft' }).click();
    await page.waitForURL(/\/admin\/policies\?done=saved/);
    const [saved] = await tb.broker.deps.policyStore.list(1);
    shadowVersion = saved!.version;
    expect(saved).toMatchObject({ status: 'draft', comment: 'close the notes' });

    await page.getByRole('button', { name: `Start shadow of version ${shadowVersion}` }).click();
    await page.waitForURL(/done=shadow/);
    expect(await page.getByRole('row', { name: new RegExp(`Version ${shadowVersion}`) }).textContent()).toContain(
      'shadow',
    );

    // Live traffic over HTTP: the exchange succeeds (the enforced default allows it)...
    const { credential } = await delegateViaCiba(tb, world.as, agent, world.user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    const res = await exchangeRaw(tb, world.as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
    });
    expect(res.status).toBe(200);

    // ...and the shadow page lists it as one the new version would deny.
    await page.getByRole('link', { name: /Shadow decisions/ }).click();
    let row = page.getByRole('row', { name: /would deny/ });
    for (let i = 0; i < 20 && (await row.count()) === 0; i++) {
      await page.reload();
      row = page.getByRole('row', { name: /would deny/ });
    }
    const text = await row.first().textContent();
    expect(text).toContain('exchange');
    expect(text).toContain('agent 0');
    expect(text).toContain(NOTES);
    expect(text).toContain('notes-closed');
    await screenshot(page, 'policy-shadow-decisions');
  });

  test('publishing a version whose tests fail is refused with their names', async () => {
    const page = await signIn('/admin');
    await writeVersion(page, testsExpecting('allow'));
    await page.getByRole('button', { name: 'Save as draft' }).click();
    await page.waitForURL(/done=saved/);
    const [saved] = await tb.broker.deps.policyStore.list(1);
    await page.getByRole('button', { name: `Publish version ${saved!.version}` }).click();
    const alert = page.getByRole('alert');
    expect(await alert.textContent()).toMatch(/"agents reach the notes" \(expected allow, got deny\)/);
    expect((await tb.broker.deps.policyStore.heads()).published).toBeNull();
  });
});

describe('the access explorer', () => {
  test('answers for an agent and a person, with the deciding policy of a chosen version', async () => {
    const page = await signIn('/admin');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Access explorer' }).click();
    await page.waitForURL(`${tb.url}/admin/access`);
    const form = page.getByRole('form', { name: 'An agent for a person' });
    await form.getByLabel('Agent').selectOption(agent.clientId);
    await form.getByLabel('Person (username or id)').fill(world.user.username);
    await form.getByLabel('Policy version').selectOption(String(shadowVersion));
    await form.getByRole('button', { name: 'Explore' }).click();
    await page.waitForURL(/\/admin\/access\?/);
    const results = page.locator('[data-access-results]');
    const notesExchange = results.locator(`tr[data-resource="${NOTES}"][data-action="exchange"]`);
    const cells = await notesExchange.locator('td').allTextContents();
    expect(cells[2]).toMatch(/dlg_/);
    expect(cells[3]).toBe('denied');
    expect(cells[4]).toBe('notes-closed');
    expect(cells[5]).toBe('no');
    // With the enforced (built-in) policies the same delegation works.
    await form.getByLabel('Policy version').selectOption('');
    await form.getByRole('button', { name: 'Explore' }).click();
    await page.waitForLoadState();
    const enforced = await page
      .locator(`[data-access-results] tr[data-resource="${NOTES}"][data-action="exchange"] td`)
      .allTextContents();
    expect(enforced.slice(3)).toEqual(['allowed', 'default', 'yes']);
    await screenshot(page, 'policy-access-explorer');

    // Who can reach the notes.
    const reach = page.getByRole('form', { name: 'Who can reach a resource' });
    await reach.getByLabel('Resource').selectOption(NOTES);
    await reach.getByRole('button', { name: 'Explore' }).click();
    await page.waitForURL(/resource=/);
    expect(
      await page
        .locator('[data-access-results]')
        .getByRole('row', { name: /agent 0/ })
        .textContent(),
    ).toContain(world.user.username);
  });
});
