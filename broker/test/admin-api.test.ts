import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  addAgent,
  addResource,
  adminApi,
  Browser,
  createUser,
  discover,
  insecure,
  startBroker,
  type TestBroker,
} from './fixtures.js';

/** The authenticated admin API: access control, static secrets, resources, client status, keys and audit. */

const RESOURCE = 'https://calendar.example.test/api';

type Api = Awaited<ReturnType<typeof adminApi>>;

interface ClientView {
  client_id: string;
  status: string;
  token_endpoint_auth_method: string;
  credential_kind: string;
  static_secret: boolean;
  client_secret?: string;
}

interface AuditEvent {
  type: string;
  client_id: string | null;
  user_id: string | null;
  result: string;
}

let tb: TestBroker;
let api: Api;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  tb = await startBroker();
  api = await adminApi(tb);
  await addResource(api, RESOURCE, ['calendar:read', 'calendar:write']);
  as = await discover(tb);
});
afterAll(() => tb.close());

const secretClientBody = (extra: Record<string, unknown> = {}) => ({
  kind: 'agent',
  name: 'legacy agent',
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['client_credentials'],
  scope: ['calendar:read'],
  ...extra,
});

async function clientCount(): Promise<number> {
  return ((await (await api.call('GET', '/api/admin/clients')).json()) as { clients: unknown[] }).clients.length;
}

async function ccWithSecret(clientId: string, secret: string) {
  return oauth.clientCredentialsGrantRequest(
    as,
    { client_id: clientId },
    oauth.ClientSecretBasic(secret),
    new URLSearchParams({ resource: RESOURCE, scope: 'calendar:read' }),
    insecure,
  );
}

async function audit(query: Record<string, string>): Promise<AuditEvent[]> {
  const res = await api.call('GET', `/api/admin/audit?${new URLSearchParams(query)}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: AuditEvent[] }).events;
}

describe('access control', () => {
  test('without a session every admin endpoint is 401 unauthorized', async () => {
    for (const [method, path] of [
      ['GET', '/api/admin/clients'],
      ['POST', '/api/admin/clients'],
      ['GET', '/api/admin/keys'],
      ['POST', '/api/admin/keys/rotate'],
      ['GET', '/api/admin/audit'],
    ] as const) {
      const res = await fetch(`${tb.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        ...(method === 'POST' ? { body: JSON.stringify(secretClientBody({ allow_static_secret: true })) } : {}),
      });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'unauthorized' });
    }
  });

  test('a forged session cookie is 401 as well', async () => {
    const res = await fetch(`${tb.url}/api/admin/clients`, { headers: { cookie: 'errand_session=forged' } });
    expect(res.status).toBe(401);
  });

  test('a signed-in user who is not an administrator gets 403 forbidden', async () => {
    const user = await createUser(tb, 'user');
    const browser = new Browser();
    const signIn = await browser.fetch(`${tb.url}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: user.username, password: user.password }),
    });
    expect(signIn.status).toBe(200);
    const { csrf_token: csrf, role } = (await signIn.json()) as { csrf_token: string; role: string };
    expect(role).toBe('user');
    const before = await clientCount();
    for (const [method, path] of [
      ['GET', '/api/admin/clients'],
      ['GET', '/api/admin/audit'],
      ['POST', '/api/admin/clients'],
      ['POST', '/api/admin/keys/rotate'],
    ] as const) {
      const res = await browser.fetch(`${tb.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
        ...(method === 'POST' ? { body: JSON.stringify(secretClientBody({ allow_static_secret: true })) } : {}),
      });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(await res.json()).toMatchObject({ error: 'forbidden' });
    }
    expect(await clientCount()).toBe(before);
  });

  test('an administrator POST without (or with a wrong) X-CSRF-Token is 403 forbidden and changes nothing', async () => {
    const before = await clientCount();
    for (const headers of [
      { 'content-type': 'application/json' },
      { 'content-type': 'application/json', 'x-csrf-token': 'not-the-token' },
    ]) {
      const res = await api.browser.fetch(`${tb.url}/api/admin/clients`, {
        method: 'POST',
        headers,
        body: JSON.stringify(secretClientBody({ allow_static_secret: true })),
      });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: 'forbidden' });
    }
    const rotate = await api.browser.fetch(`${tb.url}/api/admin/keys/rotate`, { method: 'POST' });
    expect(rotate.status).toBe(403);
    expect(await clientCount()).toBe(before);
  });
});

