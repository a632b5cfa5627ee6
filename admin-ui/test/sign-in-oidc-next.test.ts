import { createServer, type Server } from 'node:http';
import Provider from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Browser, createUser, freePort, startBroker, type TestBroker } from '../../broker/test/fixtures.js';

/**
 * `next` through single sign-on: `GET /signin/oidc?next=` keeps only a same-origin path, both when
 * already signed in and across the round trip to a real OpenID Connect provider (oidc-provider with
 * its development login and consent forms, driven over plain HTTP).
 */

const CLIENT_ID = 'errand-next-test';
const CLIENT_SECRET = 'errand-next-test-client-secret-0123456789';

let tb: TestBroker;
let origin: string;
let provider: Server;
let providerIssuer: string;

beforeAll(async () => {
  const providerPort = await freePort();
  providerIssuer = `http://127.0.0.1:${providerPort}`;
  tb = await startBroker({
    ERRAND_OIDC_ISSUER: providerIssuer,
    ERRAND_OIDC_CLIENT_ID: CLIENT_ID,
    ERRAND_OIDC_CLIENT_SECRET: CLIENT_SECRET,
    ERRAND_FETCH_ALLOW_PRIVATE: 'true',
  });
  origin = new URL(tb.url).origin;
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
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub, preferred_username: sub }) }),
    claims: { openid: ['sub'], profile: ['preferred_username'] },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['errand-next-test-provider-cookie-key'] },
  });
  provider = createServer(oidc.callback());
  await new Promise<void>((resolve) => provider.listen(providerPort, '127.0.0.1', resolve));
});

afterAll(async () => {
  if (provider) {
    provider.closeAllConnections();
    await new Promise<void>((resolve) => provider.close(() => resolve()));
  }
  await tb?.close();
});

const HOSTILE = [
  '/\t/evil.example',
  '/\n/evil.example',
  '/\r\n/evil.example',
  '//evil.example',
  '/\\evil.example',
  '/.//evil.example',
  'https://evil.example/',
  'javascript:alert(1)',
];

function expectSameOrigin(res: Response, label: string) {
  expect(res.status, label).toBe(303);
  const location = res.headers.get('location') ?? '';
  expect(location, label).toMatch(/^\/(?![/\\])/);
  // Printable ASCII only, no backslash: nothing a browser would drop or rewrite.
  expect(location, label).toMatch(/^[!-[\]-~]*$/);
  expect(new URL(location, tb.url).origin, label).toBe(origin);
}

/** The action and fields of the first form on a provider page. */
function formOf(html: string): { action: string; fields: Record<string, string> } {
  const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
  if (!action) throw new Error(`no form on the provider page: ${html.slice(0, 200)}`);
  const fields: Record<string, string> = {};
  for (const m of html.matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) {
    fields[m[1]!] = m[2]!;
  }
  return { action, fields };
}

/**
 * Starts a federated sign-in at Errand with `next`, signs in and consents at the provider, and
 * returns Errand's answer to the callback.
 */
async function signInThroughProvider(next: string, login: string): Promise<Response> {
  const browser = new Browser();
  const start = await browser.fetch(`${tb.url}/signin/oidc?next=${encodeURIComponent(next)}`);
  expect(start.status, JSON.stringify(next)).toBe(302);
  let url = new URL(start.headers.get('location') ?? '', tb.url);
  expect(url.origin).toBe(providerIssuer);
  for (let step = 0; step < 12; step++) {
    if (url.origin === origin) return browser.fetch(url.href);
    const res = await browser.fetch(url.href);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location') ?? '', url);
      continue;
    }
    // The provider's login form (any login is accepted), then its consent form.
    const html = await res.text();
    const form = formOf(html);
    const fields = html.includes('name="login"')
      ? { ...form.fields, login, password: 'any password will do' }
      : form.fields;
    const posted = await browser.postForm(new URL(form.action, url).href, fields);
    url = new URL(posted.headers.get('location') ?? '', url);
  }
  throw new Error('the round trip through the provider did not come back to Errand');
}

describe('next through single sign-on never leads off-site', () => {
  test('GET /signin/oidc when already signed in redirects to a same-origin path for every hostile next', async () => {
    const user = await createUser(tb);
    const browser = new Browser();
    const res = await browser.fetch(`${tb.url}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: user.username, password: user.password }),
    });
    expect(res.status).toBe(200);
    for (const next of HOSTILE) {
      const answer = await browser.fetch(`${tb.url}/signin/oidc?next=${encodeURIComponent(next)}`);
      expectSameOrigin(answer, JSON.stringify(next));
    }
    for (const query of ['next=/%09/evil.example', 'next=/%0a/evil.example', 'next=/%0d/evil.example']) {
      expectSameOrigin(await browser.fetch(`${tb.url}/signin/oidc?${query}`), query);
    }
  });

  test('after the round trip to the provider, a hostile next lands on the home page', async () => {
    for (const [i, next] of HOSTILE.entries()) {
      const res = await signInThroughProvider(next, `fed-hostile-${i}`);
      expectSameOrigin(res, JSON.stringify(next));
      expect(res.headers.get('location')).toBe('/admin');
    }
  });

  test('after the round trip to the provider, a same-origin next is kept', async () => {
    const res = await signInThroughProvider('/my/tasks?view=tree', 'fed-kept');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/my/tasks?view=tree');
  });
});
