import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Browser, createUser, hiddenInput, startBroker, type TestBroker } from '../../broker/test/fixtures.js';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startBroker({ ERRAND_SIGNIN_MAX_FAILURES: '3', ERRAND_SIGNIN_LOCKOUT: '600' });
});
afterAll(() => tb.close());

async function signIn(browser: Browser, username: string, password: string, next = '/admin') {
  const page = await browser.fetch(`${tb.url}/signin?next=${encodeURIComponent(next)}`);
  const csrf = hiddenInput(await page.text(), '_csrf');
  return browser.postForm(`${tb.url}/signin`, { username, password, _csrf: csrf, next });
}

describe('sign-in', () => {
  test('a local account signs in; the session cookie is HttpOnly and SameSite=Lax', async () => {
    const user = await createUser(tb);
    const browser = new Browser();
    const res = await signIn(browser, user.username, user.password);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin');
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('errand_session='))!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    const home = await browser.fetch(`${tb.url}/admin`);
    expect(home.status).toBe(200);
    expect(await home.text()).toContain(user.username);
  });

  test('a wrong password gets one generic message for unknown users and wrong passwords', async () => {
    const user = await createUser(tb);
    const wrong = await signIn(new Browser(), user.username, 'not-the-password');
    const unknown = await signIn(new Browser(), 'no-such-user', 'whatever');
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(await wrong.text()).toContain('The username or password is not correct.');
    expect(await unknown.text()).toContain('The username or password is not correct.');
  });

  test('after too many failures the account is locked, even for the right password, with a clear message', async () => {
    const user = await createUser(tb);
    for (let i = 0; i < 3; i++) await signIn(new Browser(), user.username, 'wrong');
    const res = await signIn(new Browser(), user.username, user.password);
    expect(res.status).toBe(423);
    expect(await res.text()).toMatch(/locked after too many failed sign-ins\. Try again in 10 minutes/);
    tb.clock.advance(601);
    expect((await signIn(new Browser(), user.username, user.password)).status).toBe(303);
  });

  test('a sign-in form posted without its CSRF value is refused', async () => {
    const user = await createUser(tb);
    const res = await new Browser().postForm(`${tb.url}/signin`, {
      username: user.username,
      password: user.password,
      _csrf: 'forged',
      next: '/admin',
    });
    expect(res.status).toBe(403);
    expect(res.headers.getSetCookie().some((c) => c.startsWith('errand_session='))).toBe(false);
  });

  test('next never leads off-site', async () => {
    const user = await createUser(tb);
    for (const next of ['//evil.example/x', 'https://evil.example/', '/\\evil.example']) {
      const res = await signIn(new Browser(), user.username, user.password, next);
      expect(res.headers.get('location')).toBe('/admin');
    }
  });

  test('sign-out ends the session', async () => {
    const user = await createUser(tb);
    const browser = new Browser();
    await signIn(browser, user.username, user.password);
    const home = await browser.fetch(`${tb.url}/admin`);
    const csrf = hiddenInput(await home.text(), '_csrf');
    expect((await browser.postForm(`${tb.url}/signout`, { _csrf: csrf })).status).toBe(303);
    expect((await browser.fetch(`${tb.url}/admin`)).status).toBe(303);
  });

  test('pages carry CSP, frame and referrer protections', async () => {
    const res = await fetch(`${tb.url}/signin`);
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });
});

describe('first administrator', () => {
  test('the one-time setup link creates the first admin once and never again', async () => {
    const fresh = await startBroker();
    try {
      const link = await fresh.broker.bootstrapLink();
      expect(link).toMatch(/\/setup\?token=/);
      const browser = new Browser();
      const form = await browser.fetch(link!);
      expect(form.status).toBe(200);
      const token = hiddenInput(await form.text(), 'token');
      const weak = await browser.postForm(`${fresh.url}/setup`, {
        token,
        username: 'root',
        password: 'short',
        confirm: 'short',
      });
      expect(weak.status).toBe(400);
      const ok = await browser.postForm(`${fresh.url}/setup`, {
        token,
        username: 'root',
        password: 'a-long-enough-password',
        confirm: 'a-long-enough-password',
      });
      expect(ok.status).toBe(303);
      expect(await (await browser.fetch(`${fresh.url}/admin`)).text()).toContain('root');
      const again = await new Browser().postForm(`${fresh.url}/setup`, {
        token,
        username: 'root2',
        password: 'a-long-enough-password',
        confirm: 'a-long-enough-password',
      });
      expect(again.status).toBe(400);
      expect((await fetch(link!)).status).toBe(404);
      expect(await fresh.broker.bootstrapLink()).toBeNull();
      expect((await fresh.broker.deps.users.list()).map((u) => u.username)).toEqual(['root']);
    } finally {
      await fresh.close();
    }
  });

  test('behind https the session cookie is __Host- prefixed and Secure', async () => {
    const secure = await startBroker({ ERRAND_ISSUER: 'https://errand.example.test' });
    try {
      const user = await createUser(secure);
      const browser = new Browser();
      const page = await browser.fetch(
        `http://127.0.0.1:${new URL(secure.broker.deps.config.issuer).port || secure.broker.deps.config.port}/signin`,
      );
      const csrf = hiddenInput(await page.text(), '_csrf');
      const res = await browser.postForm(`http://127.0.0.1:${secure.broker.deps.config.port}/signin`, {
        username: user.username,
        password: user.password,
        _csrf: csrf,
        next: '/admin',
      });
      const cookie = res.headers.getSetCookie().find((c) => c.startsWith('__Host-errand_session='));
      expect(cookie).toBeDefined();
      expect(cookie).toMatch(/Secure/);
      expect(cookie).toMatch(/Path=\//);
    } finally {
      await secure.close();
    }
  });
});
