import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TT_ACCESS, TT_JWT, userApi } from './delegation-fixtures.js';
import {
  addAgent,
  addPublicClient,
  addResource,
  adminApi,
  approveInBrowser,
  createUser,
  hiddenInput,
  insecure,
  openConsentInBrowser,
  startBroker,
  type TestAgent,
  type TestBroker,
  verifyAccessToken,
} from './fixtures.js';

// panva's openid-client 6 and oauth4webapi 3, unmodified and with their default settings. The one
// accommodation is the one they document for local testing: plain http to the 127.0.0.1 issuer
// (openid-client `allowInsecureRequests`, oauth4webapi `[allowInsecureRequests]`).
const NOTES = 'https://notes.example.test/mcp';
const CALENDAR = 'https://calendar.example.test/api';
const REDIRECT = 'http://127.0.0.1:8899/callback';
const GRANT_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const local = { execute: [client.allowInsecureRequests] };

let tb: TestBroker;
let api: Awaited<ReturnType<typeof adminApi>>;

beforeAll(async () => {
  // A short CIBA interval: openid-client waits `interval` real seconds before each poll.
  tb = await startBroker({ ERRAND_CIBA_INTERVAL: '1' });
  api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  await addResource(api, CALENDAR, ['calendar:read', 'shared:read']);
  await addResource(api, 'https://files.example.test/api', ['files:read', 'shared:read']);
});
afterAll(() => tb.close());

/** An agent with its key, as openid-client sees it: discovered configuration and private_key_jwt. */
async function agentConfig(agent: TestAgent) {
  return client.discovery(
    new URL(tb.url),
    agent.clientId,
    undefined,
    client.PrivateKeyJwt({ key: agent.privateKey, kid: agent.kid }),
    local,
  );
}

/** Registers a public client for the code flow (optionally with a registered scope list). */
async function publicClient(scope?: string[]) {
  const res = await api.call('POST', '/api/admin/clients', {
    kind: 'mcp_client',
    name: 'ordinary app',
    token_endpoint_auth_method: 'none',
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    ...(scope ? { scope } : {}),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { client_id: string }).client_id;
}

/** The openid-client code flow: authorization URL, the person approves on the real pages, code grant. */
async function codeFlow(
  config: client.Configuration,
  params: Record<string, string>,
  opts: { nonce?: boolean; dpop?: client.DPoPHandle } = {},
) {
  const user = await createUser(tb);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = opts.nonce ? client.randomNonce() : undefined;
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    ...(nonce ? { nonce } : {}),
    ...params,
  });
  const { browser, consentPage } = await openConsentInBrowser(tb, user, url);
  // As a browser submits the form: the hidden fields and every (pre-)ticked scope checkbox.
  const form = new URLSearchParams({
    _csrf: hiddenInput(consentPage, '_csrf'),
    request: hiddenInput(consentPage, 'request'),
    decision: 'approve',
  });
  for (const [, value] of consentPage.matchAll(/name="grant" value="([^"]+)" checked/g)) form.append('grant', value!);
  const answered = await browser.fetch(`${tb.url}/authorize/consent`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
  });
  expect(answered.status).toBe(303);
  const callback = new URL(answered.headers.get('location')!);
  expect(callback.searchParams.get('error_description')).toBeNull();
  const tokens = await client.authorizationCodeGrant(
    config,
    callback,
    { pkceCodeVerifier: verifier, expectedState: state, ...(nonce ? { expectedNonce: nonce } : {}) },
    undefined,
    opts.dpop ? { DPoP: opts.dpop } : undefined,
  );
  return { user, tokens };
}

