import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { delegateViaCiba, GRANT_EXCHANGE, introspector, TT_ACCESS, TT_JWT, userApi } from './delegation-fixtures.js';
import { proofKey } from './dpop-fixtures.js';
import {
  addAgent,
  addPublicClient,
  addResource,
  adminApi,
  approveInBrowser,
  Browser,
  createUser,
  discover,
  insecure,
  startBroker,
  type TestAgent,
  type TestBroker,
  verifyAccessToken,
} from './fixtures.js';

/**
 * RFC 8693 on-behalf-of exchange as gateways and MCP servers do it: a resource server that received
 * a user's access token for its own audience exchanges it for a task token to a downstream resource.
 * The gateway is panva's openid-client, unmodified (`genericGrantRequest`); the user's token comes
 * from a real authorization code flow through the consent page.
 */

const GATEWAY = 'https://gateway.example.test/mcp';
const GATEWAY_2 = 'https://gateway-2.example.test/mcp';
const NOTES = 'https://notes.example.test/mcp';
const CALENDAR = 'https://calendar.example.test/api';
const REDIRECT = 'http://127.0.0.1:7777/callback';

let tb: TestBroker;
let api: Awaited<ReturnType<typeof adminApi>>;
let as: oauth.AuthorizationServer;
let desktop: oauth.Client;
let gateway: TestAgent;
let gateway2: TestAgent;
let stranger: TestAgent;
let user: Awaited<ReturnType<typeof createUser>>;
let user2: Awaited<ReturnType<typeof createUser>>;
let introspect: Awaited<ReturnType<typeof introspector>>;

beforeAll(async () => {
  tb = await startBroker();
  api = await adminApi(tb);
  await addResource(api, GATEWAY, ['gw:use']);
  await addResource(api, GATEWAY_2, ['gw:use']);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  await addResource(api, CALENDAR, ['calendar:read', 'calendar:write']);
  desktop = await addPublicClient(api, 'Desktop MCP client', [REDIRECT]);
  const exchanger = (resources: string[], name: string) =>
    addAgent(api, {
      kind: 'resource_server',
      name,
      resources,
      grant_types: [GRANT_EXCHANGE, 'urn:openid:params:grant-type:ciba'],
    });
  gateway = await exchanger([GATEWAY], 'MCP gateway');
  gateway2 = await exchanger([GATEWAY_2], 'second gateway');
  stranger = await exchanger([CALENDAR], 'calendar server');
  const rules = await api.call('PUT', `/api/admin/clients/${gateway.clientId}/exchange-rules`, {
    rules: [{ resource: NOTES, scopes: ['notes:read'], max_token_ttl: 120 }],
  });
  expect(rules.status).toBe(200);
  user = await createUser(tb);
  user2 = await createUser(tb);
  as = await discover(tb);
  introspect = await introspector(tb, api, [NOTES, CALENDAR]);
});
afterAll(() => tb.close());

/** A user's ordinary tokens, as their MCP client gets them: code flow with consent, PKCE, one resource. */
async function userTokens(
  who: { username: string; password: string },
  resource = GATEWAY,
  scope = 'gw:use',
  dpop?: oauth.DPoPHandle,
) {
  const verifier = oauth.generateRandomCodeVerifier();
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: desktop.client_id,
    redirect_uri: REDIRECT,
    scope,
    resource,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();
  const { callback } = await approveInBrowser(tb, who, url, { browser: new Browser() });
  const params = oauth.validateAuthResponse(as, desktop, callback, oauth.expectNoState);
  const res = await oauth.authorizationCodeGrantRequest(as, desktop, oauth.None(), params, REDIRECT, verifier, {
    ...insecure,
    ...(dpop ? { DPoP: dpop } : {}),
    additionalParameters: { resource },
  });
  return oauth.processAuthorizationCodeResponse(as, desktop, res);
}

/** A user's ordinary access token for `resource` (the gateway's by default). */
async function userToken(...args: Parameters<typeof userTokens>) {
  return (await userTokens(...args)).access_token;
}

/** The gateway as openid-client sees it: discovery, then private_key_jwt client authentication. */
async function gatewayConfig(rs: TestAgent = gateway, auth?: oidc.ClientAuth): Promise<oidc.Configuration> {
  return oidc.discovery(
    new URL(tb.url),
    rs.clientId,
    { [oidc.clockSkew]: tb.clock.offset },
    auth ?? oidc.PrivateKeyJwt({ key: rs.privateKey, kid: rs.kid }),
    // Default OpenID discovery; http is allowed only because the test broker is on 127.0.0.1.
    { execute: [oidc.allowInsecureRequests] },
  );
}

