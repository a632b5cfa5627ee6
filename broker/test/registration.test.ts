import { exportJWK, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  addResource,
  adminApi,
  approveInBrowser,
  createUser,
  discover,
  insecure,
  postForm,
  startBroker,
  type TestBroker,
  verifyAccessToken,
} from './fixtures.js';

/** Dynamic Client Registration (RFC 7591) through the real HTTP surface, with oauth4webapi as the client. */

const RESOURCE = 'https://notes.example.test/mcp';
const REDIRECT = 'http://127.0.0.1:53682/callback';

type Api = Awaited<ReturnType<typeof adminApi>>;
type User = Awaited<ReturnType<typeof createUser>>;

async function register(as: oauth.AuthorizationServer, metadata: Record<string, unknown>): Promise<Response> {
  return oauth.dynamicClientRegistrationRequest(
    as,
    metadata as Partial<oauth.OmitSymbolProperties<oauth.Client>>,
    insecure,
  );
}

/** POST /register with a raw body, for requests oauth4webapi would refuse to build. */
async function rawRegister(tb: TestBroker, body: string, contentType = 'application/json'): Promise<Response> {
  return fetch(`${tb.url}/register`, { method: 'POST', headers: { 'content-type': contentType }, body });
}

const publicClient = (extra: Record<string, unknown> = {}) => ({
  client_name: 'Test MCP client',
  redirect_uris: [REDIRECT],
  token_endpoint_auth_method: 'none',
  application_type: 'native',
  ...extra,
});

async function clientCount(api: Api): Promise<number> {
  const res = await api.call('GET', '/api/admin/clients');
  expect(res.status).toBe(200);
  return ((await res.json()) as { clients: unknown[] }).clients.length;
}

/** Asserts a rejected registration: status, RFC 7591 §3.2.2 error code, and nothing stored. */
async function expectRejected(api: Api, send: () => Promise<Response>, status: number, error: string) {
  const before = await clientCount(api);
  const res = await send();
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await res.json()) as { error: string; error_description?: string };
  expect(body.error).toBe(error);
  expect(body).not.toHaveProperty('client_id');
  expect(await clientCount(api)).toBe(before);
  return { res, body };
}

/** The full authorization code + PKCE flow for a client, ending with the token response. */
async function codeFlow(
  tb: TestBroker,
  as: oauth.AuthorizationServer,
  user: User,
  client: oauth.Client,
  auth: oauth.ClientAuth,
  redirectUri: string,
) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: redirectUri,
    response_type: 'code',
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    scope: 'notes:read',
    resource: RESOURCE,
  }).toString();
  const { callback, consentPage } = await approveInBrowser(tb, user, url);
  expect(`${callback.origin}${callback.pathname}`).toBe(redirectUri);
  const params = oauth.validateAuthResponse(as, client, callback, state);
  const res = await oauth.authorizationCodeGrantRequest(as, client, auth, params, redirectUri, verifier, insecure);
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, res);
  return { tokens, consentPage };
}

