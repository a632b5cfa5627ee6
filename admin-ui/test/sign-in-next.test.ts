import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Browser, createUser, hiddenInput, startBroker, type TestBroker } from '../../broker/test/fixtures.js';

/**
 * `next` after sign-in: only a path on Errand's own origin is followed, whatever the browser would
 * make of the value (browsers drop TAB, LF and CR from URLs and read `\` as `/`). Hostile values fall
 * back to the home page, and none of them may cause a server error.
 */

let tb: TestBroker;
let origin: string;
let address = 0;
beforeAll(async () => {
  // One trusted proxy hop, so that each sign-in below comes from its own address and the
  // per-address sign-in limit does not get in the way of the many attempts.
  tb = await startBroker({ ERRAND_TRUST_PROXY: '1' });
  origin = new URL(tb.url).origin;
});
afterAll(() => tb.close());

/** Values of `next` as the server sees them, after the query string or form is decoded. */
const HOSTILE = [
  '/\t/evil.example',
  '/\t/evil.example/phish',
  '/\n/evil.example',
  '/\r/evil.example',
  '/\r\n/evil.example',
  '/\t\t/evil.example',
  '/\x0b/evil.example',
  '/\x00/evil.example',
  '/\x7f/evil.example',
  '\t//evil.example',
  ' //evil.example',
  '//evil.example',
  '//evil.example/x',
  '///evil.example',
  '/\\evil.example',
  '/\\/evil.example',
  '\\\\evil.example',
  '/.//evil.example',
  '/%2e//evil.example',
  '/a/..//evil.example',
  'https://evil.example',
  'http://evil.example/admin',
  'http:evil.example',
  'http:/evil.example',
  'javascript:alert(1)',
  'JaVaScRiPt:alert(1)',
  'data:text/html,<script>alert(1)</script>',
  'evil.example',
  `${'/x'.repeat(2000)}`,
];

/** Query strings exactly as the attacker would write them in a link (percent-encoded by hand). */
const RAW_QUERIES = [
  'next=/%09/evil.example',
  'next=/%0a/evil.example',
  'next=/%0d/evil.example',
  'next=/%0d%0aSet-Cookie:%20x=1',
  'next=/%5C/evil.example',
  'next=%2F%2Fevil.example',
  'next=/%09%09/evil.example',
];

/** Asserts a redirect that stays on Errand's origin and is a plain path. */
function expectSameOrigin(res: Response, label: string) {
  expect(res.status, label).toBe(303);
  const location = res.headers.get('location') ?? '';
  expect(location, label).toMatch(/^\/(?![/\\])/);
  // Printable ASCII only, no backslash: nothing a browser would drop or rewrite.
  expect(location, label).toMatch(/^[!-[\]-~]*$/);
  expect(new URL(location, tb.url).origin, label).toBe(origin);
}

/** A browser signed in through the real form (from its own address). */
async function signedIn(): Promise<Browser> {
  const user = await createUser(tb);
  const browser = new Browser();
  const res = await postSignIn(browser, user, '/admin');
  expect(res.status).toBe(303);
  return browser;
}

async function postSignIn(browser: Browser, user: { username: string; password: string }, next: string) {
  const page = await browser.fetch(`${tb.url}/signin`);
  const csrf = hiddenInput(await page.text(), '_csrf');
  address += 1;
  return browser.fetch(`${tb.url}/signin`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-forwarded-for': `10.${Math.floor(address / 250)}.${address % 250}.1`,
    },
    body: new URLSearchParams({ username: user.username, password: user.password, _csrf: csrf, next }).toString(),
  });
}

describe('next after sign-in never leads off-site', () => {
  test('GET /signin when already signed in redirects to a same-origin path for every hostile next', async () => {
    const browser = await signedIn();
    for (const next of HOSTILE) {
      expectSameOrigin(await browser.fetch(`${tb.url}/signin?next=${encodeURIComponent(next)}`), JSON.stringify(next));
    }
    for (const query of RAW_QUERIES) {
      expectSameOrigin(await browser.fetch(`${tb.url}/signin?${query}`), query);
    }
  });

  test('POST /signin redirects to a same-origin path for every hostile next, after a genuine sign-in', async () => {
    const user = await createUser(tb);
    for (const next of HOSTILE) {
      const res = await postSignIn(new Browser(), user, next);
      expectSameOrigin(res, JSON.stringify(next));
      expect(res.headers.getSetCookie().some((c) => c.startsWith('errand_session='))).toBe(true);
    }
  }, 60_000);

  test('the sign-in form carries only a same-origin path in its hidden next field', async () => {
    for (const query of [...RAW_QUERIES, ...HOSTILE.map((n) => `next=${encodeURIComponent(n)}`)]) {
      const res = await fetch(`${tb.url}/signin?${query}`);
      expect(res.status, query).toBe(200);
      const next = hiddenInput(await res.text(), 'next');
      expect(next, query).toMatch(/^\/(?![/\\])/);
      expect(new URL(next, tb.url).origin, query).toBe(origin);
    }
  });

  test('a same-origin path, with its query and fragment, is kept', async () => {
    const user = await createUser(tb);
    const res = await postSignIn(new Browser(), user, '/my/requests?done=approved#top');
    expect(res.headers.get('location')).toBe('/my/requests?done=approved#top');
    const browser = await signedIn();
    const again = await browser.fetch(`${tb.url}/signin?next=${encodeURIComponent('/my/tasks')}`);
    expect(again.headers.get('location')).toBe('/my/tasks');
    // A percent-encoded TAB or backslash stays encoded: it is a path segment, not a way off-site.
    const encoded = await browser.fetch(`${tb.url}/signin?next=${encodeURIComponent('/%09/evil.example')}`);
    expectSameOrigin(encoded, 'encoded');
  });
});
