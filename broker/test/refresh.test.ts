import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hashSecret } from '../tokens/random.js';
import {
  addPublicClient,
  addResource,
  adminApi,
  approveInBrowser,
  Browser,
  createUser,
  discover,
  insecure,
  startBroker,
  type TestBroker,
} from './fixtures.js';

const RESOURCE = 'https://notes.example.test/mcp';
const REDIRECT = 'https://app.example.test/callback';
const OTHER_REDIRECT = 'https://other.example.test/callback';

/** One broker with a public client, a second public client, a user and a signed-in browser. */
interface Setup {
  tb: TestBroker;
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  otherClient: oauth.Client;
  user: { id: string; username: string; password: string };
  browser: Browser;
}

async function setup(env: Record<string, string> = {}): Promise<Setup> {
  const tb = await startBroker(env);
  const api = await adminApi(tb);
  await addResource(api, RESOURCE, ['notes:read', 'notes:write', 'notes:admin']);
  return {
    tb,
    as: await discover(tb),
    client: await addPublicClient(api, 'Notes Desktop', [REDIRECT]),
    otherClient: await addPublicClient(api, 'Other App', [OTHER_REDIRECT]),
    user: await createUser(tb),
    browser: new Browser(),
  };
}

/** A full authorization code flow for `client` (DPoP-bound with `DPoP`); returns the token response. */
async function login(s: Setup, scope = 'notes:read notes:write', client = s.client, DPoP?: oauth.DPoPHandle) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(s.as.authorization_endpoint!);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: client === s.client ? REDIRECT : OTHER_REDIRECT,
    scope,
    resource: RESOURCE,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();
  const { callback } = await approveInBrowser(s.tb, s.user, url, { browser: s.browser });
  const params = oauth.validateAuthResponse(s.as, client, callback, state);
  const res = await oauth.authorizationCodeGrantRequest(
    s.as,
    client,
    oauth.None(),
    params,
    client === s.client ? REDIRECT : OTHER_REDIRECT,
    verifier,
    { ...insecure, ...(DPoP ? { DPoP } : {}), additionalParameters: { resource: RESOURCE } },
  );
  const tokens = await oauth.processAuthorizationCodeResponse(s.as, client, res);
  expect(tokens.refresh_token).toBeTruthy();
  return tokens as oauth.TokenEndpointResponse & { refresh_token: string };
}

function refreshRequest(
  s: Setup,
  refreshToken: string,
  params: Record<string, string> = {},
  client = s.client,
  DPoP?: oauth.DPoPHandle,
) {
  return oauth.refreshTokenGrantRequest(s.as, client, oauth.None(), refreshToken, {
    ...insecure,
    ...(DPoP ? { DPoP } : {}),
    additionalParameters: params,
  });
}

async function refresh(s: Setup, refreshToken: string, params: Record<string, string> = {}, DPoP?: oauth.DPoPHandle) {
  const res = await refreshRequest(s, refreshToken, params, s.client, DPoP);
  const tokens = await oauth.processRefreshTokenResponse(s.as, s.client, res);
  expect(tokens.refresh_token).toBeTruthy();
  return tokens as oauth.TokenEndpointResponse & { refresh_token: string };
}

/** The error code of a refused refresh, as oauth4webapi reports it. */
async function refreshError(s: Setup, refreshToken: string, params: Record<string, string> = {}, client = s.client) {
  const res = await refreshRequest(s, refreshToken, params, client);
  const err = await oauth.processRefreshTokenResponse(s.as, client, res).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(oauth.ResponseBodyError);
  expect((err as oauth.ResponseBodyError).status).toBe(400);
  return (err as oauth.ResponseBodyError).error;
}

async function accessTokenRow(s: Setup, accessToken: string) {
  const { jti } = decodeJwt(accessToken);
  expect(jti).toBeTruthy();
  const row = await s.tb.broker.deps.grants.getToken(jti!);
  expect(row).not.toBeNull();
  return row!;
}