describe('clients', () => {
  test('client_secret_basic without allow_static_secret is 400 invalid_client_metadata', async () => {
    const before = await clientCount();
    const res = await api.call('POST', '/api/admin/clients', secretClientBody());
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; error_description: string };
    expect(body.error).toBe('invalid_client_metadata');
    expect(body.error_description).toContain('allow_static_secret');
    expect(await clientCount()).toBe(before);
  });

  test('with allow_static_secret: 201, the secret is shown once, flagged in the listing, and works at /token', async () => {
    const res = await api.call('POST', '/api/admin/clients', secretClientBody({ allow_static_secret: true }));
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const created = (await res.json()) as ClientView;
    expect(created.client_secret).toMatch(/^\S{20,}$/);
    expect(created).toMatchObject({ static_secret: true, credential_kind: 'client_secret' });
    const secret = created.client_secret!;

    const listed = ((await (await api.call('GET', '/api/admin/clients')).json()) as { clients: ClientView[] }).clients;
    const entry = listed.find((c) => c.client_id === created.client_id);
    expect(entry).toMatchObject({
      static_secret: true,
      credential_kind: 'client_secret',
      token_endpoint_auth_method: 'client_secret_basic',
      status: 'active',
    });
    expect(entry).not.toHaveProperty('client_secret');
    expect(JSON.stringify(listed)).not.toContain(secret);
    const one = await (await api.call('GET', `/api/admin/clients/${created.client_id}`)).json();
    expect(one).not.toHaveProperty('client_secret');
    expect(JSON.stringify(one)).not.toContain(secret);

    const ok = await ccWithSecret(created.client_id, secret);
    const tokens = await oauth.processClientCredentialsResponse(as, { client_id: created.client_id }, ok);
    expect(tokens.scope).toBe('calendar:read');

    const wrong = await ccWithSecret(created.client_id, `${secret}x`);
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect(await wrong.json()).toMatchObject({ error: 'invalid_client' });
  });

  test('a key-only agent shows credential_kind private_key_jwt and no static secret', async () => {
    const agent = await addAgent(api, { scope: ['calendar:read'] });
    const view = (await (await api.call('GET', `/api/admin/clients/${agent.clientId}`)).json()) as ClientView;
    expect(view).toMatchObject({ credential_kind: 'private_key_jwt', static_secret: false });
  });

  test('disabling a client with PATCH {status:"disabled"} makes its next token request invalid_client', async () => {
    const created = (await (
      await api.call('POST', '/api/admin/clients', secretClientBody({ allow_static_secret: true }))
    ).json()) as ClientView;
    const secret = created.client_secret!;
    expect((await ccWithSecret(created.client_id, secret)).status).toBe(200);

    const patched = await api.call('PATCH', `/api/admin/clients/${created.client_id}`, { status: 'disabled' });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({ client_id: created.client_id, status: 'disabled' });

    const res = await ccWithSecret(created.client_id, secret);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'invalid_client' });

    // And back: re-enabling restores access.
    expect((await api.call('PATCH', `/api/admin/clients/${created.client_id}`, { status: 'active' })).status).toBe(200);
    expect((await ccWithSecret(created.client_id, secret)).status).toBe(200);
  });

  test('PATCH of an unknown client is 404, unknown fields are 400', async () => {
    const missing = await api.call('PATCH', '/api/admin/clients/cli_nope', { status: 'disabled' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'not_found' });
    const agent = await addAgent(api, { scope: ['calendar:read'] });
    const bad = await api.call('PATCH', `/api/admin/clients/${agent.clientId}`, { secret_hash: 'x' });
    expect(bad.status).toBe(400);
  });
});

