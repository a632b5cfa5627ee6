import { createServer, type Server } from 'node:http';
import Provider from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Browser, freePort, startBroker, type TestBroker } from '../../broker/test/fixtures.js';

/**
 * Groups for policies from single sign-on (README "Organisation policies"): the claim named by
 * ERRAND_OIDC_GROUPS_CLAIM is copied into the person's `upstream` groups at every sign-in through a
 * real OpenID Connect provider (oidc-provider), replacing what the previous sign-in brought; the
 * administrator's `local` groups are left alone.
 */

const CLIENT_ID = 'errand-groups-test';
const CLIENT_SECRET = 'errand-groups-test-client-secret-0123456789';

let tb: TestBroker;
let origin: string;
let provider: Server;
let providerIssuer: string;
/** What the provider says about each account, changed between sign-ins. */
const accounts = new Map<string, Record<string, unknown>>();

beforeAll(async () => {
  const providerPort = await freePort();
  providerIssuer = `http://127.0.0.1:${providerPort}`;
  tb = await startBroker({
    ERRAND_OIDC_ISSUER: providerIssuer,
    ERRAND_OIDC_CLIENT_ID: CLIENT_ID,
    ERRAND_OIDC_CLIENT_SECRET: CLIENT_SECRET,
    ERRAND_OIDC_GROUPS_CLAIM: 'roles',
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
    findAccount: (_ctx, sub) => ({
      accountId: sub,
      claims: () => ({ sub, preferred_username: sub, ...(accounts.get(sub) ?? {}) }),
    }),
    claims: { openid: ['sub'], profile: ['preferred_username', 'roles', 'groups'] },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['errand-groups-test-provider-cookie-key'] },
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

function formOf(html: string): { action: string; fields: Record<string, string> } {
  const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
  if (!action) throw new Error(`no form on the provider page: ${html.slice(0, 200)}`);
  const fields: Record<string, string> = {};
  for (const m of html.matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) {
    fields[m[1]!] = m[2]!;
  }
  return { action, fields };
}

/** Signs in at the provider as `login` and returns Errand's answer to the callback. */
async function signIn(login: string): Promise<Response> {
  const browser = new Browser();
  const start = await browser.fetch(`${tb.url}/signin/oidc`);
  expect(start.status).toBe(302);
  let url = new URL(start.headers.get('location') ?? '', tb.url);
  for (let step = 0; step < 12; step++) {
    if (url.origin === origin) return browser.fetch(url.href);
    const res = await browser.fetch(url.href);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location') ?? '', url);
      continue;
    }
    const html = await res.text();
    const form = formOf(html);
    const fields = html.includes('name="login"') ? { ...form.fields, login, password: 'any' } : form.fields;
    const posted = await browser.postForm(new URL(form.action, url).href, fields);
    url = new URL(posted.headers.get('location') ?? '', url);
  }
  throw new Error('the round trip through the provider did not come back to Errand');
}

describe('the groups claim at federated sign-in', () => {
  test('the configured claim is copied at each sign-in and replaces the previous one; local groups stay', async () => {
    const { policyStore, users, audit, db } = tb.broker.deps;
    // `groups` is not the configured claim (`roles`): it must be ignored.
    accounts.set('fed-ann', { roles: ['finance', 'staff', 'staff', ''], groups: ['admins'] });
    expect((await signIn('fed-ann')).status).toBe(303);
    const ann = await users.findByUsername('fed-ann');
    expect(ann).not.toBeNull();
    expect(await policyStore.groupsOf(ann!.id, 'upstream')).toEqual(['finance', 'staff']);
    const [event] = await audit.query({ type: 'user.groups_updated', userId: ann!.id, limit: 1 });
    expect(event?.details).toMatchObject({ source: 'upstream', groups: ['finance', 'staff'], address: '127.0.0.1' });

    await db.write((tx) => policyStore.setGroups(ann!.id, 'local', ['on-call'], tx));
    accounts.set('fed-ann', { roles: 'engineering' });
    expect((await signIn('fed-ann')).status).toBe(303);
    expect(await policyStore.groupsOf(ann!.id, 'upstream')).toEqual(['engineering']);
    expect(await policyStore.groupsOf(ann!.id)).toEqual(['engineering', 'on-call']);

    // No claim at all: the upstream groups are gone, the local ones remain.
    accounts.set('fed-ann', {});
    expect((await signIn('fed-ann')).status).toBe(303);
    expect(await policyStore.groupsOf(ann!.id)).toEqual(['on-call']);
  });
});
