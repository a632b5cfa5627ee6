import { exportJWK, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  type Api,
  agentClient,
  delegateViaCiba,
  delegationWorld,
  exchange,
  introspector,
  TT_JWT,
} from '../broker/test/delegation-fixtures.js';
import {
  addResource,
  adminApi,
  createUser,
  discover,
  insecure,
  startBroker,
  type TestAgent,
  type TestBroker,
} from '../broker/test/fixtures.js';
import { newId } from '../broker/tokens/random.js';
import { launchChromium, screenshot } from './fixtures/chromium.js';

/**
 * The administrator's console in Chromium: agents created, re-keyed and deleted through their
 * pages, trusted issuers, every person's tasks, and the audit table at phone and desktop widths.
 */

const NOTES = 'https://notes.example.test/mcp';

let tb: TestBroker;
let browser: Browser;
let api: Api;
let admin: { username: string; password: string; id: string };
let introspect: (token: string) => Promise<{ active: boolean }>;

beforeAll(async () => {
  tb = await startBroker();
  browser = await launchChromium();
  admin = await createUser(tb, 'admin');
});
afterAll(async () => {
  await browser?.close();
  await tb?.close();
});

/** Signs in through the real form at the given viewport width. */
async function signIn(user: { username: string; password: string }, next: string, width = 1280): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${tb.url}/signin?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Username').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${tb.url}${next}`);
  return page;
}

/** Whether the page scrolls sideways (the document is wider than the window). */
const overflows = (page: Page) => page.evaluate<boolean>('document.documentElement.scrollWidth > window.innerWidth');

/** Whether the first table is wider than its box (its rows would have to be scrolled sideways). */
const tableScrolls = (page: Page) =>
  page.evaluate<boolean>(
    "(() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth > w.clientWidth; })()",
  );

/** A fresh ES256 key pair, its public JWK set as a person would paste it, and the agent it makes. */
async function keyPair() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = newId('k');
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return { privateKey, kid, publicJwk, pasted: JSON.stringify({ keys: [publicJwk] }, null, 2) };
}

async function clientCredentials(agent: TestAgent) {
  const as = await discover(tb);
  const [client, auth] = agentClient(tb, agent);
  return oauth.clientCredentialsGrantRequest(
    as,
    client,
    auth,
    new URLSearchParams({ resource: NOTES, scope: 'notes:read' }),
    insecure,
  );
}