describe('OpenID Connect Discovery', () => {
  test('openid-client discovers Errand with its defaults; the document equals the RFC 8414 one', async () => {
    const config = await client.discovery(new URL(tb.url), 'any-client', undefined, undefined, local);
    const md = config.serverMetadata();
    expect(md).toMatchObject({
      issuer: tb.url,
      authorization_endpoint: `${tb.url}/authorize`,
      token_endpoint: `${tb.url}/token`,
      jwks_uri: `${tb.url}/jwks.json`,
      userinfo_endpoint: `${tb.url}/userinfo`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
      backchannel_authentication_endpoint: `${tb.url}/bc-authorize`,
      backchannel_token_delivery_modes_supported: ['poll'],
      request_uri_parameter_supported: false,
    });
    expect(md.scopes_supported).toEqual(expect.arrayContaining(['openid', 'profile', 'notes:read']));
    expect(md.claims_supported).toEqual(expect.arrayContaining(['sub', 'iss', 'auth_time', 'nonce', 'name']));
    const oidc = await (await fetch(`${tb.url}/.well-known/openid-configuration`)).json();
    const rfc8414 = await (await fetch(`${tb.url}/.well-known/oauth-authorization-server`)).json();
    expect(oidc).toEqual(rfc8414);
  });
});

describe('CIBA delegation with openid-client', () => {
  test('initiateBackchannelAuthentication, approval, pollBackchannelAuthenticationGrant, then a task token', async () => {
    const agent = await addAgent(api, { name: 'ciba agent', grant_types: undefined });
    const user = await createUser(tb);
    const config = await agentConfig(agent);
    const started = await client.initiateBackchannelAuthentication(config, {
      scope: 'openid notes:read',
      login_hint: user.username,
      resource: NOTES,
      binding_message: 'Read my notes',
    });
    const me = await userApi(tb, user);
    const pending = (await (await me.call('GET', '/api/me/delegations?status=pending')).json()) as {
      delegations: { delegation_id: string }[];
    };
    expect(pending.delegations).toHaveLength(1);
    const approved = await me.call('POST', `/api/me/delegations/${pending.delegations[0]!.delegation_id}/approve`, {});
    expect(approved.status).toBe(200);

    // Default processing: token_type must be bearer or DPoP, and the ID token is validated (iss, aud, sub, iat, exp).
    const tokens = await client.pollBackchannelAuthenticationGrant(config, started);
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.scope?.split(' ').sort()).toEqual(['notes:read', 'openid']);
    expect(tokens.claims()).toMatchObject({ iss: tb.url, sub: user.id, aud: agent.clientId });
    expect(typeof tokens.claims()?.auth_time).toBe('number');

    // The credential is what the agent exchanges for task tokens (RFC 8693), with the same library.
    const task = await client.genericGrantRequest(config, GRANT_EXCHANGE, {
      subject_token: tokens.access_token,
      subject_token_type: TT_JWT,
      resource: NOTES,
    });
    expect(task.token_type).toBe('bearer');
    expect(task.issued_token_type).toBe(TT_ACCESS);
    const claims = await verifyAccessToken(await discoverAs(), task.access_token, NOTES);
    expect(claims.payload).toMatchObject({ sub: user.id, client_id: agent.clientId, scope: 'notes:read' });
  });
});

describe('the agent delegation flow through /authorize with openid-client', () => {
  test('authorizationCodeGrant accepts the credential and an ID token that echoes the nonce', async () => {
    const agent = await addAgent(api, {
      name: 'interactive agent',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', GRANT_EXCHANGE],
    });
    const config = await agentConfig(agent);
    const { user, tokens } = await codeFlow(
      config,
      { scope: 'openid notes:read notes:write', resource: NOTES, max_depth: '1' },
      { nonce: true },
    );
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.claims()).toMatchObject({ iss: tb.url, sub: user.id, aud: agent.clientId });
    const task = await client.genericGrantRequest(config, GRANT_EXCHANGE, {
      subject_token: tokens.access_token,
      subject_token_type: TT_JWT,
      scope: 'notes:read',
    });
    expect(task.scope).toBe('notes:read');
  });

  test('an agent that sends neither resource nor scope asks for what it registered', async () => {
    const agent = await addAgent(api, {
      name: 'registered-scope agent',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', GRANT_EXCHANGE],
      scope: ['notes:read'],
    });
    const config = await agentConfig(agent);
    const { tokens } = await codeFlow(config, {});
    expect(tokens.scope).toBe('notes:read');
    const task = await client.genericGrantRequest(config, GRANT_EXCHANGE, {
      subject_token: tokens.access_token,
      subject_token_type: TT_JWT,
    });
    const claims = await verifyAccessToken(await discoverAs(), task.access_token, NOTES);
    expect(claims.payload.aud).toBe(NOTES);
  });
});

