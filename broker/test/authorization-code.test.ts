import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  addPublicClient,
  addResource,
  adminApi,
  approveInBrowser,
  Browser,
  createUser,
  discover,
  hiddenInput,
  insecure,
  openConsentInBrowser,
  postForm,
  redirectLocation,
  startBroker,
  submitConsent,
  type TestBroker,
  verifyAccessToken,
} from './fixtures.js';

const RESOURCE = 'https://notes.example.test/mcp';
const OTHER_RESOURCE = 'https://calendar.example.test/mcp';
const REDIRECT = 'https://app.example.test/callback';
const REDIRECT_2 = 'https://app.example.test/other-callback';
const OTHER_REDIRECT = 'http://127.0.0.1:7777/cb';

let tb: TestBroker;
let as: oauth.AuthorizationServer;
let client: oauth.Client;
let otherClient: oauth.Client;
let user: { id: string; username: string; password: string };
let browser: Browser;

beforeAll(async () => {
  tb = await startBroker();
  const api = await adminApi(tb);
  await addResource(api, RESOURCE, ['notes:read', 'notes:write', 'notes:admin']);
  await addResource(api, OTHER_RESOURCE, ['calendar:read']);
  client = await addPublicClient(api, 'Notes Desktop', [REDIRECT, REDIRECT_2]);
  otherClient = await addPublicClient(api, 'Other App', [OTHER_REDIRECT]);
  user = await createUser(tb);
  browser = new Browser();
  as = await discover(tb);
});
afterAll(() => tb.close());

/**
 * Builds an authorization request URL with PKCE S256, a state and one resource; `over` replaces
 * (or with null removes) parameters; arrays repeat a parameter.
 */
async function authRequest(over: Record<string, string | string[] | null> = {}, forClient: oauth.Client = client) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const params: Record<string, string | string[] | null> = {
    response_type: 'code',
    client_id: forClient.client_id,
    redirect_uri: forClient === client ? REDIRECT : OTHER_REDIRECT,
    scope: 'notes:read',
    resource: RESOURCE,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...over,
  };
  const url = new URL(as.authorization_endpoint!);
  for (const [k, v] of Object.entries(params)) {
    if (v === null) continue;
    for (const one of Array.isArray(v) ? v : [v]) url.searchParams.append(k, one);
  }
  return { url: url.toString(), verifier, state };
}

/** A validated authorization response carrying a code, with the verifier that goes with it. */
async function getCode(over: Record<string, string | string[] | null> = {}, forClient: oauth.Client = client) {
  const req = await authRequest(over, forClient);
  const { callback } = await approveInBrowser(tb, user, req.url, { browser });
  const params = oauth.validateAuthResponse(as, forClient, callback, req.state);
  return { params, verifier: req.verifier };
}

async function redeem(
  params: URLSearchParams,
  verifier: string,
  opts: { client?: oauth.Client; redirectUri?: string; resource?: string } = {},
) {
  return oauth.authorizationCodeGrantRequest(
    as,
    opts.client ?? client,
    oauth.None(),
    params,
    opts.redirectUri ?? REDIRECT,
    verifier,
    { ...insecure, additionalParameters: { resource: opts.resource ?? RESOURCE } },
  );
}

/** The token endpoint error code that oauth4webapi surfaces when processing a response. */
async function tokenError(res: Response, forClient: oauth.Client = client): Promise<string> {
  const err = await oauth.processAuthorizationCodeResponse(as, forClient, res).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(oauth.ResponseBodyError);
  const body = err as oauth.ResponseBodyError;
  expect(body.status).toBe(400);
  return body.error;
}

/** Sends an authorization request that must be refused by redirect; returns the error code. */
async function authorizeError(over: Record<string, string | string[] | null>): Promise<string> {
  const req = await authRequest(over);
  const res = await browser.fetch(req.url);
  expect(res.status).toBe(303);
  const callback = new URL(redirectLocation(tb, res));
  expect(`${callback.origin}${callback.pathname}`).toBe(REDIRECT);
  expect(callback.searchParams.get('iss')).toBe(tb.url);
  expect(callback.searchParams.get('code')).toBeNull();
  const err = (() => {
    try {
      oauth.validateAuthResponse(as, client, callback, req.state);
      return null;
    } catch (e) {
      return e;
    }
  })();
  expect(err).toBeInstanceOf(oauth.AuthorizationResponseError);
  return (err as oauth.AuthorizationResponseError).error;
}