describe('refresh token rotation (default 10 s grace window)', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup();
  });
  afterAll(() => s.tb.close());

  test('a refresh rotates the refresh token and issues a new access token for the same user', async () => {
    const first = await login(s);
    const next = await refresh(s, first.refresh_token);
    expect(next.refresh_token).not.toBe(first.refresh_token);
    expect(next.access_token).not.toBe(first.access_token);
    expect(next.scope).toBe('notes:read notes:write');
    expect(decodeJwt(next.access_token)).toMatchObject({
      sub: s.user.id,
      aud: RESOURCE,
      client_id: s.client.client_id,
    });
    // The successor works in turn.
    const third = await refresh(s, next.refresh_token);
    expect(third.refresh_token).not.toBe(next.refresh_token);
  });

  test('two concurrent refreshes with one token both get the same successor', async () => {
    const first = await login(s);
    const [a, b] = await Promise.all([refresh(s, first.refresh_token), refresh(s, first.refresh_token)]);
    expect(a.refresh_token).not.toBe(first.refresh_token);
    expect(b.refresh_token).toBe(a.refresh_token);
    expect(b.access_token).toBe(a.access_token);
    // Nothing was revoked: the shared successor and its access token are live.
    expect((await accessTokenRow(s, a.access_token)).revokedAt).toBeNull();
    const after = await refresh(s, a.refresh_token);
    expect(after.refresh_token).not.toBe(a.refresh_token);
  });

  test('reuse after the grace window is invalid_grant and revokes the whole family', async () => {
    const t0 = await login(s);
    const t1 = await refresh(s, t0.refresh_token);
    const t2 = await refresh(s, t1.refresh_token);
    for (const t of [t0, t1, t2]) expect((await accessTokenRow(s, t.access_token)).revokedAt).toBeNull();

    s.tb.clock.advance(11);
    expect(await refreshError(s, t0.refresh_token)).toBe('invalid_grant');

    // The latest successor, never used, is revoked with the family.
    expect(await refreshError(s, t2.refresh_token)).toBe('invalid_grant');
    for (const t of [t0, t1, t2]) expect((await accessTokenRow(s, t.access_token)).revokedAt).not.toBeNull();
    for (const rt of [t0.refresh_token, t1.refresh_token, t2.refresh_token]) {
      const row = await s.tb.broker.deps.grants.getRefresh(hashSecret(rt));
      expect(row?.revokedAt).not.toBeNull();
      expect(row?.graceResponse).toBeNull();
    }
  });

  test('a narrower scope is granted; a wider one is invalid_scope', async () => {
    const first = await login(s, 'notes:read notes:write');
    const narrow = await refresh(s, first.refresh_token, { scope: 'notes:read' });
    expect(narrow.scope).toBe('notes:read');
    expect(decodeJwt(narrow.access_token).scope).toBe('notes:read');

    // notes:admin is offered by the resource but was never granted.
    expect(await refreshError(s, narrow.refresh_token, { scope: 'notes:read notes:admin' })).toBe('invalid_scope');
    expect(await refreshError(s, narrow.refresh_token, { scope: 'calendar:read' })).toBe('invalid_scope');
  });

  test("another client's refresh token is invalid_grant (and is not burnt for its owner)", async () => {
    const first = await login(s);
    expect(await refreshError(s, first.refresh_token, {}, s.otherClient)).toBe('invalid_grant');
    const own = await refresh(s, first.refresh_token);
    expect(own.access_token).toBeTruthy();
  });

  test('an unknown refresh token is invalid_grant', async () => {
    expect(await refreshError(s, 'ert_not-a-real-token')).toBe('invalid_grant');
  });
});