describe('ordinary clients without resource or scope (defaults)', () => {
  test('openid-client: a client with registered scopes gets a token for the one resource offering them', async () => {
    const clientId = await publicClient(['notes:read']);
    const config = await client.discovery(new URL(tb.url), clientId, undefined, client.None(), local);
    const { user, tokens } = await codeFlow(config, {});
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.scope).toBe('notes:read');
    const claims = await verifyAccessToken(await discoverAs(), tokens.access_token, NOTES);
    expect(claims.payload).toMatchObject({ aud: NOTES, sub: user.id });
    expect(tokens.refresh_token).toBeDefined();
  });

  test('oauth4webapi defaults: scope alone picks the resource; no ID token is expected or sent', async () => {
    const clientId = await publicClient();
    const as = await oauth.processDiscoveryResponse(
      new URL(tb.url),
      await oauth.discoveryRequest(new URL(tb.url), insecure),
    );
    const c: oauth.Client = { client_id: clientId, token_endpoint_auth_method: 'none' };
    const verifier = oauth.generateRandomCodeVerifier();
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      scope: 'calendar:read',
      state: 'st',
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    const user = await createUser(tb);
    const { callback } = await approveInBrowser(tb, user, url);
    const params = oauth.validateAuthResponse(as, c, callback, 'st');
    const res = await oauth.authorizationCodeGrantRequest(as, c, oauth.None(), params, REDIRECT, verifier, insecure);
    const tokens = await oauth.processAuthorizationCodeResponse(as, c, res);
    expect(tokens.id_token).toBeUndefined();
    const claims = await verifyAccessToken(as, tokens.access_token, CALENDAR);
    expect(claims.payload.scope).toBe('calendar:read');
  });

  test('openid-client: scope "openid profile" alone is for UserInfo; fetchUserInfo returns the person', async () => {
    const clientId = await publicClient();
    const config = await client.discovery(new URL(tb.url), clientId, undefined, client.None(), local);
    const { user, tokens } = await codeFlow(config, { scope: 'openid profile' }, { nonce: true });
    const idClaims = tokens.claims()!;
    expect(idClaims).toMatchObject({ sub: user.id, aud: clientId, preferred_username: user.username });
    expect(typeof idClaims.auth_time).toBe('number');
    const info = await client.fetchUserInfo(config, tokens.access_token, user.id);
    expect(info).toEqual({ sub: user.id, name: user.username, preferred_username: user.username });
  });

  test('a DPoP-bound UserInfo token works with its proof (openid-client DPoP handle) and not as Bearer', async () => {
    const clientId = await publicClient();
    const config = await client.discovery(new URL(tb.url), clientId, undefined, client.None(), local);
    const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
    const { user, tokens } = await codeFlow(config, { scope: 'openid' }, { dpop });
    expect(tokens.token_type).toBe('dpop');
    const info = await client.fetchUserInfo(config, tokens.access_token, user.id, { DPoP: dpop });
    expect(info).toEqual({ sub: user.id });
    const asBearer = await fetch(`${tb.url}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(asBearer.status).toBe(401);
  });

  test('UserInfo without a token, or with a token that speaks for no person, is refused', async () => {
    const none = await fetch(`${tb.url}/userinfo`, { method: 'POST' });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer scope="openid"');
    const agent = await addAgent(api, { name: 'itself', scope: ['openid'] });
    const own = await client.clientCredentialsGrant(await agentConfig(agent), { scope: 'openid' });
    const res = await fetch(`${tb.url}/userinfo`, { headers: { authorization: `Bearer ${own.access_token}` } });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({
      error: 'invalid_token',
      error_description: expect.stringMatching(/no person/),
    });
  });

  test('openid with an API scope: the token is for the API, the ID token still comes; UserInfo refuses that token', async () => {
    const clientId = await publicClient();
    const config = await client.discovery(new URL(tb.url), clientId, undefined, client.None(), local);
    const { user, tokens } = await codeFlow(config, { scope: 'openid notes:write' }, { nonce: true });
    expect(tokens.scope).toBe('notes:write');
    expect(tokens.claims()?.sub).toBe(user.id);
    await verifyAccessToken(await discoverAs(), tokens.access_token, NOTES);
    // One audience per token: a token for the notes API is not a UserInfo token.
    const res = await fetch(`${tb.url}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'invalid_token' });
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  test('ambiguous or absent defaults are refused with an error that says what to send', async () => {
    const clientId = await publicClient();
    const user = await createUser(tb);
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ scope: 'shared:read' }, 'invalid_target', /offered by several resources; name one/],
      [{ scope: 'notes:read calendar:read' }, 'invalid_target', /no single resource offers/],
      [{}, 'invalid_target', /resource is required: name the API/],
    ];
    for (const [extra, error, description] of cases) {
      const url = new URL(`${tb.url}/authorize`);
      url.search = new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        state: 'st',
        code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
        code_challenge_method: 'S256',
        ...extra,
      }).toString();
      const res = await fetch(url, { redirect: 'manual' });
      expect(res.status).toBe(303);
      const back = new URL(res.headers.get('location')!);
      expect(back.origin + back.pathname).toBe(REDIRECT);
      expect(back.searchParams.get('error')).toBe(error);
      expect(back.searchParams.get('error_description')).toMatch(description);
    }
    expect(user.id).toBeTruthy();
  });

  test('client_credentials without resource: the one resource offering the registered scopes', async () => {
    const agent = await addAgent(api, { name: 'cc agent', scope: ['notes:read'] });
    const config = await agentConfig(agent);
    const tokens = await client.clientCredentialsGrant(config);
    const claims = await verifyAccessToken(await discoverAs(), tokens.access_token, NOTES);
    expect(claims.payload).toMatchObject({ aud: NOTES, sub: agent.clientId, scope: 'notes:read' });
  });
});

