import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Browser, createUser, hiddenInput, startBroker, type TestBroker } from '../../broker/test/fixtures.js';

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
  const home = await (await browser.fetch(`${tb.url}/admin`)).text();
  return { browser, csrf: hiddenInput(home, '_csrf') };
}

describe('the Resources and People pages refuse what they must', () => {
  test('a person who is not an administrator gets 403 on every new admin page and action', async () => {
    const person = await createUser(tb);
    const other = await createUser(tb);
    const { browser, csrf } = await signedIn(person);
    for (const path of ['/admin/resources', `/admin/users/${other.id}/disable`, `/admin/users/${other.id}/password`]) {
      expect((await browser.fetch(`${tb.url}${path}`)).status, path).toBe(403);
    }
    const posts: [string, Record<string, string>][] = [
      ['/admin/resources', { url: 'https://x.example.test', name: 'x', scopes: 'x:read' }],
      [`/admin/users/${other.id}/disable`, {}],
      [`/admin/users/${person.id}/role`, { role: 'admin' }],
      [`/admin/users/${other.id}/password`, { password: 'taken-over-password-1' }],
    ];
    for (const [path, form] of posts) {
      expect((await browser.postForm(`${tb.url}${path}`, { _csrf: csrf, ...form })).status, path).toBe(403);
    }
    expect((await tb.broker.deps.users.get(other.id))?.disabledAt).toBeNull();
    expect((await tb.broker.deps.users.get(person.id))?.role).toBe('user');
    expect(await tb.broker.deps.clients.getResource('https://x.example.test')).toBeNull();
  });

  test('the confirmation page changes nothing; the POST without its CSRF token is refused', async () => {
    const admin = await createUser(tb, 'admin');
    const target = await createUser(tb);
    const { browser, csrf } = await signedIn(admin);
    const confirm = await browser.fetch(`${tb.url}/admin/users/${target.id}/disable`);
    expect(confirm.status).toBe(200);
    expect(await confirm.text()).toContain(`Disable ${target.username}?`);
    expect((await tb.broker.deps.users.get(target.id))?.disabledAt).toBeNull();
    const forged = await browser.postForm(`${tb.url}/admin/users/${target.id}/disable`, {});
    expect(forged.status).toBe(403);
    expect((await tb.broker.deps.users.get(target.id))?.disabledAt).toBeNull();
    const done = await browser.postForm(`${tb.url}/admin/users/${target.id}/disable`, { _csrf: csrf });
    expect(done.status).toBe(303);
    expect((await tb.broker.deps.users.get(target.id))?.disabledAt).not.toBeNull();
  });

  test('the last active administrator cannot disable or demote themselves from the page', async () => {
    const world = await startBroker();
    try {
      const admin = await createUser(world, 'admin');
      const browser = new Browser();
      const page = await browser.fetch(`${world.url}/signin`);
      await browser.postForm(`${world.url}/signin`, {
        username: admin.username,
        password: admin.password,
        _csrf: hiddenInput(await page.text(), '_csrf'),
        next: '/admin',
      });
      const csrf = hiddenInput(await (await browser.fetch(`${world.url}/admin`)).text(), '_csrf');
      for (const [path, form] of [
        [`/admin/users/${admin.id}/disable`, {}],
        [`/admin/users/${admin.id}/role`, { role: 'user' }],
      ] as const) {
        const res = await browser.postForm(`${world.url}${path}`, { _csrf: csrf, ...form });
        expect(res.status, path).toBe(409);
        expect(await res.text()).toContain('is the last active administrator');
      }
      expect(await world.broker.deps.users.get(admin.id)).toMatchObject({ role: 'admin', disabledAt: null });
    } finally {
      await world.close();
    }
  });

  test('changing one’s own password needs the current one and matching new ones', async () => {
    const person = await createUser(tb);
    const { browser, csrf } = await signedIn(person);
    const wrong = await browser.postForm(`${tb.url}/my/password`, {
      _csrf: csrf,
      current_password: 'not-the-current-one',
      new_password: 'a-new-password-123',
      confirm: 'a-new-password-123',
    });
    expect(wrong.status).toBe(403);
    expect(await wrong.text()).toContain('the current password is not correct');
    const differ = await browser.postForm(`${tb.url}/my/password`, {
      _csrf: csrf,
      current_password: person.password,
      new_password: 'a-new-password-123',
      confirm: 'a-new-password-124',
    });
    expect(differ.status).toBe(400);
    const noCsrf = await browser.postForm(`${tb.url}/my/password`, {
      current_password: person.password,
      new_password: 'a-new-password-123',
      confirm: 'a-new-password-123',
    });
    expect(noCsrf.status).toBe(403);
    const ok = await browser.postForm(`${tb.url}/my/password`, {
      _csrf: csrf,
      current_password: person.password,
      new_password: 'a-new-password-123',
      confirm: 'a-new-password-123',
    });
    expect(ok.status).toBe(303);
  });

  test('deleting a built-in resource from the page shows why it was refused', async () => {
    const admin = await createUser(tb, 'admin');
    const { browser, csrf } = await signedIn(admin);
    const builtIn = await tb.broker.deps.clients.getResource(`${tb.url}/mcp`);
    const res = await browser.postForm(`${tb.url}/admin/resources/${builtIn!.id}/delete`, { _csrf: csrf });
    expect(res.status).toBe(409);
    expect(await res.text()).toContain('one of Errand&#39;s own endpoints');
  });
});