describe('dynamic client registration, then use of the new client', () => {
  let tb: TestBroker;
  let as: oauth.AuthorizationServer;
  let api: Api;
  let user: User;

  beforeAll(async () => {
    tb = await startBroker({ ERRAND_DCR_RATE_LIMIT: '1000', ERRAND_MAX_BODY_BYTES: '4096' });
    api = await adminApi(tb);
    // Public: self-registered clients start quarantined (quarantine.test.ts); these tests are about registering.
    await addResource(api, RESOURCE, ['notes:read', 'notes:write'], { public: true });
    user = await createUser(tb);
    as = await discover(tb);
  });
  afterAll(() => tb.close());

  test('discovery advertises the registration endpoint', () => {
    expect(as.registration_endpoint).toBe(`${tb.url}/register`);
  });

  test('a public native client registers (201, no secret) and completes code + PKCE through sign-in and consent', async () => {
    const before = await clientCount(api);
    const res = await register(as, publicClient());
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const registered = await oauth.processDynamicClientRegistrationResponse(res);
    expect(registered.client_id).toMatch(/\S/);
    expect(registered.redirect_uris).toEqual([REDIRECT]);
    expect(registered.token_endpoint_auth_method).toBe('none');
    expect(registered.application_type).toBe('native');
    expect(registered.grant_types).toEqual(['authorization_code']);
    expect(typeof registered.client_id_issued_at).toBe('number');
    expect(registered).not.toHaveProperty('client_secret');
    expect(registered).not.toHaveProperty('client_secret_expires_at');
    expect(await clientCount(api)).toBe(before + 1);

    const client: oauth.Client = { client_id: registered.client_id, token_endpoint_auth_method: 'none' };
    const { tokens, consentPage } = await codeFlow(tb, as, user, client, oauth.None(), REDIRECT);
    expect(consentPage).toContain('Test MCP client');
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.scope).toBe('notes:read');
    const { payload } = await verifyAccessToken(as, tokens.access_token, RESOURCE);
    expect(payload).toMatchObject({ sub: user.id, client_id: registered.client_id, scope: 'notes:read' });

    // The registration and the issued token are audited against the new client.
    const audit = await api.call('GET', `/api/admin/audit?client_id=${encodeURIComponent(registered.client_id)}`);
    const types = ((await audit.json()) as { events: { type: string }[] }).events.map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['client.registered', 'token.issued']));
  });

  test('a private_key_jwt client registers with inline jwks and authenticates with its key at /token', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'dcr-key-1', alg: 'ES256', use: 'sig' };
    const res = await register(as, {
      client_name: 'Confidential web client',
      redirect_uris: ['https://app.example.test/oauth/callback'],
      token_endpoint_auth_method: 'private_key_jwt',
      grant_types: ['authorization_code', 'refresh_token'],
      jwks: { keys: [jwk] },
    });
    expect(res.status).toBe(201);
    const registered = await oauth.processDynamicClientRegistrationResponse(res);
    expect(registered.token_endpoint_auth_method).toBe('private_key_jwt');
    expect(registered.grant_types).toEqual(['authorization_code', 'refresh_token']);
    expect(registered.jwks).toEqual({ keys: [jwk] });
    expect(registered).not.toHaveProperty('client_secret');

    const client: oauth.Client = { client_id: registered.client_id, token_endpoint_auth_method: 'private_key_jwt' };
    const { tokens } = await codeFlow(
      tb,
      as,
      user,
      client,
      oauth.PrivateKeyJwt({ key: privateKey, kid: 'dcr-key-1' }),
      'https://app.example.test/oauth/callback',
    );
    expect(tokens.refresh_token).toBeTruthy();
    expect((await verifyAccessToken(as, tokens.access_token, RESOURCE)).payload).toMatchObject({
      client_id: registered.client_id,
    });

    // Without the key the same client is refused: it is confidential now.
    const anonymous = await postForm(`${tb.url}/token`, {
      grant_type: 'authorization_code',
      client_id: registered.client_id,
      code: 'ec_whatever',
      code_verifier: oauth.generateRandomCodeVerifier(),
    });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: 'invalid_client' });
  });

  test('a private_key_jwt client still cannot self-register client_credentials', async () => {
    const { publicKey } = await generateKeyPair('ES256');
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] };
    await expectRejected(
      api,
      () =>
        register(as, {
          redirect_uris: [REDIRECT],
          token_endpoint_auth_method: 'private_key_jwt',
          grant_types: ['authorization_code', 'client_credentials'],
          jwks,
        }),
      400,
      'invalid_client_metadata',
    );
    await expectRejected(
      api,
      () => register(as, { token_endpoint_auth_method: 'private_key_jwt', grant_types: ['client_credentials'], jwks }),
      400,
      'invalid_client_metadata',
    );
  });
});

