import { SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { API_OPERATIONS } from '../http/routes/api-operations.js';
import { newId } from '../tokens/random.js';
import { dpopProof, type ProofKey, proofKey } from './dpop-fixtures.js';
import {
  addAgent,
  addPublicClient,
  addResource,
  adminApi,
  clientAssertion,
  createUser,
  insecure,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

/**
 * Admin API tokens (README "Admin API"): an admin service client gets errand:admin for <issuer>/api/admin
 * through client_credentials, Bearer or DPoP-bound, and uses the API without a cookie or CSRF token;
 * nothing else can obtain that scope, and every bad token is a 401 with an RFC 6750 §3 challenge.
 */

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const NOTES = 'https://notes.example.test/mcp';

type Api = Awaited<ReturnType<typeof adminApi>>;

let tb: TestBroker;
let api: Api;
let adminResource: string;

beforeAll(async () => {
  tb = await startBroker();
  api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read']);
  adminResource = `${tb.url}/api/admin`;
});
afterAll(() => tb.close());

/** An admin service client created through the session API, holding its key in memory. */
async function addAdminService(body: Record<string, unknown> = {}): Promise<TestAgent> {
  return addAgent(api, { kind: 'admin_service', name: 'deploy pipeline', grant_types: undefined, ...body });
}

async function tokenRequest(client: TestAgent, params: Record<string, string> = {}, dpop?: string) {
  return postForm(
    `${tb.url}/token`,
    {
      grant_type: 'client_credentials',
      resource: adminResource,
      scope: 'errand:admin',
      client_assertion_type: JWT_BEARER,
      // On the broker's clock, which a test moves forward.
      client_assertion: await clientAssertion(client, tb.url, {
        claims: { iat: tb.clock.now(), exp: tb.clock.now() + 60 },
      }),
      ...params,
    },
    dpop ? { dpop } : {},
  );
}

async function adminToken(client: TestAgent): Promise<string> {
  const res = await tokenRequest(client);
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

const withToken = (token: string, method = 'GET', path = '/api/admin/clients', body?: unknown, scheme = 'Bearer') =>
  fetch(`${tb.url}${path}`, {
    method,
    headers: { authorization: `${scheme} ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });

/** A 401 with the JSON error and the RFC 6750 §3 challenge naming the same error. */
async function expectRefused(res: Response, error: string, status = 401) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await res.json()) as { error: string; error_description: string };
  expect(body.error).toBe(error);
  expect(body.error_description.length).toBeGreaterThan(10);
  expect(res.headers.get('www-authenticate')).toContain(`error="${error}"`);
  expect(res.headers.get('www-authenticate')).toContain('scope="errand:admin"');
}

describe('an admin service client', () => {
  test('is created by an administrator with client_credentials and errand:admin only', async () => {
    const res = await api.call('POST', '/api/admin/clients', {
      kind: 'admin_service',
      name: 'ci',
      token_endpoint_auth_method: 'client_secret_basic',
      allow_static_secret: true,
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({
      kind: 'admin_service',
      grant_types: ['client_credentials'],
      scope: 'errand:admin',
    });
    for (const bad of [
      { grant_types: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'] },
      { scope: ['errand:admin', 'notes:read'] },
      { token_endpoint_auth_method: 'none' },
    ]) {
      const refused = await api.call('POST', '/api/admin/clients', { kind: 'admin_service', name: 'x', ...bad });
      expect(refused.status, JSON.stringify(bad)).toBe(400);
      expect(await refused.json()).toMatchObject({ error: 'invalid_client_metadata' });
    }
    // Other kinds cannot be registered with the admin scope.
    const agent = await api.call('POST', '/api/admin/clients', {
      kind: 'agent',
      name: 'x',
      token_endpoint_auth_method: 'client_secret_basic',
      allow_static_secret: true,
      scope: ['errand:admin'],
    });
    expect(agent.status).toBe(400);
  });

  test('calls the admin API with a Bearer token, without a cookie or CSRF token, and is the audited actor', async () => {
    const service = await addAdminService();
    const token = await adminToken(service);
    const list = await withToken(token);
    expect(list.status).toBe(200);
    expect(((await list.json()) as { clients: unknown[] }).clients.length).toBeGreaterThan(0);

    const created = await withToken(token, 'POST', '/api/admin/users', {
      username: `robot-made-${Date.now()}`,
      password: 'a long enough password',
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const userId = ((await created.json()) as { id: string }).id;
    const events = (await (await api.call('GET', '/api/admin/audit?type=user.created')).json()) as {
      events: { user_id: string | null; details: Record<string, unknown> }[];
    };
    const event = events.events.find((e) => e.details.created_user_id === userId);
    expect(event?.user_id).toBe(service.clientId);

    const rotated = await withToken(token, 'POST', '/api/admin/keys/rotate');
    expect(rotated.status).toBe(202);
    const [keyEvent] = (
      (await (await api.call('GET', '/api/admin/audit?type=key.rotated&limit=1')).json()) as {
        events: { user_id: string | null; request_id: string }[];
      }
    ).events;
    expect(keyEvent).toMatchObject({ user_id: service.clientId, request_id: rotated.headers.get('x-request-id') });

    // A client the service creates has no owner (it is not a person), unless it names one.
    const made = await withToken(token, 'POST', '/api/admin/clients', {
      kind: 'agent',
      name: 'made by a robot',
      jwks: { keys: [service.publicJwk] },
    });
    expect(made.status).toBe(201);
    expect(await made.json()).toMatchObject({ owner_id: null });
  });

  test('a DPoP-bound token needs a fresh proof by its key for each request (RFC 9449 §7)', async () => {
    const service = await addAdminService();
    const key = await proofKey();
    const proof = (k: ProofKey, p: Omit<Parameters<typeof dpopProof>[1], 'iat'>) =>
      dpopProof(k, { iat: tb.clock.now(), ...p });
    const res = await tokenRequest(service, {}, await proof(key, { htu: `${tb.url}/token` }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; token_type: string };
    expect(body.token_type).toBe('DPoP');
    const token = body.access_token;
    const url = `${tb.url}/api/admin/clients`;
    const call = (dpop: string, scheme = 'DPoP') =>
      fetch(url, { headers: { authorization: `${scheme} ${token}`, dpop } });

    const good = await proof(key, { htm: 'GET', htu: url, token });
    expect((await call(good)).status).toBe(200);
    await expectRefused(await call(good), 'invalid_dpop_proof'); // replayed
    await expectRefused(
      await call(await proof(await proofKey(), { htm: 'GET', htu: url, token })),
      'invalid_dpop_proof',
    );
    await expectRefused(
      await call(await proof(key, { htm: 'GET', htu: `${tb.url}/api/admin/users`, token })),
      'invalid_dpop_proof',
    );
    const unsigned = await new SignJWT({ jti: 'p-none', htm: 'GET', htu: url, iat: tb.clock.now() })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
      .sign(key.pair.privateKey);
    // The same claims with `alg: none` and no signature.
    const payload = unsigned.split('.')[1]!;
    const noneHeader = Buffer.from(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk: key.jwk })).toString(
      'base64url',
    );
    const algNone = `${noneHeader}.${payload}.`;
    await expectRefused(await call(algNone), 'invalid_dpop_proof');
    // No downgrade: a bound token sent as Bearer is refused.
    await expectRefused(await call(await proof(key, { htm: 'GET', htu: url, token }), 'Bearer'), 'invalid_token');
    // An unsafe method with its own proof: still no CSRF token needed.
    const post = await fetch(`${tb.url}/api/admin/resources`, {
      method: 'POST',
      headers: {
        authorization: `DPoP ${token}`,
        dpop: await proof(key, { htm: 'POST', htu: `${tb.url}/api/admin/resources`, token }),
        'content-type': 'application/json',
      },
      body: JSON.stringify({ url: 'https://dpop-made.example.test/api', name: 'made with DPoP', scopes: ['x:read'] }),
    });
    expect(post.status, await post.clone().text()).toBe(201);
  });
  test('every admin endpoint takes the token as a caller (no 401, 403 or server error)', async () => {
    const token = await adminToken(await addAdminService());
    for (const o of API_OPERATIONS.filter((x) => x.access === 'admin')) {
      const res = await withToken(token, o.method, o.path.replace(/:\w+/g, 'nope'), o.body ? {} : undefined);
      expect([401, 403], `${o.method} ${o.path}`).not.toContain(res.status);
      expect(res.status, `${o.method} ${o.path}: ${await res.text()}`).toBeLessThan(500);
    }
  });

  test('the README example: oauth4webapi with a DPoP key gets and uses a bound token', async () => {
    const service = await addAdminService();
    const issuer = new URL(tb.url);
    const as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
    );
    const client: oauth.Client = { client_id: service.clientId, [oauth.clockSkew]: tb.clock.offset };
    const auth = oauth.PrivateKeyJwt({ key: service.privateKey, kid: service.kid });
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const res = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      auth,
      new URLSearchParams({ scope: 'errand:admin', resource: `${issuer.origin}/api/admin` }),
      { DPoP, ...insecure },
    );
    const { access_token, token_type } = await oauth.processClientCredentialsResponse(as, client, res);
    expect(token_type).toBe('dpop');
    const clients = await oauth.protectedResourceRequest(
      access_token,
      'GET',
      new URL('/api/admin/clients', issuer),
      undefined,
      undefined,
      { DPoP, ...insecure },
    );
    expect(clients.status).toBe(200);
  });
});

describe('nothing else obtains or uses errand:admin', () => {
  test('an agent cannot register for errand:admin, and one that holds it in its registration is refused it', async () => {
    const iat = await api.call('POST', '/api/admin/initial-access-tokens', { name: 'onboarding', auto_approve: true });
    const { initial_access_token } = (await iat.json()) as { initial_access_token: string };
    const agent = await addAgent(api, { scope: ['notes:read'] });
    const reg = await fetch(`${tb.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${initial_access_token}` },
      body: JSON.stringify({
        client_name: 'sneaky',
        token_endpoint_auth_method: 'private_key_jwt',
        grant_types: ['client_credentials'],
        jwks: { keys: [agent.publicJwk] },
        scope: 'notes:read errand:admin',
      }),
    });
    expect(reg.status).toBe(400);
    expect(await reg.json()).toMatchObject({ error: 'invalid_client_metadata' });

    // A self-registered agent whose stored registration lists the scope (test setup: written to the
    // store directly, as a registration from before registrations refused it would be).
    const stored = (await tb.broker.deps.clients.get(agent.clientId))!;
    const listed = { ...stored, id: newId('cli'), source: 'dcr' as const, scope: ['notes:read', 'errand:admin'] };
    await tb.broker.deps.clients.insert(listed);
    const res = await tokenRequest({ ...agent, clientId: listed.id });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_scope' });
    // As for an agent the administrator registered.
    const own = await tokenRequest(agent);
    expect(own.status).toBe(400);
    expect(await own.json()).toMatchObject({ error: 'invalid_scope' });
  });

  test('no person can delegate it: authorization request, CIBA ask and exchange rule are refused', async () => {
    const redirect = 'http://127.0.0.1:9/cb';
    const mcpClient = await addPublicClient(api, 'desktop', [redirect]);
    const authorize = new URL(`${tb.url}/authorize`);
    for (const [k, v] of Object.entries({
      response_type: 'code',
      client_id: mcpClient.client_id,
      redirect_uri: redirect,
      scope: 'errand:admin',
      resource: adminResource,
      state: 's',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }))
      authorize.searchParams.set(k, v);
    const res = await api.browser.fetch(authorize.toString());
    expect(res.status).toBe(303);
    expect(new URL(res.headers.get('location')!).searchParams.get('error')).toBe('invalid_scope');

    const agent = await addAgent(api, { grant_types: undefined });
    const person = await createUser(tb);
    const ask = await postForm(`${tb.url}/bc-authorize`, {
      login_hint: person.username,
      scope: 'openid errand:admin',
      resource: adminResource,
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(agent, tb.url, {
        claims: { iat: tb.clock.now(), exp: tb.clock.now() + 60 },
      }),
    });
    expect(ask.status).toBe(400);
    expect(await ask.json()).toMatchObject({ error: 'invalid_scope' });

    const gateway = await addAgent(api, {
      kind: 'resource_server',
      grant_types: ['urn:ietf:params:oauth:grant-type:token-exchange'],
      resources: [NOTES],
    });
    const rule = await api.call('PUT', `/api/admin/clients/${gateway.clientId}/exchange-rules`, {
      rules: [{ resource: adminResource, scopes: ['errand:admin'] }],
    });
    expect(rule.status).toBe(400);
    expect(await rule.json()).toMatchObject({ error: 'invalid_scope' });
  });

  test("a token for another audience, a revoked, an expired or a disabled client's token: 401 invalid_token", async () => {
    const agent = await addAgent(api, { scope: ['notes:read'] });
    const notes = await tokenRequest(agent, { resource: NOTES, scope: 'notes:read' });
    const notesToken = ((await notes.json()) as { access_token: string }).access_token;
    await expectRefused(await withToken(notesToken), 'invalid_token');

    const service = await addAdminService();
    const revoked = await adminToken(service);
    const rev = await postForm(`${tb.url}/revoke`, {
      token: revoked,
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(service, tb.url, {
        claims: { iat: tb.clock.now(), exp: tb.clock.now() + 60 },
      }),
    });
    expect(rev.status).toBe(200);
    await expectRefused(await withToken(revoked), 'invalid_token');

    const disabledLater = await adminToken(service);
    expect((await withToken(disabledLater)).status).toBe(200);
    const disable = await api.call('PATCH', `/api/admin/clients/${service.clientId}`, { status: 'disabled' });
    expect(disable.status).toBe(200);
    await expectRefused(await withToken(disabledLater), 'invalid_token');

    const other = await addAdminService();
    const expiring = await adminToken(other);
    tb.clock.advance(3600);
    await expectRefused(await withToken(expiring), 'invalid_token');
    await expectRefused(await withToken('not-a-token'), 'invalid_token');
  });

  test('the admin token opens neither /api/me nor /mcp', async () => {
    const token = await adminToken(await addAdminService());
    const me = await withToken(token, 'GET', '/api/me');
    expect(me.status).toBe(401);
    const meBody = (await me.json()) as { error: string; error_description: string };
    expect(meBody.error).toBe('unauthorized');
    expect(meBody.error_description).toContain('does not accept access tokens');
    const mcp = await fetch(`${tb.url}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(mcp.status).toBe(401);
  });

  test('the metadata lists errand:admin among the supported scopes', async () => {
    const meta = (await (await fetch(`${tb.url}/.well-known/oauth-authorization-server`)).json()) as {
      scopes_supported: string[];
    };
    expect(meta.scopes_supported).toContain('errand:admin');
  });
});

describe('API errors speak to API clients', () => {
  test('no credentials, a non-admin session or a missing CSRF header: JSON that says what to send', async () => {
    const none = await fetch(`${tb.url}/api/admin/clients`, { redirect: 'manual' });
    expect(none.status).toBe(401);
    // RFC 6750 §3.1: no error code without credentials; RFC 9728 §5.1: where to learn how to get a token.
    const challenge = none.headers.get('www-authenticate')!;
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).not.toContain('error=');
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)![1]!;
    expect(metadataUrl).toBe(`${tb.url}/.well-known/oauth-protected-resource/api/admin`);
    expect(await (await fetch(metadataUrl)).json()).toMatchObject({
      resource: adminResource,
      authorization_servers: [tb.url],
      scopes_supported: ['errand:admin'],
    });
    const body = (await none.json()) as { error: string; error_description: string };
    expect(body.error).toBe('unauthorized');
    expect(body.error_description).toContain('X-CSRF-Token');
    expect(body.error_description).toContain('errand:admin');

    const me = await fetch(`${tb.url}/api/me`, { redirect: 'manual' });
    expect(me.status).toBe(401);
    expect(((await me.json()) as { error_description: string }).error_description).toContain('POST /api/session');

    const noCsrf = await api.browser.fetch(`${tb.url}/api/admin/resources`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: 'https://x.example.test', name: 'x', scopes: ['x:y'] }),
    });
    expect(noCsrf.status).toBe(403);
    const csrfBody = (await noCsrf.json()) as { error: string; error_description: string };
    expect(csrfBody.error).toBe('forbidden');
    expect(csrfBody.error_description).toContain('X-CSRF-Token');
    expect(csrfBody.error_description).not.toMatch(/reload the page/);

    const person = await createUser(tb);
    const session = await fetch(`${tb.url}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: person.username, password: person.password }),
    });
    const cookie = session.headers.getSetCookie()[0]!.split(';')[0]!;
    const notAdmin = await fetch(`${tb.url}/api/admin/clients`, { headers: { cookie }, redirect: 'manual' });
    expect(notAdmin.status).toBe(403);
    const notAdminBody = (await notAdmin.json()) as { error: string; error_description: string };
    expect(notAdminBody.error).toBe('forbidden');
    expect(notAdminBody.error_description).toContain('administrator');
    expect(notAdminBody.error_description).toContain('errand:admin');
  });
});
