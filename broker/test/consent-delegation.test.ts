import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RevocationPush } from '../../packages/guard/src/push.js';
import { agentClient, exchange, exchangeRaw, TT_ACCESS, TT_JWT, userApi } from './delegation-fixtures.js';
import {
  addAgent,
  addResource,
  adminApi,
  createUser,
  discover,
  hiddenInput,
  insecure,
  openConsentInBrowser,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

const NOTES = 'https://notes.example.test/mcp';
const REDIRECT = 'https://agent.example.test/callback';

let tb: TestBroker;
let as: oauth.AuthorizationServer;
let agent: TestAgent;
let helper: TestAgent;
let grandchild: TestAgent;

beforeAll(async () => {
  tb = await startBroker();
  const api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  agent = await addAgent(api, {
    name: 'Inbox agent',
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:token-exchange'],
  });
  helper = await addAgent(api, { name: 'helper', grant_types: undefined });
  grandchild = await addAgent(api, { name: 'grandchild', grant_types: undefined });
  as = await discover(tb);
});
afterAll(() => tb.close());

async function authorizeUrl(verifier: string, extra: Record<string, string> = {}) {
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: agent.clientId,
    redirect_uri: REDIRECT,
    scope: 'notes:read notes:write',
    resource: NOTES,
    state: 's1',
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    max_depth: '2',
    delegation_expires_in: '86400',
    ...extra,
  }).toString();
  return url;
}

