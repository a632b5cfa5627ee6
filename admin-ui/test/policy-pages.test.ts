import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Browser, createUser, hiddenInput, startBroker, type TestBroker } from '../../broker/test/fixtures.js';

/**
 * The policy pages refuse what they must (README "Organisation policies"): administrators only, a
 * CSRF token on every form; and a person's groups form saves through the same service as the API.
 */

let tb: TestBroker;
beforeAll(async () => {
  tb = await startBroker();
});
afterAll(() => tb.close());

const POLICY = `@id("default")
permit (principal, action in Errand::Action::"delegated", resource);
`;

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

/** A saved draft, made through the store's owner service (setup, not the behaviour under test). */
async function draft(): Promise<number> {
  const admin = await createUser(tb, 'admin');
  const { browser, csrf } = await signedIn(admin);
  const res = await browser.postForm(`${tb.url}/admin/policies/new`, {
    _csrf: csrf,
    text: POLICY,
    tests: '[]',
    intent: 'save',
  });
  expect(res.status).toBe(303);
  const [v] = await tb.broker.deps.policyStore.list(1);
  return v!.version;
}

describe('the policy pages', () => {
  test('a person who is not an administrator gets 403 on every page and form, and nothing changes', async () => {
    const version = await draft();
    const person = await createUser(tb);
    const { browser, csrf } = await signedIn(person);
    for (const path of [
      '/admin/policies',
      '/admin/policies/new',
      `/admin/policies/${version}`,
      '/admin/policies/shadow',
      '/admin/policies/schema',
      '/admin/access',
      `/admin/users/${person.id}/groups`,
    ]) {
      expect((await browser.fetch(`${tb.url}${path}`)).status, path).toBe(403);
    }
    const posts: [string, Record<string, string>][] = [
      ['/admin/policies/new', { text: POLICY, tests: '[]', intent: 'save' }],
      [`/admin/policies/${version}/status`, { status: 'published' }],
      [`/admin/users/${person.id}/groups`, { groups: 'admins' }],
    ];
    const before = (await tb.broker.deps.policyStore.list()).length;
    for (const [path, form] of posts) {
      expect((await browser.postForm(`${tb.url}${path}`, { _csrf: csrf, ...form })).status, path).toBe(403);
    }
    expect((await tb.broker.deps.policyStore.list()).length).toBe(before);
    expect((await tb.broker.deps.policyStore.heads()).published).toBeNull();
    expect(await tb.broker.deps.policyStore.groupsOf(person.id)).toEqual([]);
  });

  test('an administrator without the CSRF token is refused on every form', async () => {
    const version = await draft();
    const admin = await createUser(tb, 'admin');
    const target = await createUser(tb);
    const { browser } = await signedIn(admin);
    const before = (await tb.broker.deps.policyStore.list()).length;
    for (const [path, form] of [
      ['/admin/policies/new', { text: POLICY, tests: '[]', intent: 'save' }],
      [`/admin/policies/${version}/status`, { status: 'shadow' }],
      [`/admin/users/${target.id}/groups`, { groups: 'finance' }],
    ] as const) {
      expect((await browser.postForm(`${tb.url}${path}`, form)).status, path).toBe(403);
      expect((await browser.postForm(`${tb.url}${path}`, { ...form, _csrf: 'forged' })).status, path).toBe(403);
    }
    expect((await tb.broker.deps.policyStore.list()).length).toBe(before);
    expect((await tb.broker.deps.policyStore.heads()).shadow).toBeNull();
    expect(await tb.broker.deps.policyStore.groupsOf(target.id)).toEqual([]);
  });

  test("an administrator sets a person's groups on their page; bad Cedar is shown, not saved", async () => {
    const admin = await createUser(tb, 'admin');
    const target = await createUser(tb);
    const { browser, csrf } = await signedIn(admin);
    const saved = await browser.postForm(`${tb.url}/admin/users/${target.id}/groups`, {
      _csrf: csrf,
      groups: 'finance\r\n  staff \r\n\r\nfinance',
    });
    expect(saved.status).toBe(303);
    expect(await tb.broker.deps.policyStore.groupsOf(target.id, 'local')).toEqual(['finance', 'staff']);
    const page = await (await browser.fetch(`${tb.url}/admin/users/${target.id}/groups`)).text();
    expect(page).toContain('finance\nstaff');

    const before = (await tb.broker.deps.policyStore.list()).length;
    const bad = await browser.postForm(`${tb.url}/admin/policies/new`, {
      _csrf: csrf,
      text: `${POLICY}\n@id("broken")\nforbid (principal, action, resource) when { principal.nope };`,
      tests: '[]',
      intent: 'save',
    });
    expect(bad.status).toBe(400);
    const html = await bad.text();
    // Cedar's problem, listed by policy id above the text kept as typed.
    const problems = /data-check-problems[^>]*>([\s\S]*?)<\/div>/.exec(html)?.[1] ?? '';
    expect(problems).toMatch(/<li><code>broken<\/code>: [^<]*nope/);
    expect((await tb.broker.deps.policyStore.list()).length).toBe(before);
    const badJson = await browser.postForm(`${tb.url}/admin/policies/new`, {
      _csrf: csrf,
      text: POLICY,
      tests: '[{',
      intent: 'check',
    });
    expect(badJson.status).toBe(400);
    expect(await badJson.text()).toContain('Tests: not valid JSON');
  });
});
