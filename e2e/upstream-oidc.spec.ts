import { createServer, type Server } from 'node:http';
import { eq } from 'drizzle-orm';
import Provider from 'oidc-provider';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createUser, freePort, startBroker, type TestBroker } from '../broker/test/fixtures.js';
import { userIdentities, users } from '../db/schema/index.js';
import { launchChromium, screenshot } from './fixtures/chromium.js';

/**
 * Sign-in federated to a real OpenID Connect provider (oidc-provider with its development login and
 * consent pages), driven through Chromium: Errand's sign-in page → the provider → back to Errand.
 */

const CLIENT_ID = 'errand-e2e';
const CLIENT_SECRET = 'errand-e2e-client-secret-0123456789';
const DISPLAY_NAME = 'Example ID';

let tb: TestBroker;
let provider: Server;
let providerIssuer: string;
let chromium: Browser;

beforeAll(async () => {
  const providerPort = await freePort();
  providerIssuer = `http://127.0.0.1:${providerPort}`;
  tb = await startBroker({
    ERRAND_OIDC_ISSUER: providerIssuer,
    ERRAND_OIDC_CLIENT_ID: CLIENT_ID,
    ERRAND_OIDC_CLIENT_SECRET: CLIENT_SECRET,
    ERRAND_OIDC_DISPLAY_NAME: DISPLAY_NAME,
    ERRAND_FETCH_ALLOW_PRIVATE: 'true',
  });
  const oidc = new Provider(providerIssuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${tb.url}/signin/oidc/callback`],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    // The development login form accepts any login; it becomes the account's subject.
    findAccount: (_ctx, sub) => ({
      accountId: sub,
      claims: () => ({
        sub,
        email: `${sub}@id.example`,
        email_verified: true,
        preferred_username: sub,
        name: `Person ${sub}`,
      }),
    }),
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    // Put the profile claims in the ID token, as most providers do, rather than only in UserInfo.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['errand-e2e-provider-cookie-key'] },
  });
  provider = createServer(oidc.callback());
  await new Promise<void>((resolve) => provider.listen(providerPort, '127.0.0.1', resolve));
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  if (provider) {
    provider.closeAllConnections();
    await new Promise<void>((resolve) => provider.close(() => resolve()));
  }
  await tb?.close();
});

/** Errand's sign-in page → "Sign in with …" → the provider's login and consent forms. */
async function signInThroughProvider(page: Page, login: string, shots?: string): Promise<void> {
  await page.goto(`${tb.url}/signin?next=${encodeURIComponent('/admin')}`);
  const button = page.getByRole('link', { name: `Sign in with ${DISPLAY_NAME}` });
  await expect(button.isVisible()).resolves.toBe(true);
  if (shots) await screenshot(page, shots);
  await button.click();
  await page.waitForURL((url) => url.origin === providerIssuer);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password will do');
  if (shots) await screenshot(page, `${shots}-provider-login`);
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
}

/** Whether the page's top bar shows `username` as the signed-in person, beside "Sign out". */
async function signedInAs(page: Page, username: string): Promise<boolean> {
  const bar = page.getByRole('banner');
  return (
    (await bar.getByRole('button', { name: 'Sign out' }).isVisible()) &&
    (await bar.getByText(username, { exact: true }).isVisible())
  );
}

async function identityLinks(subject: string) {
  const rows = await tb.broker.deps.db.q.select().from(userIdentities);
  return rows.filter((r) => r.issuer === providerIssuer && r.subject === subject);
}

async function sessionCookie(context: BrowserContext) {
  return (await context.cookies(tb.url)).find((c) => c.name === 'errand_session');
}

describe('sign-in through an upstream OpenID Connect provider', () => {
  test('the first sign-in creates and links a user; a second sign-in reuses it', async () => {
    const first = await chromium.newContext();
    try {
      const page = await first.newPage();
      await signInThroughProvider(page, 'ada.lovelace', 'upstream-oidc-signin');
      await page.waitForURL(`${tb.url}/admin`);
      await expect(signedInAs(page, 'ada.lovelace')).resolves.toBe(true);
      await screenshot(page, 'upstream-oidc-signed-in');
      expect((await sessionCookie(first))?.httpOnly).toBe(true);
    } finally {
      await first.close();
    }

    const links = await identityLinks('ada.lovelace');
    expect(links).toHaveLength(1);
    const user = await tb.broker.deps.users.get(links[0]!.userId);
    expect(user).toMatchObject({ username: 'ada.lovelace', role: 'user', displayName: 'Person ada.lovelace' });
    expect((await tb.broker.deps.users.findByUsername('ada.lovelace'))?.passwordHash).toBeNull();

    // A new browser: the provider asks again, and Errand recognises the same upstream account.
    const second = await chromium.newContext();
    try {
      const page = await second.newPage();
      await signInThroughProvider(page, 'ada.lovelace');
      await page.waitForURL(`${tb.url}/admin`);
      await expect(signedInAs(page, 'ada.lovelace')).resolves.toBe(true);
    } finally {
      await second.close();
    }
    expect(await identityLinks('ada.lovelace')).toEqual(links);
    expect((await tb.broker.deps.users.list()).filter((u) => u.username.startsWith('ada.lovelace'))).toHaveLength(1);
    // No token, code or secret reaches the logs.
    expect(tb.logs.join('\n')).not.toContain(CLIENT_SECRET);
  });

  test('a local account with the same name is never taken over: the new user gets a suffix', async () => {
    await createUser(tb, 'admin', 'grace');
    const context = await chromium.newContext();
    try {
      const page = await context.newPage();
      await signInThroughProvider(page, 'grace');
      await page.waitForURL(`${tb.url}/admin`);
      await expect(signedInAs(page, 'grace-2')).resolves.toBe(true);
    } finally {
      await context.close();
    }
    const [link] = await identityLinks('grace');
    expect(await tb.broker.deps.users.get(link!.userId)).toMatchObject({ username: 'grace-2', role: 'user' });
  });

  test('a disabled user cannot sign in through the provider', async () => {
    const context = await chromium.newContext();
    try {
      const page = await context.newPage();
      await signInThroughProvider(page, 'alan');
      await page.waitForURL(`${tb.url}/admin`);
      await context.clearCookies();
      const [link] = await identityLinks('alan');
      await tb.broker.deps.db.write((tx) =>
        tx.update(users).set({ disabledAt: tb.clock.now() }).where(eq(users.id, link!.userId)),
      );
      const answered = page.waitForResponse((res) => new URL(res.url()).pathname === '/signin/oidc/callback');
      await signInThroughProvider(page, 'alan');
      expect((await answered).status()).toBe(403);
      await expect(page.getByText('This account is disabled').isVisible()).resolves.toBe(true);
      expect(await sessionCookie(context)).toBeUndefined();
    } finally {
      await context.close();
    }
  });

  test('a callback with a tampered state shows an error page and starts no session', async () => {
    const context = await chromium.newContext();
    try {
      const page = await context.newPage();
      // Alter the state Errand sends to the provider, which echoes it back in the callback.
      let sentState = '';
      await page.route(
        (url) => url.origin === tb.url && url.pathname === '/signin/oidc',
        async (route) => {
          const response = await route.fetch({ maxRedirects: 0 });
          const location = new URL(response.headers().location ?? '');
          sentState = location.searchParams.get('state') ?? '';
          location.searchParams.set('state', `${sentState}x`);
          await route.fulfill({ response, headers: { ...response.headers(), location: location.toString() } });
        },
      );
      const isCallback = (url: URL) => url.origin === tb.url && url.pathname === '/signin/oidc/callback';
      const answered = page.waitForResponse((res) => isCallback(new URL(res.url())));
      await signInThroughProvider(page, 'mallory');
      const res = await answered;
      expect(sentState).not.toBe('');
      expect(new URL(res.url()).searchParams.get('state')).toBe(`${sentState}x`);
      expect(res.status()).toBe(400);
      await page.waitForLoadState();
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Sign-in did not work');
      await expect(page.getByText('does not belong to this sign-in').isVisible()).resolves.toBe(true);
      await screenshot(page, 'upstream-oidc-tampered-state');
      expect(await sessionCookie(context)).toBeUndefined();

      // The attempt is spent: even the answer with the right state is refused now.
      const replay = new URL(res.url());
      replay.searchParams.set('state', sentState);
      const again = await page.goto(replay.toString());
      expect(again?.status()).toBe(400);
      await expect(page.getByText('took too long or was started in another browser').isVisible()).resolves.toBe(true);
      expect(await sessionCookie(context)).toBeUndefined();
      expect(await identityLinks('mallory')).toHaveLength(0);
      expect(tb.logs.join('\n')).not.toContain(replay.searchParams.get('code') ?? 'no code');
    } finally {
      await context.close();
    }
  });
});
