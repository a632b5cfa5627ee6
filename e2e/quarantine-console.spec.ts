import * as oauth from 'oauth4webapi';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  addResource,
  adminApi,
  createUser,
  discover,
  insecure,
  startBroker,
  type TestBroker,
} from '../broker/test/fixtures.js';
import { launchChromium, screenshot } from './fixtures/chromium.js';

/**
 * Quarantine of new registrations in Chromium (README "Quarantine of new registrations and
 * findings"): an MCP client registers itself, the administrator finds it on the Findings page, opens
 * its page and clicks Admit; from then on the client is no longer refused the resource.
 */

const NOTES = 'https://notes.example.test/mcp';
const REDIRECT = 'http://127.0.0.1:53682/callback';

let tb: TestBroker;
let browser: Browser;
let admin: { username: string; password: string; id: string };

beforeAll(async () => {
  tb = await startBroker();
  browser = await launchChromium();
  admin = await createUser(tb, 'admin');
  await addResource(await adminApi(tb), NOTES, ['notes:read']);
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

/** What the authorization endpoint answers the client for NOTES: its error, or the consent page. */
async function authorizeOutcome(clientId: string): Promise<string> {
  const url = new URL(`${tb.url}/authorize`);
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: REDIRECT,
    response_type: 'code',
    code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
    code_challenge_method: 'S256',
    scope: 'notes:read',
    resource: NOTES,
    state: 's',
  }).toString();
  const res = await fetch(url, { redirect: 'manual' });
  const location = new URL(res.headers.get('location') ?? '/', tb.url);
  return location.pathname === '/authorize/consent' ? 'consent' : (location.searchParams.get('error') ?? 'none');
}

test('the administrator sees the self-registered client under Findings and admits it from its page', async () => {
  const as = await discover(tb);
  const res = await oauth.dynamicClientRegistrationRequest(
    as,
    { client_name: 'Quarantined Desktop Client', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' },
    insecure,
  );
  const { client_id: clientId } = await oauth.processDynamicClientRegistrationResponse(res);
  expect(await authorizeOutcome(clientId)).toBe('invalid_target');

  const page = await signIn('/admin/findings');
  await page.getByRole('heading', { name: /Awaiting admission/ }).waitFor();
  const row = page.locator(`tr[data-client-id="${clientId}"]`);
  await expect(row.getByRole('link', { name: 'Quarantined Desktop Client' }).isVisible()).resolves.toBe(true);
  await screenshot(page, 'quarantine-findings');

  await row.getByRole('link', { name: 'Quarantined Desktop Client' }).click();
  await page.waitForURL(`${tb.url}/admin/clients/${clientId}`);
  await page.getByRole('heading', { name: /^Quarantined since/ }).waitFor();
  await page.getByRole('button', { name: 'Admit Quarantined Desktop Client' }).click();
  await page.waitForURL(`${tb.url}/admin/clients/${clientId}?done=admitted`);
  await expect(page.getByRole('status').textContent()).resolves.toMatch(/Admitted/);
  expect(await page.getByRole('button', { name: 'Admit Quarantined Desktop Client' }).count()).toBe(0);
  await screenshot(page, 'quarantine-admitted');

  expect(await authorizeOutcome(clientId)).toBe('consent');
  const [event] = await tb.broker.deps.audit.query({ type: 'client.admitted', clientId, limit: 1 });
  expect(event).toMatchObject({ userId: admin.id, reason: 'admin', details: { address: '127.0.0.1' } });

  // The Findings page no longer lists it.
  await page.goto(`${tb.url}/admin/findings`);
  expect(await page.locator(`tr[data-client-id="${clientId}"]`).count()).toBe(0);
  await page.context().close();
});