describe('registration is refused with the RFC 7591 error codes, and nothing is stored', () => {
  let tb: TestBroker;
  let as: oauth.AuthorizationServer;
  let api: Api;

  beforeAll(async () => {
    tb = await startBroker({ ERRAND_DCR_RATE_LIMIT: '1000', ERRAND_MAX_BODY_BYTES: '4096' });
    api = await adminApi(tb);
    as = await discover(tb);
  });
  afterAll(() => tb.close());

  test('a plain-http redirect URI on a non-loopback host is invalid_redirect_uri', async () => {
    for (const uri of [
      'http://app.example.test/callback',
      'http://192.168.1.10/cb',
      'http://localhost.example.test/cb',
      // Looks like loopback but is a DNS name anyone can point anywhere.
      'http://127.0.0.1.example.test/cb',
    ]) {
      await expectRejected(
        api,
        () => register(as, publicClient({ redirect_uris: [uri] })),
        400,
        'invalid_redirect_uri',
      );
    }
  });

  test('a redirect URI with a fragment is invalid_redirect_uri', async () => {
    for (const uri of [`${REDIRECT}#frag`, 'https://app.example.test/cb#']) {
      await expectRejected(
        api,
        () => register(as, publicClient({ redirect_uris: [uri] })),
        400,
        'invalid_redirect_uri',
      );
    }
  });

  test('other unusable redirect URIs are invalid_redirect_uri', async () => {
    for (const uris of [[], ['not a uri'], ['javascript:alert(1)'], ['https://user:pw@app.example.test/cb']]) {
      await expectRejected(api, () => register(as, publicClient({ redirect_uris: uris })), 400, 'invalid_redirect_uri');
    }
  });

  test('client_secret_basic (or any shared secret) cannot be self-registered: invalid_client_metadata', async () => {
    for (const method of ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'tls_client_auth']) {
      const { body } = await expectRejected(
        api,
        () => register(as, publicClient({ token_endpoint_auth_method: method })),
        400,
        'invalid_client_metadata',
      );
      expect(body.error_description).toContain(method);
    }
  });

  test('grant_types client_credentials (and unknown grants) are invalid_client_metadata', async () => {
    for (const grants of [
      ['client_credentials'],
      ['authorization_code', 'client_credentials'],
      ['implicit'],
      ['password'],
    ]) {
      await expectRejected(
        api,
        () => register(as, publicClient({ grant_types: grants })),
        400,
        'invalid_client_metadata',
      );
    }
  });

  test('response_types other than code are invalid_client_metadata', async () => {
    await expectRejected(
      api,
      () => register(as, publicClient({ response_types: ['token'] })),
      400,
      'invalid_client_metadata',
    );
  });

  test('both jwks and jwks_uri is invalid_client_metadata', async () => {
    const { publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1' };
    await expectRejected(
      api,
      () =>
        register(as, {
          redirect_uris: [REDIRECT],
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [jwk] },
          jwks_uri: 'https://app.example.test/jwks.json',
        }),
      400,
      'invalid_client_metadata',
    );
  });

  test('private_key_jwt without keys, or with a private key in jwks, is invalid_client_metadata', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = { ...(await exportJWK(privateKey)), kid: 'oops' };
    expect(privateJwk).toHaveProperty('d');
    for (const extra of [{}, { jwks: { keys: [privateJwk] } }]) {
      await expectRejected(
        api,
        () => register(as, { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'private_key_jwt', ...extra }),
        400,
        'invalid_client_metadata',
      );
    }
  });

  test('a software statement is invalid_software_statement; a client-chosen secret is invalid_client_metadata', async () => {
    await expectRejected(
      api,
      () => register(as, publicClient({ software_statement: 'eyJhbGciOiJub25lIn0.e30.' })),
      400,
      'invalid_software_statement',
    );
    await expectRejected(
      api,
      () => register(as, publicClient({ client_secret: 'chosen-by-me' })),
      400,
      'invalid_client_metadata',
    );
  });

  test('a body that is not JSON, or not sent as application/json, is a 400 with an error code', async () => {
    const valid = JSON.stringify(publicClient());
    for (const [body, type] of [
      ['{"redirect_uris": [', 'application/json'],
      ['not json at all', 'application/json'],
      [valid, 'text/plain'],
      [new URLSearchParams({ redirect_uris: REDIRECT }).toString(), 'application/x-www-form-urlencoded'],
      ['[]', 'application/json'],
      ['"a string"', 'application/json'],
      ['null', 'application/json'],
    ] as const) {
      const before = await clientCount(api);
      const res = await rawRegister(tb, body, type);
      expect(res.status, `${type}: ${body}`).toBe(400);
      const json = (await res.json()) as { error: string };
      expect(json.error).toMatch(/^invalid_(client_metadata|request)$/);
      expect(await clientCount(api)).toBe(before);
    }
  });

  test('a body larger than ERRAND_MAX_BODY_BYTES is 413 invalid_request', async () => {
    const oversized = JSON.stringify(publicClient({ client_uri: `https://app.example.test/${'a'.repeat(5000)}` }));
    expect(Buffer.byteLength(oversized)).toBeGreaterThan(4096);
    await expectRejected(api, () => rawRegister(tb, oversized), 413, 'invalid_request');
  });

  test('an oversized body without Content-Length (chunked) is also 413 invalid_request', async () => {
    const chunk = new TextEncoder().encode(' '.repeat(1024));
    await expectRejected(
      api,
      () =>
        fetch(`${tb.url}/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: new ReadableStream<Uint8Array>({
            start(controller) {
              for (let i = 0; i < 8; i++) controller.enqueue(chunk);
              controller.enqueue(new TextEncoder().encode(JSON.stringify(publicClient())));
              controller.close();
            },
          }),
          duplex: 'half',
        } as RequestInit),
      413,
      'invalid_request',
    );
  });
});

describe('registration abuse limits', () => {
  test('ERRAND_DCR_RATE_LIMIT=2: the third registration within a minute is 429 with Retry-After', async () => {
    const tb = await startBroker({ ERRAND_DCR_RATE_LIMIT: '2' });
    try {
      const api = await adminApi(tb);
      const as = await discover(tb);
      for (let i = 0; i < 2; i++) expect((await register(as, publicClient())).status).toBe(201);
      const { res } = await expectRejected(api, () => register(as, publicClient()), 429, 'rate_limited');
      const retryAfter = Number(res.headers.get('retry-after'));
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(await clientCount(api)).toBe(2);
    } finally {
      await tb.close();
    }
  });

  test('ERRAND_DCR_MAX_CLIENTS=1: the second registration is 503 temporarily_unavailable', async () => {
    const tb = await startBroker({ ERRAND_DCR_MAX_CLIENTS: '1' });
    try {
      const api = await adminApi(tb);
      const as = await discover(tb);
      expect((await register(as, publicClient())).status).toBe(201);
      const { res } = await expectRejected(api, () => register(as, publicClient()), 503, 'temporarily_unavailable');
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(await clientCount(api)).toBe(1);
      const audit = await api.call('GET', '/api/admin/audit?type=client.registered');
      expect(((await audit.json()) as { events: unknown[] }).events).toHaveLength(1);
    } finally {
      await tb.close();
    }
  });

  test('ERRAND_DCR_UNUSED_TTL=60: an unused registration is pruned after 61 s, a used one stays', async () => {
    const tb = await startBroker({ ERRAND_DCR_UNUSED_TTL: '60' });
    try {
      const api = await adminApi(tb);
      await addResource(api, RESOURCE, ['notes:read'], { public: true });
      const user = await createUser(tb);
      const as = await discover(tb);
      const unused = await oauth.processDynamicClientRegistrationResponse(await register(as, publicClient()));
      const used = await oauth.processDynamicClientRegistrationResponse(await register(as, publicClient()));
      const usedClient: oauth.Client = { client_id: used.client_id, token_endpoint_auth_method: 'none' };
      await codeFlow(tb, as, user, usedClient, oauth.None(), REDIRECT);

      const view = async (id: string) => api.call('GET', `/api/admin/clients/${encodeURIComponent(id)}`);
      expect(((await (await view(unused.client_id)).json()) as { expires_at: number | null }).expires_at).toBeTypeOf(
        'number',
      );
      expect(((await (await view(used.client_id)).json()) as { expires_at: number | null }).expires_at).toBeNull();

      tb.clock.advance(61);
      await tb.broker.maintain();

      expect((await view(unused.client_id)).status).toBe(404);
      expect((await view(used.client_id)).status).toBe(200);

      const authorize = (clientId: string) => {
        const url = new URL(as.authorization_endpoint!);
        url.search = new URLSearchParams({
          client_id: clientId,
          redirect_uri: REDIRECT,
          response_type: 'code',
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
          scope: 'notes:read',
          resource: RESOURCE,
        }).toString();
        return fetch(url, { redirect: 'manual' });
      };
      const gone = await authorize(unused.client_id);
      expect(gone.status).toBe(400);
      expect(gone.headers.get('location')).toBeNull();
      expect(gone.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await gone.text()).toContain('not registered');

      const stays = await authorize(used.client_id);
      expect(stays.status).toBe(303);
      expect(new URL(stays.headers.get('location')!, tb.url).pathname).toBe('/authorize/consent');
    } finally {
      await tb.close();
    }
  });
});