describe('an agent asks through the authorization code flow; the user narrows on the consent page', () => {
  test('narrowed scope, depth and expiry become the delegation the credential stands for', async () => {
    const user = await createUser(tb);
    const verifier = oauth.generateRandomCodeVerifier();
    const { browser, consentPage } = await openConsentInBrowser(tb, user, await authorizeUrl(verifier));
    // The page offers each asked scope as a checkbox, and no longer expiry or deeper chains than asked.
    expect(consentPage).toContain('Inbox agent');
    expect(consentPage).toContain(`value="${NOTES} notes:read"`);
    expect(consentPage).toContain(`value="${NOTES} notes:write"`);
    expect(consentPage).toMatch(/<select id="max_depth"[^>]*>.*value="2"/s);
    expect(consentPage).not.toMatch(/value="3"/);

    // The user keeps only notes:read, one sub-agent level and one hour.
    const form = new URLSearchParams({
      _csrf: hiddenInput(consentPage, '_csrf'),
      request: hiddenInput(consentPage, 'request'),
      grant: `${NOTES} notes:read`,
      expires_in: '3600',
      max_depth: '1',
      decision: 'approve',
    });
    const decided = await browser.fetch(`${tb.url}/authorize/consent`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    });
    expect(decided.status).toBe(303);
    const [client, auth] = agentClient(tb, agent);
    const params = oauth.validateAuthResponse(as, client, new URL(decided.headers.get('location')!), 's1');
    const res = await oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT, verifier, insecure);
    const credential = await oauth.processAuthorizationCodeResponse(as, client, res);
    expect(credential.token_type).toBe('bearer');
    expect(credential.refresh_token).toBeUndefined();
    expect(credential.scope).toBe('notes:read');
    expect(credential.expires_in).toBeLessThanOrEqual(3600);

    // The delegation shows what was asked and what was granted.
    const me = await userApi(tb, user);
    const list = (await (await me.call('GET', '/api/me/delegations?status=active')).json()) as {
      delegations: Record<string, unknown>[];
    };
    expect(list.delegations).toHaveLength(1);
    expect(list.delegations[0]).toMatchObject({ source: 'consent', max_depth: 1, scopes: { [NOTES]: ['notes:read'] } });

    // The narrowing holds at exchange: no notes:write, and only one level of sub-agents.
    const wider = await exchangeRaw(tb, as, agent, {
      subject_token: credential.access_token,
      subject_token_type: TT_JWT,
      scope: 'notes:write',
    });
    expect(wider.status).toBe(400);
    expect(await wider.json()).toMatchObject({ error: 'invalid_scope' });
    const root = await exchange(tb, as, agent, { subject_token: credential.access_token, subject_token_type: TT_JWT });
    expect(root.scope).toBe('notes:read');
    const child = await exchange(tb, as, helper, { subject_token: root.access_token, subject_token_type: TT_ACCESS });
    const tooDeep = await exchangeRaw(tb, as, grandchild, {
      subject_token: child.access_token,
      subject_token_type: TT_ACCESS,
    });
    expect(tooDeep.status).toBe(400);
    expect(await tooDeep.json()).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringContaining('depth'),
    });
  });

  test('widening in the form (a scope that was not asked) is refused and issues nothing', async () => {
    const user = await createUser(tb);
    const { browser, consentPage } = await openConsentInBrowser(
      tb,
      user,
      await authorizeUrl(oauth.generateRandomCodeVerifier()),
    );
    const form = new URLSearchParams({
      _csrf: hiddenInput(consentPage, '_csrf'),
      request: hiddenInput(consentPage, 'request'),
      grant: `${NOTES} notes:admin`,
      max_depth: '5',
      decision: 'approve',
    });
    const res = await browser.fetch(`${tb.url}/authorize/consent`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.text()).toContain('was not requested');
    const me = await userApi(tb, user);
    const list = (await (await me.call('GET', '/api/me/delegations')).json()) as { delegations: unknown[] };
    expect(list.delegations).toHaveLength(0);
  });
  test('replaying the code revokes the delegation it produced: its credential and task tokens stop working', async () => {
    const user = await createUser(tb);
    const verifier = oauth.generateRandomCodeVerifier();
    const { browser, consentPage } = await openConsentInBrowser(tb, user, await authorizeUrl(verifier));
    const form = new URLSearchParams({
      _csrf: hiddenInput(consentPage, '_csrf'),
      request: hiddenInput(consentPage, 'request'),
      decision: 'approve',
    });
    form.append('grant', `${NOTES} notes:read`);
    form.append('grant', `${NOTES} notes:write`);
    const decided = await browser.fetch(`${tb.url}/authorize/consent`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    });
    expect(decided.status).toBe(303);
    const [client, auth] = agentClient(tb, agent);
    const params = oauth.validateAuthResponse(as, client, new URL(decided.headers.get('location')!), 's1');
    const redeem = () => oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT, verifier, insecure);
    const credential = await oauth.processAuthorizationCodeResponse(as, client, await redeem());
    const delegationId = String(credential.delegation_id);
    const task = await exchange(tb, as, agent, { subject_token: credential.access_token, subject_token_type: TT_JWT });

    // A resource server of the notes audience listens on the revocation push channel.
    const rs = await addAgent(await adminApi(tb), {
      kind: 'resource_server',
      name: 'notes server',
      resources: [NOTES],
      grant_types: ['client_credentials'],
    });
    const push = new RevocationPush(
      { issuer: tb.url, resource: NOTES, fetch, now: () => tb.clock.now(), clockSkew: 30, retain: 3600 },
      { clientId: rs.clientId, privateKey: rs.privateKey, kid: rs.kid },
    );
    const heard: string[] = [];
    push.onRevoked((n) => heard.push(n.jti));
    await push.connect();

    // OAuth 2.1 §4.1.3: the second redemption is refused and revokes what the first produced.
    const replay = await redeem();
    expect(replay.status).toBe(400);
    expect(await replay.json()).toEqual({
      error: 'invalid_grant',
      error_description: 'the authorization code was already used; the delegation issued from it is revoked',
    });

    const me = await userApi(tb, user);
    const view = (await (await me.call('GET', `/api/me/delegations/${delegationId}`)).json()) as { status: string };
    expect(view.status).toBe('revoked');
    const again = await exchangeRaw(tb, as, agent, {
      subject_token: credential.access_token,
      subject_token_type: TT_JWT,
    });
    expect(again.status).toBe(400);
    expect(await again.json()).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringMatching(/revoked/),
    });
    // Its task ended with it, and the push channel carried the task token's revocation.
    const fromTask = await exchangeRaw(tb, as, helper, {
      subject_token: task.access_token,
      subject_token_type: TT_ACCESS,
    });
    expect(fromTask.status).toBe(400);
    await expect.poll(() => heard, { timeout: 3000 }).toContain(decodeJwt(task.access_token).jti);
    push.close();

    const [revoked] = await tb.broker.deps.audit.query({ type: 'delegation.revoked', userId: user.id });
    expect(revoked).toMatchObject({ delegationId, clientId: agent.clientId, reason: 'authorization_code_reuse' });
  });
});