describe('authorization code flow through the sign-in and consent pages', () => {
  test('happy path: PKCE S256, resource, state and RFC 9207 iss', async () => {
    const req = await authRequest({ scope: 'notes:read notes:write' });
    const { consent, consentPage: html } = await openConsentInBrowser(tb, user, req.url, { browser });
    const csp = consent.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/frame-ancestors 'none'/);
    expect(consent.headers.get('x-frame-options')).toBe('DENY');
    expect(html).toContain('Notes Desktop');
    expect(html).toContain('app.example.test');
    expect(html).toContain('notes:write');

    const res = await submitConsent(tb, browser, html, 'approve');
    expect(res.status).toBe(303);
    const callback = new URL(redirectLocation(tb, res));
    expect(`${callback.origin}${callback.pathname}`).toBe(REDIRECT);
    expect(callback.searchParams.get('iss')).toBe(tb.url);
    expect(callback.searchParams.get('state')).toBe(req.state);
    // Throws unless iss is present and equals the discovered issuer, and state matches.
    const params = oauth.validateAuthResponse(as, client, callback, req.state);
    expect(params.get('code')).toBeTruthy();

    const tokenRes = await redeem(params, req.verifier);
    expect(tokenRes.headers.get('cache-control')).toBe('no-store');
    const result = await oauth.processAuthorizationCodeResponse(as, client, tokenRes);
    expect(result.token_type).toBe('bearer');
    expect(result.refresh_token).toBeTruthy();
    expect(result.scope).toBe('notes:read notes:write');

    const { payload } = await verifyAccessToken(as, result.access_token, RESOURCE, tb.url);
    expect(payload).toMatchObject({
      aud: RESOURCE,
      sub: user.id,
      client_id: client.client_id,
      scope: 'notes:read notes:write',
    });
  });

  test('deny on the consent page redirects with access_denied and iss', async () => {
    const req = await authRequest();
    const { callback } = await approveInBrowser(tb, user, req.url, { browser, decision: 'deny' });
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('iss')).toBe(tb.url);
    expect(callback.searchParams.get('state')).toBe(req.state);
    expect(callback.searchParams.get('code')).toBeNull();
    let err: unknown;
    try {
      oauth.validateAuthResponse(as, client, callback, req.state);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(oauth.AuthorizationResponseError);
    expect((err as oauth.AuthorizationResponseError).error).toBe('access_denied');
  });
});

describe('PKCE and code binding at the token endpoint', () => {
  test('a missing code_verifier is invalid_grant', async () => {
    const { params } = await getCode();
    const res = await postForm(`${tb.url}/token`, {
      grant_type: 'authorization_code',
      client_id: client.client_id,
      code: params.get('code')!,
      redirect_uri: REDIRECT,
      resource: RESOURCE,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_grant' });
  });

  test('a wrong code_verifier is invalid_grant, and the right one still works after it', async () => {
    const { params, verifier } = await getCode();
    expect(await tokenError(await redeem(params, oauth.generateRandomCodeVerifier()))).toBe('invalid_grant');
    const ok = await oauth.processAuthorizationCodeResponse(as, client, await redeem(params, verifier));
    expect(ok.access_token).toBeTruthy();
  });

  test('a redirect_uri at the token endpoint other than the one sent is invalid_grant', async () => {
    const { params, verifier } = await getCode();
    expect(await tokenError(await redeem(params, verifier, { redirectUri: REDIRECT_2 }))).toBe('invalid_grant');
  });

  test('a code redeemed twice: the second is invalid_grant and the first tokens are revoked', async () => {
    const { params, verifier } = await getCode();
    const first = await oauth.processAuthorizationCodeResponse(as, client, await redeem(params, verifier));
    const { jti } = decodeJwt(first.access_token);
    expect(jti).toBeTruthy();
    expect((await tb.broker.deps.grants.getToken(jti!))?.revokedAt).toBeNull();

    expect(await tokenError(await redeem(params, verifier))).toBe('invalid_grant');

    const row = await tb.broker.deps.grants.getToken(jti!);
    expect(row).not.toBeNull();
    expect(row?.revokedAt).not.toBeNull();
    // The refresh token of the first redemption is gone too.
    const refreshed = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), first.refresh_token!, {
      ...insecure,
    });
    expect(refreshed.status).toBe(400);
    expect(await refreshed.json()).toMatchObject({ error: 'invalid_grant' });
  });

  test('a code presented by another client is invalid_grant', async () => {
    const { params, verifier } = await getCode();
    const res = await redeem(params, verifier, { client: otherClient });
    expect(await tokenError(res, otherClient)).toBe('invalid_grant');
  });

  test('a token request for a resource outside the authorization is invalid_target', async () => {
    const { params, verifier } = await getCode();
    expect(await tokenError(await redeem(params, verifier, { resource: OTHER_RESOURCE }))).toBe('invalid_target');
  });
});