describe('a configured default resource (ERRAND_DEFAULT_RESOURCE)', () => {
  let other: TestBroker;
  beforeAll(async () => {
    other = await startBroker({ ERRAND_DEFAULT_RESOURCE: 'HTTPS://Notes.example.test:443/mcp' });
    const otherApi = await adminApi(other);
    await addResource(otherApi, NOTES, ['notes:read', 'notes:write']);
    await addResource(otherApi, CALENDAR, ['calendar:read']);
    const c = await addPublicClient(otherApi, 'plain app', [REDIRECT]);
    (other as TestBroker & { clientId?: string }).clientId = c.client_id;
  });
  afterAll(() => other.close());

  test('oauth4webapi with neither resource nor scope gets the default resource and its scopes', async () => {
    const clientId = (other as TestBroker & { clientId: string }).clientId;
    const as = await oauth.processDiscoveryResponse(
      new URL(other.url),
      await oauth.discoveryRequest(new URL(other.url), insecure),
    );
    const c: oauth.Client = { client_id: clientId, token_endpoint_auth_method: 'none' };
    const verifier = oauth.generateRandomCodeVerifier();
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    const { callback, consentPage } = await approveInBrowser(other, await createUser(other), url);
    // The person sees what the default amounts to before approving.
    expect(consentPage).toContain('notes:write');
    const params = oauth.validateAuthResponse(as, c, callback, oauth.expectNoState);
    const res = await oauth.authorizationCodeGrantRequest(as, c, oauth.None(), params, REDIRECT, verifier, insecure);
    const tokens = await oauth.processAuthorizationCodeResponse(as, c, res);
    const claims = await verifyAccessToken(as, tokens.access_token, NOTES);
    expect(claims.payload.scope).toBe('notes:read notes:write');
  });
});

/** The broker's metadata for token verification helpers. */
async function discoverAs() {
  return oauth.processDiscoveryResponse(new URL(tb.url), await oauth.discoveryRequest(new URL(tb.url), insecure));
}