describe('the grace window applies every check of a first use (RFC 9449 §5, OAuth 2.1 §4.3.1)', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup();
  });
  afterAll(() => s.tb.close());

  /** A refused refresh: exactly an OAuth error body, nothing else. */
  async function expectRefused(res: Response, error: string, description: RegExp) {
    expect(res.status).toBe(400);
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['error', 'error_description']);
    expect(body.error).toBe(error);
    expect(body.error_description).toMatch(description);
  }

  /** The grace-window events of one refresh family, oldest first. */
  async function graceEvents(refreshToken: string) {
    const row = await s.tb.broker.deps.grants.getRefresh(hashSecret(refreshToken));
    const events = await s.tb.broker.deps.audit.query({ type: 'refresh_token.grace_reused', userId: s.user.id });
    return events.filter((e) => e.details.familyId === row?.familyId).reverse();
  }

  test("a thief replaying a DPoP-bound refresh token in the window gets invalid_grant and none of the victim's tokens", async () => {
    const DPoP = oauth.DPoP(s.client, await oauth.generateKeyPair('ES256'));
    const first = await login(s, undefined, s.client, DPoP);
    const victim = await refresh(s, first.refresh_token, {}, DPoP);
    expect(victim.token_type).toBe('dpop');

    // Within the window, without a proof and with a proof by another key: refused, nothing disclosed.
    await expectRefused(await refreshRequest(s, first.refresh_token), 'invalid_grant', /bound to a DPoP key/);
    const thief = oauth.DPoP(s.client, await oauth.generateKeyPair('ES256'));
    await expectRefused(
      await refreshRequest(s, first.refresh_token, {}, s.client, thief),
      'invalid_grant',
      /bound to a DPoP key/,
    );

    // The victim's concurrent retry, with its key, still gets the very same successor.
    const retry = await refresh(s, first.refresh_token, {}, DPoP);
    expect(retry.refresh_token).toBe(victim.refresh_token);
    expect(retry.access_token).toBe(victim.access_token);
    // The family is intact: nothing was revoked and the successor rotates on.
    expect((await accessTokenRow(s, victim.access_token)).revokedAt).toBeNull();
    expect((await refresh(s, victim.refresh_token, {}, DPoP)).refresh_token).not.toBe(victim.refresh_token);

    // Every retry in the window is audited, on whose behalf and for which client.
    const events = await graceEvents(first.refresh_token);
    expect(events.map((e) => [e.result, e.reason])).toEqual([
      ['denied', 'dpop_key_mismatch'],
      ['denied', 'dpop_key_mismatch'],
      ['allowed', null],
    ]);
    expect(events[2]).toMatchObject({
      userId: s.user.id,
      clientId: s.client.client_id,
      actorChain: [s.client.client_id],
      scope: 'notes:read notes:write',
      details: { jti: decodeJwt(victim.access_token).jti },
    });
  });

  test("an unbound refresh token: the response goes only to the first request's DPoP key and the same request", async () => {
    const first = await login(s);
    // The first refresh is made with a DPoP key: its access token is bound to that key.
    const DPoP = oauth.DPoP(s.client, await oauth.generateKeyPair('ES256'));
    const victim = await refresh(s, first.refresh_token, {}, DPoP);
    expect(decodeJwt(victim.access_token).cnf).toBeDefined();

    const other = oauth.DPoP(s.client, await oauth.generateKeyPair('ES256'));
    for (const key of [undefined, other]) {
      await expectRefused(
        await refreshRequest(s, first.refresh_token, {}, s.client, key),
        'invalid_grant',
        /already used; within the grace window only the DPoP key of the first request/,
      );
    }
    // Same key, but a narrower scope than the first request: not the same request.
    await expectRefused(
      await refreshRequest(s, first.refresh_token, { scope: 'notes:read' }, s.client, DPoP),
      'invalid_grant',
      /only the same scope and resource/,
    );
    // A wider scope is refused as on a first use.
    await expectRefused(
      await refreshRequest(s, first.refresh_token, { scope: 'notes:read notes:admin' }, s.client, DPoP),
      'invalid_scope',
      /exceeds/,
    );
    expect((await refresh(s, first.refresh_token, {}, DPoP)).refresh_token).toBe(victim.refresh_token);

    // Once the family is revoked, the window serves nothing either.
    const revoked = await oauth.revocationRequest(s.as, s.client, oauth.None(), victim.refresh_token, insecure);
    await oauth.processRevocationResponse(revoked);
    await expectRefused(
      await refreshRequest(s, first.refresh_token, {}, s.client, DPoP),
      'invalid_grant',
      /has been revoked/,
    );
    const events = await graceEvents(first.refresh_token);
    expect(events.map((e) => [e.result, e.reason])).toEqual([
      ['denied', 'dpop_key_mismatch'],
      ['denied', 'dpop_key_mismatch'],
      ['denied', 'request_mismatch'],
      ['allowed', null],
    ]);
  });
});

