import { exportJWK, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  addResource,
  adminApi,
  Browser,
  discover,
  hiddenInput,
  insecure,
  startBroker,
  type TestBroker,
} from '../../broker/test/fixtures.js';

/**
 * The console side of agents that register themselves: an administrator issues an initial access
 * token on the Agent registration page (its value shown once), an agent registers with it through
 * oauth4webapi, and the administrator approves it on the Agents page.
 */

const RESOURCE = 'https://notes.example.test/mcp';
let tb: TestBroker;
let browser: Browser;
let csrf: string;
beforeAll(async () => {
  tb = await startBroker();
  const api = await adminApi(tb);
  await addResource(api, RESOURCE, ['notes:read']);
  browser = new Browser();
  const page = await browser.fetch(`${tb.url}/signin`);
  const res = await browser.postForm(`${tb.url}/signin`, {
    username: api.admin.username,
    password: api.admin.password,
    _csrf: hiddenInput(await page.text(), '_csrf'),
    next: '/admin',
  });
  expect(res.status).toBe(303);
  csrf = hiddenInput(await (await browser.fetch(`${tb.url}/admin`)).text(), '_csrf');
});
afterAll(() => tb.close());

function tokenValue(html: string): string {
  const match = /<code id="initial-access-token">([^<]+)<\/code>/.exec(html);
  if (!match?.[1]) throw new Error('no initial access token on the page');
  return match[1];
}

test('issue a token on the page, register an agent with it, approve the agent on the Agents page', async () => {
  const page = await browser.fetch(`${tb.url}/admin/registration-tokens`);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('Issue an initial access token');

  const issued = await browser.postForm(`${tb.url}/admin/registration-tokens`, {
    _csrf: csrf,
    name: 'build fleet',
    expires_in_hours: '2',
    max_uses: '3',
    scope: 'notes:read',
    grant_types: 'client_credentials',
  });
  expect(issued.status).toBe(200);
  expect(issued.headers.get('cache-control')).toBe('no-store');
  const value = tokenValue(await issued.text());
  expect(value).toMatch(/^eiat_/);
  // Shown once: the list never carries it again.
  const listed = await (await browser.fetch(`${tb.url}/admin/registration-tokens`)).text();
  expect(listed).toContain('build fleet');
  expect(listed).not.toContain(value);

  const as = await discover(tb);
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'fleet-1', alg: 'ES256' };
  const registered = await oauth.processDynamicClientRegistrationResponse(
    await oauth.dynamicClientRegistrationRequest(
      as,
      { client_name: 'fleet worker 7', jwks: { keys: [jwk] }, token_endpoint_auth_method: 'private_key_jwt' },
      { ...insecure, initialAccessToken: value },
    ),
  );
  expect(registered.grant_types).toEqual(['client_credentials']);

  const agents = await (await browser.fetch(`${tb.url}/admin/agents`)).text();
  expect(agents).toContain('fleet worker 7');
  expect(agents).toContain('awaiting approval');
  expect(agents).toContain('Approve fleet worker 7');

  const approved = await browser.postForm(`${tb.url}/admin/agents/${registered.client_id}/decision`, {
    _csrf: csrf,
    decision: 'approve',
  });
  expect(approved.status).toBe(303);
  expect((await tb.broker.deps.clients.get(registered.client_id))?.status).toBe('active');

  const res = await oauth.clientCredentialsGrantRequest(
    as,
    { client_id: registered.client_id },
    oauth.PrivateKeyJwt({ key: privateKey, kid: 'fleet-1' }),
    new URLSearchParams({ resource: RESOURCE }),
    insecure,
  );
  expect((await oauth.processClientCredentialsResponse(as, { client_id: registered.client_id }, res)).scope).toBe(
    'notes:read',
  );
});

test('a token is revoked from the page; a bad form is answered with the problem; forms need the CSRF token', async () => {
  const issued = await browser.postForm(`${tb.url}/admin/registration-tokens`, {
    _csrf: csrf,
    name: 'short-lived',
    expires_in_hours: '1',
    grant_types: 'client_credentials',
  });
  const [{ id } = { id: '' }] = (await tb.broker.deps.initialAccessTokens.list()).filter(
    (t) => t.name === 'short-lived',
  );
  expect(tokenValue(await issued.text())).toBeTruthy();
  const revoked = await browser.postForm(`${tb.url}/admin/registration-tokens/${id}/revoke`, { _csrf: csrf });
  expect(revoked.status).toBe(303);
  expect((await tb.broker.deps.initialAccessTokens.get(id))?.revokedAt).not.toBeNull();

  const bad = await browser.postForm(`${tb.url}/admin/registration-tokens`, {
    _csrf: csrf,
    name: 'no grants',
    expires_in_hours: '1',
  });
  expect(bad.status).toBe(400);
  expect(await bad.text()).toContain('grant_types');

  const before = (await tb.broker.deps.initialAccessTokens.list()).length;
  const forged = await browser.postForm(`${tb.url}/admin/registration-tokens`, {
    name: 'forged',
    expires_in_hours: '1',
    grant_types: 'client_credentials',
  });
  expect(forged.status).toBe(403);
  expect((await tb.broker.deps.initialAccessTokens.list()).length).toBe(before);
});