/** The on-behalf-of exchange through openid-client's genericGrantRequest. */
function onBehalfOf(config: oidc.Configuration, subject: string, params: Record<string, string> = {}) {
  return oidc.genericGrantRequest(config, GRANT_EXCHANGE, {
    subject_token: subject,
    subject_token_type: TT_ACCESS,
    resource: NOTES,
    ...params,
  });
}

/** The error openid-client surfaces for a refused request. */
async function refusal(p: Promise<unknown>) {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(oidc.ResponseBodyError);
  const e = err as oidc.ResponseBodyError;
  return { status: e.status, error: e.error, description: e.error_description ?? '' };
}

describe('on-behalf-of exchange (RFC 8693) by a resource server', () => {
  test('a user token for the gateway becomes a task token for the downstream resource: sub = user, act = gateway', async () => {
    const subject = await userToken(user);
    const subjectClaims = decodeJwt(subject);
    const res = await onBehalfOf(await gatewayConfig(), subject, { scope: 'notes:read' });
    expect(res).toMatchObject({ token_type: 'bearer', issued_token_type: TT_ACCESS, scope: 'notes:read' });
    expect(res.expires_in).toBeLessThanOrEqual(120);
    const { payload } = await verifyAccessToken(as, res.access_token, NOTES);
    expect(payload).toMatchObject({
      sub: user.id,
      aud: NOTES,
      client_id: gateway.clientId,
      act: { sub: gateway.clientId },
      scope: 'notes:read',
      task_id: res.task_id,
    });
    expect(payload.exp!).toBeLessThanOrEqual(subjectClaims.exp!);
    expect(await introspect(res.access_token)).toMatchObject({ active: true, sub: user.id });
    // Audited with both identities: the user, the gateway as actor, and the client the user's token was for.
    const [event] = await tb.broker.deps.audit.query({ type: 'token.exchanged', taskId: String(res.task_id) });
    expect(event).toMatchObject({ userId: user.id, clientId: gateway.clientId, actorChain: [gateway.clientId] });
    expect(event!.details.onBehalfOf).toMatchObject({
      subjectJti: subjectClaims.jti,
      subjectClientId: desktop.client_id,
      subjectAudience: GATEWAY,
      via: 'exchange_rule',
    });
    // The task is the user's: they see it and can end it.
    const me = await userApi(tb, user);
    const tasks = (await (await me.call('GET', '/api/me/tasks')).json()) as { tasks: { task_id: string }[] };
    expect(tasks.tasks.map((t) => t.task_id)).toContain(res.task_id);
  });

  test('without scope the token gets what the rule allows, never the resource’s other scopes', async () => {
    const res = await onBehalfOf(await gatewayConfig(), await userToken(user));
    expect(res.scope).toBe('notes:read');
  });

  test('a wider scope than the rule allows is invalid_scope', async () => {
    const subject = await userToken(user);
    expect(
      await refusal(onBehalfOf(await gatewayConfig(), subject, { scope: 'notes:read notes:write' })),
    ).toMatchObject({ status: 400, error: 'invalid_scope' });
  });

  test('a downstream resource no delegation or rule covers is invalid_target, audited', async () => {
    const subject = await userToken(user);
    const r = await refusal(onBehalfOf(await gatewayConfig(), subject, { resource: CALENDAR }));
    expect(r).toMatchObject({ status: 400, error: 'invalid_target' });
    expect(r.description).toContain(`no delegation or exchange rule lets client ${gateway.clientId} act for this user`);
    const [denied] = await tb.broker.deps.audit.query({
      type: 'exchange.denied',
      clientId: gateway.clientId,
      limit: 1,
    });
    expect(denied).toMatchObject({ userId: user.id, reason: 'not_delegated_for_user', audience: CALENDAR });
  });

  test('a subject token for another audience is refused: no passthrough of a token meant for someone else', async () => {
    // The user's token for the gateway, presented by another resource server.
    const forGateway = await userToken(user);
    const r = await refusal(onBehalfOf(await gatewayConfig(stranger), forGateway, { resource: CALENDAR }));
    expect(r).toMatchObject({ status: 400, error: 'invalid_request' });
    expect(r.description).toContain(`subject_token is an access token for "${GATEWAY}"`);
    // A token the user got for the downstream resource itself, presented by the gateway.
    const forNotes = await userToken(user, NOTES, 'notes:read');
    expect(await refusal(onBehalfOf(await gatewayConfig(), forNotes))).toMatchObject({
      status: 400,
      error: 'invalid_request',
      description: expect.stringContaining(`subject_token is an access token for "${NOTES}"`),
    });
  });

  test("a user's delegation to the gateway governs it; another user's delegation does not", async () => {
    // user2 delegates calendar:read to the second gateway over CIBA; user1 never did.
    const as4 = await discover(tb);
    await delegateViaCiba(tb, as4, gateway2, user2, { scope: 'openid calendar:read', resource: CALENDAR });
    const config = await gatewayConfig(gateway2);
    const mine = await onBehalfOf(config, await userToken(user2, GATEWAY_2), { resource: CALENDAR });
    const claims = decodeJwt(mine.access_token);
    expect(claims).toMatchObject({
      sub: user2.id,
      aud: CALENDAR,
      act: { sub: gateway2.clientId },
      scope: 'calendar:read',
    });
    const r = await refusal(onBehalfOf(config, await userToken(user, GATEWAY_2), { resource: CALENDAR }));
    expect(r).toMatchObject({ status: 400, error: 'invalid_target' });
  });

  test('ending the task ends the downstream token; its token is then refused as a subject', async () => {
    const res = await onBehalfOf(await gatewayConfig(), await userToken(user));
    expect((await introspect(res.access_token)).active).toBe(true);
    const me = await userApi(tb, user);
    expect((await me.call('POST', `/api/me/tasks/${res.task_id}/end`)).status).toBe(200);
    expect(await introspect(res.access_token)).toEqual({ active: false });
    const r = await refusal(onBehalfOf(await gatewayConfig(), res.access_token));
    expect(r).toMatchObject({ status: 400, error: 'invalid_request' });
    expect(r.description).toContain('has ended');
  });

  test('changing the gateway’s exchange rules revokes what the old ones granted, at once', async () => {
    const res = await onBehalfOf(await gatewayConfig(), await userToken(user));
    const put = (rules: unknown[]) =>
      api.call('PUT', `/api/admin/clients/${gateway.clientId}/exchange-rules`, { rules });
    expect((await put([{ resource: NOTES, scopes: ['notes:read', 'notes:write'], max_token_ttl: 120 }])).status).toBe(
      200,
    );
    expect(await introspect(res.access_token)).toEqual({ active: false });
    const view = (await (await api.call('GET', `/api/admin/clients/${gateway.clientId}`)).json()) as Record<
      string,
      unknown
    >;
    expect(view.exchange_rules).toEqual([
      { resource: NOTES, scopes: ['notes:read', 'notes:write'], max_token_ttl: 120 },
    ]);
    expect((await put([{ resource: NOTES, scopes: ['notes:read'], max_token_ttl: 120 }])).status).toBe(200);
  });

  test('the admin API refuses rules it could not honour', async () => {
    const put = (id: string, rules: unknown[]) => api.call('PUT', `/api/admin/clients/${id}/exchange-rules`, { rules });
    const bad = async (res: Response) => ({ status: res.status, ...((await res.json()) as Record<string, string>) });
    expect(
      await bad(await put(gateway.clientId, [{ resource: 'https://nowhere.example.test/', scopes: ['x'] }])),
    ).toMatchObject({
      status: 400,
      error_description: expect.stringContaining('is not a registered resource'),
    });
    expect(await bad(await put(gateway.clientId, [{ resource: NOTES, scopes: ['notes:delete'] }]))).toMatchObject({
      status: 400,
      error_description: expect.stringContaining('is not offered by'),
    });
    const introspectOnly = await addAgent(api, {
      kind: 'resource_server',
      resources: [GATEWAY],
      grant_types: ['client_credentials'],
    });
    expect(await bad(await put(introspectOnly.clientId, [{ resource: NOTES, scopes: ['notes:read'] }]))).toMatchObject({
      status: 400,
      error_description: expect.stringContaining('not allowed token exchange'),
    });
  });

  test('a revoked subject token is refused', async () => {
    const subject = await userToken(user);
    const revoked = await oauth.revocationRequest(as, desktop, oauth.None(), subject, insecure);
    expect(revoked.status).toBe(200);
    expect(await refusal(onBehalfOf(await gatewayConfig(), subject))).toMatchObject({
      status: 400,
      error: 'invalid_request',
      description: 'subject_token is invalid, expired or revoked',
    });
  });

  test("revoking the user's access token ends the tasks started from it", async () => {
    const subject = await userToken(user);
    const res = await onBehalfOf(await gatewayConfig(), subject);
    expect((await introspect(res.access_token)).active).toBe(true);
    expect((await oauth.revocationRequest(as, desktop, oauth.None(), subject, insecure)).status).toBe(200);
    expect(await introspect(res.access_token)).toEqual({ active: false });
    expect(await tb.broker.deps.tasks.get(String(res.task_id))).toMatchObject({
      state: 'canceled',
      endReason: 'subject_revoked',
    });
  });

  test('a replayed refresh token (its family revoked as stolen) ends the downstream tasks of the family', async () => {
    const first = await userTokens(user);
    const rt = first.refresh_token!;
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      desktop,
      await oauth.refreshTokenGrantRequest(as, desktop, oauth.None(), rt, insecure),
    );
    const fromOld = await onBehalfOf(await gatewayConfig(), first.access_token);
    const fromNew = await onBehalfOf(await gatewayConfig(), refreshed.access_token);
    // Past the concurrent-refresh grace window, a second use of the same refresh token is theft.
    tb.clock.advance(15);
    const replay = await oauth.refreshTokenGrantRequest(as, desktop, oauth.None(), rt, insecure);
    expect(replay.status).toBe(400);
    expect(await introspect(fromOld.access_token)).toEqual({ active: false });
    expect(await introspect(fromNew.access_token)).toEqual({ active: false });
  });

  test('forged subjects: alg none, a foreign key under Errand’s issuer, another issuer', async () => {
    const now = Math.floor(Date.now() / 1000) + tb.clock.offset;
    const claims = {
      iss: tb.url,
      sub: user.id,
      aud: GATEWAY,
      client_id: desktop.client_id,
      scope: 'gw:use',
      jti: 'j1',
      iat: now,
      exp: now + 300,
    };
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const none = `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.`;
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const kid = (await exportJWK(publicKey)).x!.slice(0, 8);
    const sign = (c: Record<string, unknown>) =>
      new SignJWT(c).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid }).sign(privateKey);
    const config = await gatewayConfig();
    for (const forged of [none, await sign(claims)]) {
      expect(await refusal(onBehalfOf(config, forged))).toMatchObject({
        status: 400,
        error: 'invalid_request',
        description: 'subject_token is invalid, expired or revoked',
      });
    }
    const foreign = await sign({ ...claims, iss: 'https://idp.example.test' });
    expect(await refusal(onBehalfOf(config, foreign))).toMatchObject({
      status: 400,
      error: 'invalid_request',
      description: expect.stringContaining('another issuer'),
    });
  });

  test('a DPoP-bound subject token needs a proof by its key', async () => {
    const key = await proofKey();
    const subject = await userToken(user, GATEWAY, 'gw:use', oauth.DPoP(desktop, key.pair));
    expect(decodeJwt(subject).cnf).toEqual({ jkt: key.jkt });
    const r = await refusal(onBehalfOf(await gatewayConfig(), subject));
    expect(r).toMatchObject({ status: 400, error: 'invalid_request' });
    expect(r.description).toContain('DPoP-bound');
  });

  test('a public client cannot be the gateway; an unauthenticated gateway is invalid_client', async () => {
    const subject = await userToken(user);
    const asPublic = await oidc.discovery(new URL(tb.url), desktop.client_id, undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
    expect(await refusal(onBehalfOf(asPublic, subject))).toMatchObject({ status: 400, error: 'unauthorized_client' });
    expect(await refusal(onBehalfOf(await gatewayConfig(gateway, oidc.None()), subject))).toMatchObject({
      status: 401,
      error: 'invalid_client',
    });
  });

  test('a subject token sent as the jwt type is told its right type', async () => {
    const subject = await userToken(user);
    const r = await refusal(onBehalfOf(await gatewayConfig(), subject, { subject_token_type: TT_JWT }));
    expect(r).toMatchObject({ error: 'invalid_request', description: expect.stringContaining(TT_ACCESS) });
  });

  // Moves the broker's clock: kept last.
  test('the downstream token and its task never outlive the subject token; an expired subject is refused', async () => {
    const subject = await userToken(user);
    const subjectExp = decodeJwt(subject).exp!;
    tb.clock.advance(subjectExp - tb.clock.now() - 30);
    const res = await onBehalfOf(await gatewayConfig(), subject);
    expect(res.expires_in).toBeLessThanOrEqual(30);
    expect(decodeJwt(res.access_token).exp).toBeLessThanOrEqual(subjectExp);
    const task = await tb.broker.deps.tasks.get(String(res.task_id));
    expect(task!.deadline).toBeLessThanOrEqual(subjectExp);
    tb.clock.advance(60);
    expect(await refusal(onBehalfOf(await gatewayConfig(), subject))).toMatchObject({
      status: 400,
      error: 'invalid_request',
      description: 'subject_token is invalid, expired or revoked',
    });
  });
});
