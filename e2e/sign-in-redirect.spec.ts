import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createUser, startBroker, type TestBroker } from '../broker/test/fixtures.js';
import { launchChromium, screenshot } from './fixtures/chromium.js';

/**
 * The open-redirect check in a real browser: Chromium drops TAB and newlines from URLs, so a `next`
 * of `/<TAB>/evil.example` would become `//evil.example` if it reached a Location header as it is.
 */

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

describe('next after sign-in in Chromium', () => {
  test('signing in through the real form with next=/%09/evil.example stays on Errand', async () => {
    const user = await createUser(tb);
    const home = `${tb.url}/admin`;
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const requested: string[] = [];
      const navigated: string[] = [];
      page.on('request', (req) => requested.push(req.url()));
      page.on('framenavigated', (frame) => {
        if (frame === page.mainFrame()) navigated.push(frame.url());
      });

      await page.goto(`${tb.url}/signin?next=/%09/evil.example`);
      await page.getByLabel('Username').fill(user.username);
      await page.getByLabel('Password').fill(user.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      // The hostile next falls back to the home page; wait for it, then look at where the browser went.
      await page.waitForURL(home, { timeout: 10_000 }).catch(() => undefined);
      await screenshot(page, 'sign-in-hostile-next');
      expect.soft(page.url()).toBe(home);
      await expect.soft(page.getByRole('button', { name: 'Sign out' }).isVisible()).resolves.toBe(true);

      // Already signed in: the same link sends the browser straight on, still to Errand's home page.
      // (evil.example does not resolve, so a redirect there would fail the navigation.)
      const again = await page.goto(`${tb.url}/signin?next=/%09/evil.example`).catch((err: Error) => err);
      expect.soft(again).not.toBeInstanceOf(Error);
      expect.soft(page.url()).toBe(home);

      expect(requested.filter((u) => new URL(u).hostname.endsWith('evil.example'))).toEqual([]);
      expect(navigated.filter((u) => new URL(u).origin !== new URL(tb.url).origin)).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