describe('authorization request validation', () => {
  test('no code_challenge is invalid_request (redirected, with iss)', async () => {
    expect(await authorizeError({ code_challenge: null, code_challenge_method: null })).toBe('invalid_request');
  });

  test('code_challenge_method=plain is invalid_request', async () => {
    const verifier = oauth.generateRandomCodeVerifier();
    expect(await authorizeError({ code_challenge: verifier, code_challenge_method: 'plain' })).toBe('invalid_request');
  });

  test('an unknown resource is invalid_target', async () => {
    expect(await authorizeError({ resource: 'https://unknown.example.test/api' })).toBe('invalid_target');
  });

  test('a scope no requested resource offers is invalid_scope', async () => {
    expect(await authorizeError({ scope: 'notes:read calendar:write' })).toBe('invalid_scope');
  });

  test('a duplicated scope parameter is invalid_request', async () => {
    expect(await authorizeError({ scope: ['notes:read', 'notes:write'] })).toBe('invalid_request');
  });

  test('an unregistered redirect_uri gets an error page and no redirect', async () => {
    for (const redirect of ['https://evil.example.test/callback', `${REDIRECT}/extra`, OTHER_REDIRECT]) {
      const req = await authRequest({ redirect_uri: redirect });
      const res = await browser.fetch(req.url);
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await res.text()).not.toContain(redirect);
    }
  });

  test('a repeated client_id or redirect_uri cannot be trusted: error page, no redirect', async () => {
    for (const over of [
      { redirect_uri: [REDIRECT, REDIRECT_2] },
      { client_id: [client.client_id, client.client_id] },
    ]) {
      const res = await browser.fetch((await authRequest(over)).url);
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    }
  });

  test('a consent POST without the CSRF token is 403 and issues no code', async () => {
    const req = await authRequest();
    const { consentPage: html } = await openConsentInBrowser(tb, user, req.url, { browser });
    const requestId = hiddenInput(html, 'request');
    for (const form of [
      { request: requestId, decision: 'approve' },
      { request: requestId, decision: 'approve', _csrf: 'not-the-token' },
    ]) {
      const res = await browser.postForm(`${tb.url}/authorize/consent`, form);
      expect(res.status).toBe(403);
      expect(res.headers.get('location')).toBeNull();
      expect(await res.text()).not.toContain('code=');
    }
    // The request is still unanswered: a proper submission approves it now, and only now.
    const res = await submitConsent(tb, browser, html, 'approve');
    expect(res.status).toBe(303);
    const params = oauth.validateAuthResponse(as, client, new URL(redirectLocation(tb, res)), req.state);
    const ok = await oauth.processAuthorizationCodeResponse(as, client, await redeem(params, req.verifier));
    expect(ok.access_token).toBeTruthy();
  });
});

describe('the consent page lets its form reach the client, and only the client', () => {
  const formAction = (res: Response) =>
    /form-action ([^;]*)/.exec(res.headers.get('content-security-policy') ?? '')?.[1] ?? null;

  test('form-action names the redirect URI’s origin on the consent page, and nothing else anywhere else', async () => {
    const req = await authRequest();
    const { consent } = await openConsentInBrowser(tb, user, req.url, { browser });
    // Browsers check form-action on the 303 that follows Allow or Deny (a blocked redirect is silent).
    expect(formAction(consent)).toBe("'self' https://app.example.test");
    expect(consent.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    for (const path of ['/signin', '/my/requests', '/authorize/consent?request=req_unknown']) {
      expect(formAction(await browser.fetch(`${tb.url}${path}`))).toBe("'self'");
    }
  });

  test('a redirect URI on [::1], which no CSP source names, gets a same-origin page that hands the code on', async () => {
    const ipv6 = 'http://[::1]:7778/cb';
    const api = await adminApi(tb);
    const v6Client = await addPublicClient(api, 'IPv6 App', [ipv6]);
    const req = await authRequest({ redirect_uri: ipv6 }, v6Client);
    const { consent, consentPage } = await openConsentInBrowser(tb, user, req.url, { browser });
    expect(formAction(consent)).toBe("'self'");
    const res = await submitConsent(tb, browser, consentPage, 'approve');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toContain('no-store');
    const html = await res.text();
    const to = /http-equiv="refresh" content="0;url=([^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
    expect(to?.startsWith(`${ipv6}?`)).toBe(true);
    const params = oauth.validateAuthResponse(as, v6Client, new URL(to!), req.state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      v6Client,
      await redeem(params, req.verifier, { client: v6Client, redirectUri: ipv6 }),
    );
    expect(tokens.access_token).toBeTruthy();
  });

  test('audit: consent.approved when the person allows, authorization_code.redeemed when the client has the code', async () => {
    const events = async (type: string) =>
      (await tb.broker.deps.audit.query({ type, limit: 1000 })).filter((e) => e.clientId === client.client_id);
    const approvedBefore = (await events('consent.approved')).length;
    const redeemedBefore = (await events('authorization_code.redeemed')).length;
    const { params, verifier } = await getCode();
    expect(await events('consent.approved')).toHaveLength(approvedBefore + 1);
    expect(await events('authorization_code.redeemed')).toHaveLength(redeemedBefore);
    expect(await events('consent.granted')).toEqual([]);

    await oauth.processAuthorizationCodeResponse(as, client, await redeem(params, verifier));
    const redeemed = await events('authorization_code.redeemed');
    expect(redeemed).toHaveLength(redeemedBefore + 1);
    expect(redeemed[0]).toMatchObject({ userId: user.id, result: 'allowed', audience: RESOURCE, scope: 'notes:read' });
  });
});