describe('resources', () => {
  test('a resource with a bad URL is 400', async () => {
    for (const url of ['not a url', 'ftp://files.example.test/', 'https://x.example.test/api#frag', '/relative']) {
      const res = await api.call('POST', '/api/admin/resources', { url, name: 'bad', scopes: ['x:read'] });
      expect(res.status, url).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/^invalid_/);
    }
  });

  test('a duplicate resource (also after normalisation) is 409 conflict', async () => {
    const url = 'https://mail.example.test/api';
    expect((await api.call('POST', '/api/admin/resources', { url, name: 'Mail', scopes: ['mail:read'] })).status).toBe(
      201,
    );
    for (const dup of [url, 'HTTPS://Mail.Example.Test:443/api']) {
      const res = await api.call('POST', '/api/admin/resources', {
        url: dup,
        name: 'Mail again',
        scopes: ['mail:read'],
      });
      expect(res.status, dup).toBe(409);
      expect(await res.json()).toMatchObject({ error: 'conflict' });
    }
    const list = ((await (await api.call('GET', '/api/admin/resources')).json()) as { resources: { url: string }[] })
      .resources;
    expect(list.filter((r) => r.url === url)).toHaveLength(1);
  });
});

describe('signing keys', () => {
  test('one current key at start; POST rotate → 202, then a next key is listed and published', async () => {
    const keys = async () =>
      ((await (await api.call('GET', '/api/admin/keys')).json()) as { keys: { kid: string; state: string }[] }).keys;
    const initial = await keys();
    expect(initial).toHaveLength(1);
    expect(initial[0]?.state).toBe('current');

    const rotated = await api.call('POST', '/api/admin/keys/rotate');
    expect(rotated.status).toBe(202);
    const { kid, activates_at: activatesAt } = (await rotated.json()) as { kid: string; activates_at: number };
    expect(activatesAt).toBeGreaterThan(tb.clock.now());

    const after = await keys();
    expect(after.map((k) => k.state).sort()).toEqual(['current', 'next']);
    expect(after.find((k) => k.state === 'next')?.kid).toBe(kid);
    expect(after.find((k) => k.state === 'current')?.kid).toBe(initial[0]?.kid);

    const jwks = (await (await fetch(as.jwks_uri!)).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([kid, initial[0]!.kid]));

    const events = await audit({ type: 'key.rotated' });
    expect(events.length).toBeGreaterThan(0);
  });
});

describe('audit', () => {
  test('client.registered and token.issued events, filtered by client_id', async () => {
    const a = (await (
      await api.call('POST', '/api/admin/clients', secretClientBody({ allow_static_secret: true, name: 'audit a' }))
    ).json()) as ClientView;
    const b = (await (
      await api.call('POST', '/api/admin/clients', secretClientBody({ allow_static_secret: true, name: 'audit b' }))
    ).json()) as ClientView;
    expect((await ccWithSecret(a.client_id, a.client_secret!)).status).toBe(200);
    expect((await ccWithSecret(a.client_id, a.client_secret!)).status).toBe(200);

    const forA = await audit({ client_id: a.client_id });
    expect(forA.length).toBeGreaterThanOrEqual(3);
    expect(forA.every((e) => e.client_id === a.client_id)).toBe(true);
    expect(forA.map((e) => e.type)).toEqual(expect.arrayContaining(['client.registered', 'token.issued']));
    expect(forA.filter((e) => e.type === 'token.issued')).toHaveLength(2);
    const registered = forA.find((e) => e.type === 'client.registered');
    expect(registered).toMatchObject({ result: 'allowed', user_id: api.admin.id });

    const forB = await audit({ client_id: b.client_id });
    expect(forB.map((e) => e.type)).toEqual(['client.registered']);

    const issuedToA = await audit({ type: 'token.issued', client_id: a.client_id });
    expect(issuedToA).toHaveLength(2);
    expect(issuedToA.every((e) => e.type === 'token.issued' && e.client_id === a.client_id)).toBe(true);
    expect(await audit({ type: 'token.issued', client_id: b.client_id })).toEqual([]);

    const limited = await audit({ type: 'client.registered', limit: '1' });
    expect(limited).toHaveLength(1);
    expect(limited[0]?.type).toBe('client.registered');
  });

  test('a malformed audit query is 400', async () => {
    for (const q of ['limit=0', 'limit=abc', 'result=maybe']) {
      const res = await api.call('GET', `/api/admin/audit?${q}`);
      expect(res.status, q).toBe(400);
    }
  });
});
