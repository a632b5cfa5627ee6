import { decodeJwt, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { actorAudience } from '../core/protocol.js';
import { delegateViaCiba, exchangeRaw, TT_ACCESS, TT_JWT, userApi } from './delegation-fixtures.js';
import {
  addAgent,
  addResource,
  adminApi,
  Browser,
  clientAssertion,
  createUser,
  discover,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';
import { addWorkloadAgent } from './workload-fixtures.js';
import { startWorkloadIssuer, type WorkloadIssuer } from './workload-issuer.js';

const NOTES = 'https://notes.example.test/mcp';
const VAULT = 'https://vault.example.test/api';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const JWT_SPIFFE = 'urn:ietf:params:oauth:client-assertion-type:jwt-spiffe';
const TD = 'spiffe://example.test';

let tb: TestBroker;
let wi: WorkloadIssuer;
let api: Awaited<ReturnType<typeof adminApi>>;
let planner: string;
let hwAgent: string;
let ciBot: string;
let keyed: TestAgent;
let spiffeIssuerId: string;

/** A client_credentials request authenticated with a workload token. */
function clientCredentials(assertion: string, extra: Record<string, string> = {}, type = JWT_SPIFFE) {
  return postForm(`${tb.url}/token`, {
    grant_type: 'client_credentials',
    client_assertion_type: type,
    client_assertion: assertion,
    resource: NOTES,
    scope: 'notes:read',
    ...extra,
  });
}

async function expectInvalidClient(res: Response, description: RegExp) {
  const body = (await res.json()) as { error: string; error_description: string };
  expect(res.status).toBe(401);
  expect(body.error).toBe('invalid_client');
  expect(body.error_description).toMatch(description);
}

beforeAll(async () => {
  tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true', ERRAND_CIBA_INTERVAL: '1' });
  wi = await startWorkloadIssuer({ now: () => tb.clock.now() });
  api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  const vault = await api.call('POST', '/api/admin/resources', {
    url: VAULT,
    name: 'Vault',
    scopes: ['vault:read'],
    min_assurance: 'NHI-AAL2',
  });
  expect(vault.status).toBe(201);
  expect(await vault.json()).toMatchObject({ min_assurance: 'NHI-AAL2' });
  planner = await addWorkloadAgent(api, 'planner');
  hwAgent = await addWorkloadAgent(api, 'enclave agent');
  ciBot = await addWorkloadAgent(api, 'release bot');
  keyed = await addAgent(api, {
    name: 'hand-keyed agent',
    scope: ['notes:read', 'vault:read'],
    grant_types: undefined,
  });

  const spiffe = await api.call('POST', '/api/admin/trusted-issuers', {
    kind: 'spiffe',
    name: 'prod mesh',
    issuer: TD,
    jwks_uri: wi.bundleUri,
    max_lifetime: 600,
    rules: [
      // Hardware-anchored keys, as the platform attests them: the highest level.
      {
        match: { sub: `${TD}/ns/agents/sa/hw-*` },
        agent_id: hwAgent,
        assurance: 'NHI-AAL3',
        attestation: { claim: 'attestation/node', value: 'tpm' },
      },
      { match: { sub: `${TD}/ns/agents/sa/hw-*` }, agent_id: hwAgent },
      { match: { sub: `${TD}/ns/agents/sa/planner` }, agent_id: planner },
    ],
  });
  expect(spiffe.status).toBe(201);
  spiffeIssuerId = ((await spiffe.json()) as { id: string }).id;
  // A CI provider's OIDC issuer: its keys are discovered from its metadata.
  const ci = await api.call('POST', '/api/admin/trusted-issuers', {
    kind: 'ci',
    name: 'CI',
    issuer: wi.url,
    rules: [{ match: { repository: 'acme/agent', ref: ['refs/heads/main', 'refs/tags/v*'] }, agent_id: ciBot }],
  });
  expect(ci.status).toBe(201);
  expect(await ci.json()).toMatchObject({ audience: tb.url, max_lifetime: 3600, jwks_uri: null });
});

afterAll(async () => {
  await wi?.close();
  await tb?.close();
});

describe('workload identity federation: an agent with no secret at Errand', () => {
  test('a JWT-SVID authenticates the agent its rule names, at NHI-AAL2, stated in the token and recorded', async () => {
    const res = await clientCredentials(await wi.svid(`${TD}/ns/agents/sa/planner`, tb.url));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; token_type: string };
    expect(body.token_type).toBe('Bearer');
    const claims = decodeJwt(body.access_token);
    expect(claims).toMatchObject({ client_id: planner, sub: planner, errand_aal: 'NHI-AAL2' });
    const view = (await (await api.call('GET', `/api/admin/clients/${planner}`)).json()) as Record<string, unknown>;
    expect(view).toMatchObject({ assurance_level: 'NHI-AAL2', trusted_issuer_id: spiffeIssuerId });
    // The inventory page shows the recorded level.
    const page = await api.browser.fetch(`${tb.url}/admin/agents`);
    expect(await page.text()).toContain('NHI-AAL2');
  });

  test('a CI OIDC token (keys discovered from the issuer metadata) maps by repository and ref', async () => {
    const token = await wi.sign({
      sub: 'repo:acme/agent:ref:refs/heads/main',
      aud: tb.url,
      repository: 'acme/agent',
      ref: 'refs/heads/main',
    });
    const res = await clientCredentials(token, {}, JWT_BEARER);
    expect(res.status).toBe(200);
    expect(decodeJwt(((await res.json()) as { access_token: string }).access_token)).toMatchObject({
      client_id: ciBot,
      errand_aal: 'NHI-AAL2',
    });
    const tag = await wi.sign({ sub: 'repo:acme/agent', aud: tb.url, repository: 'acme/agent', ref: 'refs/tags/v1.2' });
    expect((await clientCredentials(tag, {}, JWT_BEARER)).status).toBe(200);
    const branch = await wi.sign({
      sub: 'repo:acme/agent',
      aud: tb.url,
      repository: 'acme/agent',
      ref: 'refs/heads/dev',
    });
    await expectInvalidClient(await clientCredentials(branch, {}, JWT_BEARER), /no rule matches/);
  });

  test('NHI-AAL3 only when the issuer attests a hardware-anchored key; otherwise the same agent at AAL2', async () => {
    const attested = await wi.svid(`${TD}/ns/agents/sa/hw-1`, tb.url, { attestation: { node: 'tpm' } });
    const res = await clientCredentials(attested);
    expect(res.status).toBe(200);
    expect(decodeJwt(((await res.json()) as { access_token: string }).access_token).errand_aal).toBe('NHI-AAL3');
    // A claim the workload could choose elsewhere does not count: only the configured one, exactly.
    const plain = await wi.svid(`${TD}/ns/agents/sa/hw-1`, tb.url, {
      attestation: { node: 'software' },
      errand_aal: 'NHI-AAL3',
    });
    const res2 = await clientCredentials(plain);
    expect(res2.status).toBe(200);
    expect(decodeJwt(((await res2.json()) as { access_token: string }).access_token)).toMatchObject({
      client_id: hwAgent,
      errand_aal: 'NHI-AAL2',
    });
  });

  test('strict checks: untrusted issuer, wrong audience, expired, lifetime too long, no rule, replay', async () => {
    const other = await startWorkloadIssuer({ now: () => tb.clock.now() });
    try {
      const foreign = await other.sign({
        sub: 'repo:acme/agent',
        aud: tb.url,
        repository: 'acme/agent',
        ref: 'refs/heads/main',
      });
      await expectInvalidClient(await clientCredentials(foreign, {}, JWT_BEARER), /not a trusted workload issuer/);
      // Another trust domain, and a forged SVID for ours signed by a key that is not in our bundle.
      await expectInvalidClient(
        await clientCredentials(await other.svid('spiffe://evil.test/ns/agents/sa/planner', tb.url)),
        /not a trusted/,
      );
      const { privateKey } = await generateKeyPair('ES256');
      const forged = await wi.sign(
        { sub: `${TD}/ns/agents/sa/planner`, aud: [tb.url] },
        { omitIss: true, key: privateKey },
      );
      await expectInvalidClient(await clientCredentials(forged), /could not be verified/);
    } finally {
      await other.close();
    }
    const sub = `${TD}/ns/agents/sa/planner`;
    await expectInvalidClient(await clientCredentials(await wi.svid(sub, 'https://other.example')), /aud must be/);
    await expectInvalidClient(await clientCredentials(await wi.svid(sub, `${tb.url}/token`)), /aud must be/);
    const now = tb.clock.now();
    const expired = await wi.sign({ sub, aud: tb.url, iat: now - 400, exp: now - 100 }, { omitIss: true });
    await expectInvalidClient(await clientCredentials(expired), /expired/);
    const long = await wi.sign({ sub, aud: tb.url }, { omitIss: true, lifetime: 3600 });
    await expectInvalidClient(await clientCredentials(long), /lifetime exceeds 600/);
    await expectInvalidClient(await clientCredentials(await wi.svid(`${TD}/ns/other/sa/x`, tb.url)), /no rule matches/);
    const once = await wi.svid(sub, tb.url);
    expect((await clientCredentials(once)).status).toBe(200);
    await expectInvalidClient(await clientCredentials(once), /already been used/);
    // Without a jti, the token itself is remembered.
    const noJti = await wi.sign({ sub, aud: tb.url, jti: undefined }, { omitIss: true });
    expect((await clientCredentials(noJti)).status).toBe(200);
    await expectInvalidClient(await clientCredentials(noJti), /already been used/);
    // client_id, when sent, must be the agent the rule maps to.
    const mismatch = await clientCredentials(await wi.svid(sub, tb.url), { client_id: hwAgent });
    await expectInvalidClient(mismatch, /client_id does not match/);
  });

  test('a jti-less workload token is accepted once, however its signature is encoded or re-made', async () => {
    const sub = `${TD}/ns/agents/sa/planner`;
    const token = await wi.sign({ sub, aud: tb.url, jti: undefined, pod: 'encodings' }, { omitIss: true });
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    // 64 signature bytes take 86 characters: the last one carries 4 unused bits (RFC 4648 §3.5).
    const last = alphabet.indexOf(signature.at(-1)!);
    const variants = Array.from({ length: 15 }, (_, i) => {
      const bits = (last & ~0xf) | ((last + i + 1) & 0xf);
      return `${signature.slice(0, -1)}${alphabet[bits]}`;
    });
    variants.push(`${signature}=`, `${signature}==`);
    // ECDSA signatures are malleable: (r, n − s) verifies as well as (r, s).
    const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
    const raw = Buffer.from(signature, 'base64url');
    const s = BigInt(`0x${raw.subarray(32).toString('hex')}`);
    const flipped = Buffer.concat([raw.subarray(0, 32), Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex')]);
    variants.push(flipped.toString('base64url'));
    expect(new Set(variants).size).toBe(18);

    expect((await clientCredentials(token)).status).toBe(200);
    for (const variant of variants) {
      const res = await clientCredentials(`${header}.${payload}.${variant}`);
      expect(res.status, variant).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    }
  });

  test('a JWT-SVID that names another issuer in iss, or carries a header JWT-SVID does not allow, is refused', async () => {
    const sub = `${TD}/ns/agents/sa/planner`;
    // Signed with the bundle's own key: only the claim differs.
    const attacker = await wi.sign({ sub, aud: [tb.url], iss: 'https://attacker.example' }, { omitIss: false });
    await expectInvalidClient(await clientCredentials(attacker), /not a trusted workload issuer/);
    // The registration's own identifier is the one iss a trust-domain issuer accepts.
    expect((await clientCredentials(await wi.sign({ sub, aud: [tb.url], iss: TD }))).status).toBe(200);
    // JWT-SVID §2: only alg, kid and typ (JWT or JOSE) may appear in the header.
    const typed = await wi.sign({ sub, aud: [tb.url] }, { omitIss: true, header: { typ: 'at+jwt' } });
    await expectInvalidClient(await clientCredentials(typed), /header/);
    const extra = await wi.sign({ sub, aud: [tb.url] }, { omitIss: true, header: { x5u: 'https://attacker.example' } });
    await expectInvalidClient(await clientCredentials(extra), /header/);
  });

  test('a bundle entry for X.509-SVIDs is never used to verify a JWT-SVID', async () => {
    const res = await clientCredentials(
      await wi.sign(
        { sub: `${TD}/ns/agents/sa/planner`, aud: tb.url },
        { omitIss: true, header: { kid: 'x509-entry' } },
      ),
    );
    await expectInvalidClient(res, /could not be verified/);
  });

  test('a disabled issuer vouches for nobody; re-enabled, it does again', async () => {
    const off = await api.call('PATCH', `/api/admin/trusted-issuers/${spiffeIssuerId}`, { status: 'disabled' });
    expect(off.status).toBe(200);
    await expectInvalidClient(await clientCredentials(await wi.svid(`${TD}/ns/agents/sa/planner`, tb.url)), /disabled/);
    await api.call('PATCH', `/api/admin/trusted-issuers/${spiffeIssuerId}`, { status: 'active' });
    expect((await clientCredentials(await wi.svid(`${TD}/ns/agents/sa/planner`, tb.url))).status).toBe(200);
  });

  test('a workload token presented as actor_token makes its agent the actor, at its level', async () => {
    const user = await createUser(tb);
    const as = await discover(tb);
    const { credential } = await delegateViaCiba(tb, as, keyed, user, {
      scope: 'openid notes:read',
      resource: NOTES,
      max_depth: '1',
    });
    // The delegation credential states the level the agent collected it at, like every Errand token.
    expect(decodeJwt(credential).errand_aal).toBe('NHI-AAL1');
    const parent = await exchangeRaw(tb, as, keyed, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
    });
    expect(parent.status).toBe(200);
    const parentToken = ((await parent.json()) as { access_token: string }).access_token;
    expect(decodeJwt(parentToken).errand_aal).toBe('NHI-AAL1');
    // The keyed agent requests; the enclave agent acts, proven by its own workload token, fetched for
    // Errand's actor audience.
    const res = await exchangeRaw(tb, as, keyed, {
      subject_token: parentToken,
      subject_token_type: TT_ACCESS,
      actor_token: await wi.svid(`${TD}/ns/agents/sa/hw-2`, actorAudience(tb.url), { attestation: { node: 'tpm' } }),
      actor_token_type: TT_JWT,
    });
    expect(res.status).toBe(200);
    const claims = decodeJwt(((await res.json()) as { access_token: string }).access_token);
    expect(claims).toMatchObject({
      client_id: hwAgent,
      errand_aal: 'NHI-AAL3',
      act: { sub: hwAgent, act: { sub: keyed.clientId } },
    });
    // A bad workload actor token is the exchange's invalid_request (RFC 8693 §2.2.2).
    const bad = await exchangeRaw(tb, as, keyed, {
      subject_token: parentToken,
      subject_token_type: TT_ACCESS,
      actor_token: await wi.svid(`${TD}/ns/agents/sa/hw-2`, 'https://elsewhere.example'),
      actor_token_type: TT_JWT,
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'invalid_request' });
  });

  test('a workload token is either an actor token or a client assertion, told apart by its audience', async () => {
    const user = await createUser(tb);
    const as = await discover(tb);
    const { credential } = await delegateViaCiba(tb, as, keyed, user, {
      scope: 'openid notes:read',
      resource: NOTES,
      max_depth: '1',
    });
    const parent = await exchangeRaw(tb, as, keyed, { subject_token: credential, subject_token_type: TT_JWT });
    const parentToken = ((await parent.json()) as { access_token: string }).access_token;
    const sub = `${TD}/ns/agents/sa/planner`;

    // A token the planner fetched to prove itself as an actor, handed to the keyed agent: it cannot
    // authenticate as the planner (client_credentials or CIBA).
    const handed = await wi.svid(sub, actorAudience(tb.url));
    await expectInvalidClient(await clientCredentials(handed), /is an actor_token and cannot authenticate a client/);
    const ciba = await postForm(`${tb.url}/bc-authorize`, {
      client_assertion_type: JWT_SPIFFE,
      client_assertion: await wi.svid(sub, actorAudience(tb.url)),
      scope: 'openid notes:read',
      login_hint: user.username,
      resource: NOTES,
    });
    await expectInvalidClient(ciba, /actor_token/);
    // The planner's client-authentication token is no actor token either.
    const asActor = await exchangeRaw(tb, as, keyed, {
      subject_token: parentToken,
      subject_token_type: TT_ACCESS,
      actor_token: await wi.svid(sub, tb.url),
      actor_token_type: TT_JWT,
    });
    expect(asActor.status).toBe(400);
    expect(await asActor.json()).toMatchObject({
      error: 'invalid_request',
      error_description: `actor_token: the workload token aud must be ${actorAudience(tb.url)} alone`,
    });
    // The refused actor token was not spent: it still proves the planner as the actor.
    const ok = await exchangeRaw(tb, as, keyed, {
      subject_token: parentToken,
      subject_token_type: TT_ACCESS,
      actor_token: handed,
      actor_token_type: TT_JWT,
    });
    expect(ok.status).toBe(200);
    expect(decodeJwt(((await ok.json()) as { access_token: string }).access_token)).toMatchObject({
      client_id: planner,
      act: { sub: planner, act: { sub: keyed.clientId } },
    });
  });
});

describe('assurance levels are enforced at exchange', () => {
  test('an AAL1 agent is refused a resource that requires NHI-AAL2; an attested agent gets it', async () => {
    const user = await createUser(tb);
    const as = await discover(tb);
    const { credential, delegationId } = await delegateViaCiba(tb, as, keyed, user, {
      scope: 'openid vault:read',
      resource: VAULT,
    });
    const res = await exchangeRaw(tb, as, keyed, { subject_token: credential, subject_token_type: TT_JWT });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; error_description: string };
    expect(body.error).toBe('invalid_request');
    expect(body.error_description).toContain('resource requires assurance level NHI-AAL2');
    expect(body.error_description).toContain('NHI-AAL1');
    const audit = (await (
      await api.call('GET', `/api/admin/audit?type=exchange.denied&client_id=${keyed.clientId}`)
    ).json()) as {
      events: { reason: string; delegationId: string; details: Record<string, unknown> }[];
    };
    expect(audit.events.find((e) => e.delegationId === delegationId)).toMatchObject({
      reason: 'assurance_too_low',
      details: { required: 'NHI-AAL2', actual: 'NHI-AAL1', by: 'resource' },
    });

    // The same resource for the planner, authenticated by its platform.
    const cc = await clientCredentials(await wi.svid(`${TD}/ns/agents/sa/planner`, tb.url), {
      resource: VAULT,
      scope: 'vault:read',
    });
    expect(cc.status).toBe(200);
    const keyedCc = await postForm(`${tb.url}/token`, {
      grant_type: 'client_credentials',
      resource: VAULT,
      scope: 'vault:read',
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(keyed, tb.url),
    });
    expect(keyedCc.status).toBe(400);
    expect(await keyedCc.json()).toMatchObject({ error: 'invalid_request' });
  });

  test('a delegation can require a level: asked for by the agent, or raised (never lowered) by the user', async () => {
    const user = await createUser(tb);
    const as = await discover(tb);
    // Raised on approval.
    const raised = await delegateViaCiba(
      tb,
      as,
      keyed,
      user,
      { scope: 'openid notes:read', resource: NOTES },
      { min_assurance: 'NHI-AAL2' },
    );
    const res = await exchangeRaw(tb, as, keyed, { subject_token: raised.credential, subject_token_type: TT_JWT });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error_description: string }).error_description).toContain(
      'delegation requires assurance level NHI-AAL2',
    );
    const me = await userApi(tb, user);
    const view = (await (await me.call('GET', `/api/me/delegations/${raised.delegationId}`)).json()) as Record<
      string,
      unknown
    >;
    expect(view).toMatchObject({ min_assurance: 'NHI-AAL2' });

    // Asked for at request time; the user cannot lower it.
    const bc = await postForm(`${tb.url}/bc-authorize`, {
      scope: 'openid notes:read',
      resource: NOTES,
      login_hint: user.username,
      min_assurance: 'NHI-AAL3',
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(keyed, tb.url),
    });
    expect(bc.status).toBe(200);
    const pending = (await (await me.call('GET', '/api/me/delegations?status=pending')).json()) as {
      delegations: { delegation_id: string; requested: { min_assurance: string | null } }[];
    };
    const asked = pending.delegations.find((d) => d.requested.min_assurance === 'NHI-AAL3');
    expect(asked).toBeDefined();
    const lowered = await me.call('POST', `/api/me/delegations/${asked!.delegation_id}/approve`, {
      min_assurance: 'NHI-AAL2',
    });
    expect(lowered.status).toBe(400);
    expect(((await lowered.json()) as { error_description: string }).error_description).toContain('may only be raised');
    const bad = await postForm(`${tb.url}/bc-authorize`, {
      scope: 'openid notes:read',
      resource: NOTES,
      login_hint: user.username,
      min_assurance: 'AAL9',
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(keyed, tb.url),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'invalid_request' });
  });
});