describe('the admin console in Chromium', () => {
  test('a fresh installation: every list says how to add its first item; no page scrolls sideways at 390 px', async () => {
    const page = await signIn(admin, '/admin/agents', 390);
    for (const [path, text] of [
      ['/admin/agents', 'No agent is registered yet'],
      ['/admin/clients', 'No client is registered yet'],
      ['/admin/trusted-issuers', 'No trusted issuer yet'],
      ['/admin/tasks', 'No task has run yet'],
      ['/admin/delegations', 'No delegation yet'],
    ] as const) {
      await page.goto(`${tb.url}${path}`);
      const empty = page.locator('[data-empty-state]');
      await expect.poll(() => empty.textContent()).toContain(text);
      expect(await empty.getByRole('link').count(), path).toBe(1);
      expect(await overflows(page), path).toBe(false);
    }
    await screenshot(page, 'console-empty-agents-390');
    await page.goto(`${tb.url}/admin/audit`);
    expect(await overflows(page)).toBe(false);
    await page.context().close();
  });

  test('an agent is created with a pasted JWKS, its key replaced, and deleted through the confirmation page', async () => {
    api = await adminApi(tb);
    await addResource(api, NOTES, ['notes:read', 'notes:write']);
    introspect = await introspector(tb, api, [NOTES]);
    const owner = await createUser(tb);
    const first = await keyPair();

    const page = await signIn(admin, '/admin/agents');
    await page.getByRole('link', { name: 'Add an agent' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Sorting bot');
    await page.getByLabel('Owner').selectOption({ label: owner.username });
    await page.getByLabel('Public key set (JWKS JSON, or one JWK)').fill(first.pasted);
    await page.getByLabel('Scopes it may hold').fill('notes:read');
    await page.getByRole('checkbox', { name: 'client credentials' }).check();
    await screenshot(page, 'console-agent-new');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(/\/admin\/clients\/cli_[^?]+\?done=created/);
    const clientId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
    await expect.poll(() => page.locator('[data-keys]').textContent()).toBe(first.kid);
    expect(await tb.broker.deps.clients.get(clientId)).toMatchObject({ name: 'Sorting bot', ownerId: owner.id });

    // The agent gets a token with the key it was registered with.
    const agent: TestAgent = { clientId, privateKey: first.privateKey, kid: first.kid, publicJwk: first.publicJwk };
    const issued = await clientCredentials(agent);
    expect(issued.status).toBe(200);
    const { access_token } = (await issued.json()) as { access_token: string };

    // A bad paste is refused on the page with what is wrong; nothing changes.
    const keysForm = page.locator('form', { has: page.getByRole('button', { name: 'Replace keys' }) });
    await keysForm.getByLabel('Public key set (JWKS JSON, or one JWK)').fill('{ not json');
    await keysForm.getByRole('button', { name: 'Replace keys' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not valid JSON');

    // Replace the key: the old one is refused from now on, the new one accepted.
    const second = await keyPair();
    await page.getByLabel('Public key set (JWKS JSON, or one JWK)').fill(JSON.stringify(second.publicJwk));
    await page.getByRole('button', { name: 'Replace keys' }).click();
    await page.waitForURL(/done=keys-replaced/);
    await expect.poll(() => page.locator('[data-keys]').textContent()).toBe(second.kid);
    await screenshot(page, 'console-agent-keys-replaced');
    const old = await clientCredentials(agent);
    expect(old.status).toBe(401);
    expect(await old.json()).toMatchObject({ error: 'invalid_client' });
    expect((await clientCredentials({ ...agent, privateKey: second.privateKey, kid: second.kid })).status).toBe(200);

    // Delete: the link opens a page that says what happens; Cancel would go back; the button deletes.
    await page.getByRole('link', { name: 'Delete Sorting bot' }).click();
    await page.getByRole('heading', { name: 'Delete Sorting bot?' }).waitFor();
    await expect.poll(() => page.locator('[data-confirm]').textContent()).toContain('cannot be undone');
    await screenshot(page, 'console-agent-delete-confirm');
    expect(await tb.broker.deps.clients.get(clientId)).not.toBeNull();
    await page.getByRole('button', { name: 'Delete Sorting bot' }).click();
    await page.waitForURL(`${tb.url}/admin/agents?done=deleted`);
    expect(await tb.broker.deps.clients.get(clientId)).toBeNull();
    expect(await page.locator(`tr[data-client-id="${clientId}"]`).count()).toBe(0);
    expect(await introspect(access_token)).toEqual({ active: false });
    await page.context().close();
  });

  test('a trusted issuer is added with a rule for a workload agent, then disabled after confirming', async () => {
    const page = await signIn(admin, '/admin/clients/new?kind=agent');
    await page.getByLabel('Name', { exact: true }).fill('CI deployer');
    await page.getByLabel('How it authenticates').selectOption('workload_federation');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(/done=created/);
    const agentId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);

    await page.getByRole('link', { name: 'Trusted issuers' }).click();
    await page.getByRole('link', { name: 'Add the first trusted issuer' }).click();
    await page.getByLabel('Kind').selectOption('ci');
    await page.getByLabel('Name', { exact: true }).fill('Acme CI');
    await page.getByLabel('Issuer (the tokens').fill('https://ci.acme.example');
    await page.getByLabel('Key set URL').fill('https://ci.acme.example/jwks');
    const rule = page.getByRole('group', { name: 'Rule 1' });
    await rule.getByLabel('Agent').selectOption(agentId);
    await rule.getByLabel('Claims to match').fill('sub = repo:acme/deploy:*\nref = refs/heads/main');
    await rule.getByLabel('Assurance').selectOption('NHI-AAL2');
    await screenshot(page, 'console-issuer-new');
    await page.getByRole('button', { name: 'Add trusted issuer' }).click();
    await page.waitForURL(/\/admin\/trusted-issuers\?done=added/);
    const row = page.locator('tr', { hasText: 'Acme CI' });
    await expect.poll(() => row.textContent()).toContain('CI deployer');

    const [stored] = await tb.broker.deps.trustedIssuers.list();
    expect(stored).toMatchObject({
      kind: 'ci',
      issuer: 'https://ci.acme.example',
      jwksUri: 'https://ci.acme.example/jwks',
      status: 'active',
      rules: [{ agentId, assurance: 'NHI-AAL2', match: { sub: ['repo:acme/deploy:*'], ref: ['refs/heads/main'] } }],
    });

    // An AAL3 rule without an attestation claim is refused on the form, with the reason.
    await row.getByRole('link', { name: 'Acme CI', exact: true }).click();
    await page.getByRole('group', { name: 'Rule 1' }).getByLabel('Assurance').selectOption('NHI-AAL3');
    await page.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('attestation');
    expect((await tb.broker.deps.trustedIssuers.get(stored!.id))?.rules[0]?.assurance).toBe('NHI-AAL2');

    await page.goto(`${tb.url}/admin/trusted-issuers`);
    await page.getByRole('link', { name: 'Disable Acme CI' }).click();
    await page.getByRole('button', { name: 'Disable Acme CI' }).click();
    await page.waitForURL(/done=disabled/);
    expect((await tb.broker.deps.trustedIssuers.get(stored!.id))?.status).toBe('disabled');
    await page.context().close();
  });

  test("an administrator ends another person's task from /admin/tasks; the audit table filters by event type", async () => {
    const { agents, user, as } = await delegationWorld(tb, { agents: 1, resources: {} });
    const agent = agents[0]!;
    const { credential, delegationId } = await delegateViaCiba(tb, as, agent, user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    const task = await exchange(tb, as, agent, { subject_token: credential, subject_token_type: TT_JWT });
    expect(await introspect(task.access_token)).toMatchObject({ active: true });

    const page = await signIn(admin, '/admin/tasks');
    await page.getByLabel('Person').selectOption({ label: user.username });
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/user=/);
    const row = page.locator(`tr[data-task-id="${task.task_id}"]`);
    await expect.poll(() => row.textContent()).toContain(user.username);
    await expect.poll(() => row.textContent()).toContain('agent 0');
    expect(await page.locator('tr[data-task-id]').count()).toBe(1);
    await screenshot(page, 'console-all-tasks');
    await row.getByRole('link', { name: `End task ${task.task_id}` }).click();
    await page.getByRole('heading', { name: `End agent 0's task for ${user.username}?` }).waitFor();
    await page.getByRole('button', { name: 'End task' }).click();
    await page.waitForURL(/done=ended/);
    expect(await tb.broker.deps.tasks.get(task.task_id)).toMatchObject({
      state: 'canceled',
      endReason: 'ended_by_admin',
    });
    expect(await introspect(task.access_token)).toEqual({ active: false });

    // The same person's delegation, revoked from All delegations after confirming.
    await page.getByRole('link', { name: 'All delegations' }).click();
    const delegation = page.locator(`tr[data-delegation-id="${delegationId}"]`);
    await expect.poll(() => delegation.textContent()).toContain(user.username);
    await delegation.getByRole('link', { name: `Revoke delegation ${delegationId}` }).click();
    await page.getByRole('button', { name: 'Revoke delegation' }).click();
    await page.waitForURL(/done=revoked/);
    expect((await tb.broker.deps.delegations.get(delegationId))?.status).toBe('revoked');
    await screenshot(page, 'console-all-delegations');

    // The audit table: filter by event type; every row shown is of that type, with names beside ids.
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByLabel('Event type').selectOption('task.ended');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/type=task\.ended/);
    const rows = page.locator('tr[data-event-type]');
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    expect(new Set(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-event-type'))))).toEqual(
      new Set(['task.ended']),
    );
    const ended = page.locator('tr[data-event-type="task.ended"]', { hasText: task.task_id });
    await expect.poll(() => ended.textContent()).toContain(user.username);
    await expect.poll(() => ended.textContent()).toContain('agent 0');
    await screenshot(page, 'console-audit-filtered-1280');
    expect(await overflows(page)).toBe(false);
    expect(await tableScrolls(page)).toBe(false);
    await page.context().close();
  });

  test('the audit table at 390 px: rows wrap, details open in place, the page never scrolls sideways', async () => {
    // Long values: an agent with a long name registered from a metadata-document-like URL id.
    await addResource(await adminApi(tb), 'https://a-rather-long-resource-name.example.test/api/v1/mcp', ['x:read']);
    const page = await signIn(admin, '/admin/audit', 390);
    const rows = page.locator('tr[data-event-type]');
    await expect.poll(() => rows.count()).toBeGreaterThan(1);
    expect(await overflows(page)).toBe(false);
    expect(await tableScrolls(page)).toBe(false);
    // Details are collapsed until asked for; opening them does not widen the page either.
    const details = rows.first().locator('details');
    expect(await details.getAttribute('open')).toBeNull();
    await details.getByText('Details').click();
    expect(await details.getAttribute('open')).toBe('');
    expect(await overflows(page)).toBe(false);
    await screenshot(page, 'console-audit-390');
    await page.context().close();
  });
});