describe('the grace window after a clock step (README "Clock skew and clock jumps")', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup();
  });
  afterAll(() => s.tb.close());

  test('a replay after the clock stepped back 1 h is reuse: invalid_grant and the family is revoked', async () => {
    const t0 = await login(s);
    const t1 = await refresh(s, t0.refresh_token);
    s.tb.clock.jump(-3600);
    s.tb.clock.advance(60);
    await s.tb.broker.maintain();
    // By the stepped clock the first use lies 59 min in the future: not within 10 s of it.
    expect(await refreshError(s, t0.refresh_token)).toBe('invalid_grant');
    expect(await refreshError(s, t1.refresh_token)).toBe('invalid_grant');
    for (const t of [t0, t1]) expect((await accessTokenRow(s, t.access_token)).revokedAt).not.toBeNull();
    const row = await s.tb.broker.deps.grants.getRefresh(hashSecret(t0.refresh_token));
    expect(row?.graceResponse).toBeNull();
    const reused = await s.tb.broker.deps.audit.query({ type: 'refresh_token.reused', userId: s.user.id });
    expect(reused.some((e) => e.details.familyId === row?.familyId)).toBe(true);
  });

  test('maintenance after a backward step drops the kept response, as the refresh would refuse it', async () => {
    const t0 = await login(s);
    await refresh(s, t0.refresh_token);
    expect((await s.tb.broker.deps.grants.getRefresh(hashSecret(t0.refresh_token)))?.graceResponse).not.toBeNull();
    s.tb.clock.jump(-3600);
    await s.tb.broker.maintain();
    expect((await s.tb.broker.deps.grants.getRefresh(hashSecret(t0.refresh_token)))?.graceResponse).toBeNull();
  });

  test('a retry by a clock up to ERRAND_CLOCK_SKEW behind the first use still gets the same successor', async () => {
    const t0 = await login(s);
    const t1 = await refresh(s, t0.refresh_token);
    // Another process on the same database, 5 s behind: within the skew the window still holds.
    s.tb.clock.jump(-5);
    const retry = await refresh(s, t0.refresh_token);
    expect(retry.refresh_token).toBe(t1.refresh_token);
    expect((await accessTokenRow(s, t1.access_token)).revokedAt).toBeNull();
  });
});

describe('refresh token reuse without a grace window (ERRAND_REFRESH_GRACE_PERIOD=0)', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup({ ERRAND_REFRESH_GRACE_PERIOD: '0' });
  });
  afterAll(() => s.tb.close());

  test('a second use is reuse at once: invalid_grant and the family is revoked', async () => {
    const t0 = await login(s);
    const t1 = await refresh(s, t0.refresh_token);
    expect(await refreshError(s, t0.refresh_token)).toBe('invalid_grant');
    expect(await refreshError(s, t1.refresh_token)).toBe('invalid_grant');
    expect((await accessTokenRow(s, t0.access_token)).revokedAt).not.toBeNull();
    expect((await accessTokenRow(s, t1.access_token)).revokedAt).not.toBeNull();
  });
});

describe('refresh token idle expiry (ERRAND_REFRESH_TOKEN_IDLE_TTL=60)', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup({ ERRAND_REFRESH_TOKEN_IDLE_TTL: '60' });
  });
  afterAll(() => s.tb.close());

  test('a refresh token unused past the idle TTL is invalid_grant; a rotated one lives on', async () => {
    const a = await login(s);
    const b = await login(s);
    s.tb.clock.advance(30);
    const a1 = await refresh(s, a.refresh_token);
    s.tb.clock.advance(31);
    // b is 61 s old and was never used: expired.
    expect(await refreshError(s, b.refresh_token)).toBe('invalid_grant');
    // a1 was issued 31 s ago: still within its own idle window.
    const a2 = await refresh(s, a1.refresh_token);
    expect(a2.access_token).toBeTruthy();
  });
});