describe('admin API for trusted issuers', () => {
  test('validation: AAL3 needs an attestation, rules name workload agents, SPIFFE needs keys, one entry per issuer', async () => {
    const base = { kind: 'spiffe', name: 'x', issuer: 'spiffe://other.test', jwks: wi.jwks() };
    const aal3 = await api.call('POST', '/api/admin/trusted-issuers', {
      ...base,
      rules: [{ match: { sub: 'spiffe://other.test/*' }, agent_id: planner, assurance: 'NHI-AAL3' }],
    });
    expect(aal3.status).toBe(400);
    expect(((await aal3.json()) as { error_description: string }).error_description).toContain('attestation');
    const keyedRule = await api.call('POST', '/api/admin/trusted-issuers', {
      ...base,
      rules: [{ match: { sub: 'spiffe://other.test/*' }, agent_id: keyed.clientId }],
    });
    expect(keyedRule.status).toBe(400);
    const noKeys = await api.call('POST', '/api/admin/trusted-issuers', {
      ...base,
      jwks: undefined,
      rules: [{ match: { sub: 'spiffe://other.test/*' }, agent_id: planner }],
    });
    expect(noKeys.status).toBe(400);
    const dup = await api.call('POST', '/api/admin/trusted-issuers', {
      ...base,
      issuer: TD,
      rules: [{ match: { sub: `${TD}/*` }, agent_id: planner }],
    });
    expect(dup.status).toBe(409);
    // A static bundle works as well as a jwks_uri; it can be listed, read and deleted.
    const ok = await api.call('POST', '/api/admin/trusted-issuers', {
      ...base,
      rules: [{ match: { sub: 'spiffe://other.test/agents/*' }, agent_id: planner }],
    });
    expect(ok.status).toBe(201);
    const { id } = (await ok.json()) as { id: string };
    const svid = await wi.svid('spiffe://other.test/agents/a', tb.url);
    expect((await clientCredentials(svid)).status).toBe(200);
    const list = (await (await api.call('GET', '/api/admin/trusted-issuers')).json()) as {
      trusted_issuers: { id: string }[];
    };
    expect(list.trusted_issuers.map((t) => t.id)).toContain(id);
    expect((await api.call('DELETE', `/api/admin/trusted-issuers/${id}`)).status).toBe(204);
    expect((await api.call('GET', `/api/admin/trusted-issuers/${id}`)).status).toBe(404);
    await expectInvalidClient(
      await clientCredentials(await wi.svid('spiffe://other.test/agents/a', tb.url)),
      /not a trusted/,
    );
  });

  test('administrators only, with the CSRF token on changes', async () => {
    const user = await createUser(tb);
    const me = await userApi(tb, user);
    expect((await me.call('GET', '/api/admin/trusted-issuers')).status).toBe(403);
    const anonymous = await new Browser().fetch(`${tb.url}/api/admin/trusted-issuers`);
    expect(anonymous.status).toBe(401);
    const noCsrf = await api.browser.fetch(`${tb.url}/api/admin/trusted-issuers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({}),
    });
    expect(noCsrf.status).toBe(403);
  });
});
