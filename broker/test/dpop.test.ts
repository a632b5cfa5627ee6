import { type ServerType, serve } from '@hono/node-server';
import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createNotesServer, type NotesServer } from '../../mcp-server/example/notes-server.js';
import { agentClient, delegateViaCiba, introspector, TT_ACCESS, TT_JWT } from './delegation-fixtures.js';
import { dpopProof, type ProofKey, proofKey } from './dpop-fixtures.js';
import {
  addAgent,
  addPublicClient,
  addResource,
  adminApi,
  approveInBrowser,
  Browser,
  clientAssertion,
  createUser,
  discover,
  freePort,
  insecure,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const REDIRECT = 'https://app.example.test/callback';

let tb: TestBroker;
let as: oauth.AuthorizationServer;
let api: Awaited<ReturnType<typeof adminApi>>;
let agentA: TestAgent;
let agentB: TestAgent;
let notes: NotesServer;
let notesServer: ServerType;
let notesUrl: string;
let introspect: (token: string) => Promise<Record<string, unknown> & { active: boolean }>;

/** A DPoP proof (RFC 9449 §4.2) made now on the broker's clock. */
const proof = (key: ProofKey, p: Omit<Parameters<typeof dpopProof>[1], 'iat'>) =>
  dpopProof(key, { iat: tb.clock.now(), ...p });

/** client_credentials for `agent` at the notes server, with an optional DPoP header. */
async function ccRequest(agent: TestAgent, dpop?: string, url = tb.url) {
  return postForm(
    `${url}/token`,
    {
      grant_type: 'client_credentials',
      resource: notesUrl,
      scope: 'notes:read',
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(agent, url),
    },
    dpop ? { dpop } : {},
  );
}

/** A tools/call at the notes server with the given Authorization and DPoP headers. */
function callNotes(authorization: string, dpop?: string, method = 'POST') {
  return fetch(notesUrl, {
    method,
    headers: {
      authorization,
      ...(dpop ? { dpop } : {}),
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
    },
    ...(method === 'POST'
      ? {
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'tools/call',
            params: { name: 'list_notes', arguments: {} },
          }),
        }
      : {}),
  });
}

beforeAll(async () => {
  tb = await startBroker({ ERRAND_CIBA_INTERVAL: '1' });
  api = await adminApi(tb);
  as = await discover(tb);
  const port = await freePort();
  notesUrl = `http://127.0.0.1:${port}/mcp`;
  await addResource(api, notesUrl, ['notes:read', 'notes:write']);
  agentA = await addAgent(api, { name: 'agent A', scope: ['notes:read', 'notes:write'], grant_types: undefined });
  agentB = await addAgent(api, { name: 'agent B', scope: ['notes:read'], grant_types: undefined });
  notes = createNotesServer({ issuer: tb.url, resource: notesUrl });
  notesServer = await new Promise((resolve) => {
    const s = serve({ fetch: notes.app.fetch, hostname: '127.0.0.1', port }, () => resolve(s));
  });
  introspect = await introspector(tb, api, [notesUrl]);
});
afterAll(async () => {
  await new Promise<void>((r) => notesServer?.close(() => r()));
  await tb?.close();
});

describe('DPoP at the token endpoint (RFC 9449 §5)', () => {
  test('metadata advertises the proof algorithms', () => {
    expect(as.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'EdDSA', 'RS256']));
  });

  test('a proof binds the token: token_type DPoP, cnf.jkt = the key thumbprint; introspection says so', async () => {
    // An independent client (oauth4webapi) makes the proof.
    const key = await proofKey();
    const [client, auth] = agentClient(tb, agentA);
    const DPoP = oauth.DPoP(client, key.pair);
    const res = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      auth,
      new URLSearchParams({ resource: notesUrl, scope: 'notes:read' }),
      { ...insecure, DPoP },
    );
    const tokens = await oauth.processClientCredentialsResponse(as, client, res);
    expect(tokens.token_type).toBe('dpop');
    const claims = decodeJwt(tokens.access_token);
    expect(claims.cnf).toEqual({ jkt: key.jkt });
    expect(claims.errand_aal).toBe('NHI-AAL1');
    const info = await introspect(tokens.access_token);
    expect(info).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.jkt }, errand_aal: 'NHI-AAL1' });
    // Without a proof the same client still gets a Bearer token (it did not register as DPoP-only).
    const bearer = await ccRequest(agentA);
    expect(((await bearer.json()) as { token_type: string }).token_type).toBe('Bearer');
  });

  test('malformed or misdirected proofs are refused with invalid_dpop_proof (checklist 77)', async () => {
    const key = await proofKey();
    const htu = `${tb.url}/token`;
    const exported = await exportJWK(key.pair.privateKey);
    const cases: Record<string, string> = {
      'wrong htm': await proof(key, { htu, htm: 'GET' }),
      'wrong htu': await proof(key, { htu: `${tb.url}/introspect` }),
      'another host': await proof(key, { htu: 'https://errand.evil.test/token' }),
      'typ JWT': await proof(key, { htu, header: { typ: 'JWT' } }),
      'symmetric alg': await proof(key, {
        htu,
        header: { alg: 'HS256', jwk: { kty: 'oct', k: 'c2VjcmV0' } },
        signWith: new TextEncoder().encode('secret-secret-secret-secret-secret'),
      }),
      'private jwk': await proof(key, { htu, header: { jwk: { ...key.jwk, d: exported.d } } }),
      'stale iat': await proof(key, { htu, claims: { iat: tb.clock.now() - 3600 } }),
      'bad signature': await proof(key, { htu, signWith: (await generateKeyPair('ES256')).privateKey }),
    };
    for (const [name, dpop] of Object.entries(cases)) {
      const res = await ccRequest(agentA, dpop);
      expect(res.status, name).toBe(400);
      expect(await res.json(), name).toMatchObject({ error: 'invalid_dpop_proof' });
    }
    const twoProofs = await ccRequest(agentA, `${await proof(key, { htu })}, ${await proof(key, { htu })}`);
    expect(twoProofs.status).toBe(400);
  });

  test('a replayed proof is refused (checklist 78)', async () => {
    const key = await proofKey();
    const once = await proof(key, { htu: `${tb.url}/token` });
    expect((await ccRequest(agentA, once)).status).toBe(200);
    const again = await ccRequest(agentA, once);
    expect(again.status).toBe(400);
    expect(await again.json()).toMatchObject({ error: 'invalid_dpop_proof' });
  });

  test('a client registered with dpop_bound_access_tokens must send a proof', async () => {
    const strict = await addAgent(api, {
      name: 'dpop-only',
      scope: ['notes:read'],
      grant_types: ['client_credentials'],
      dpop_bound_access_tokens: true,
    });
    const none = await ccRequest(strict);
    expect(none.status).toBe(400);
    expect(await none.json()).toMatchObject({ error: 'invalid_dpop_proof' });
    const key = await proofKey();
    const ok = await ccRequest(strict, await proof(key, { htu: `${tb.url}/token` }));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ token_type: 'DPoP' });
  });

  test('a public client: access and refresh tokens bound to its key; refresh needs a proof by that key', async () => {
    const client = await addPublicClient(api, 'DPoP desktop', [REDIRECT]);
    const user = await createUser(tb);
    const key = await proofKey();
    const DPoP = oauth.DPoP(client, key.pair);
    const verifier = oauth.generateRandomCodeVerifier();
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: REDIRECT,
      scope: 'notes:read',
      resource: notesUrl,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    const { callback } = await approveInBrowser(tb, user, url, { browser: new Browser() });
    const params = oauth.validateAuthResponse(as, client, callback, oauth.expectNoState);
    const res = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, {
      ...insecure,
      DPoP,
      additionalParameters: { resource: notesUrl },
    });
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, res);
    expect(tokens.token_type).toBe('dpop');
    expect(decodeJwt(tokens.access_token).cnf).toEqual({ jkt: key.jkt });
    const rt = tokens.refresh_token!;

    const bare = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), rt, insecure);
    expect(bare.status).toBe(400);
    expect(await bare.json()).toMatchObject({ error: 'invalid_grant' });
    const thief = oauth.DPoP(client, (await proofKey()).pair);
    const stolen = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), rt, { ...insecure, DPoP: thief });
    expect(stolen.status).toBe(400);
    const ok = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), rt, { ...insecure, DPoP });
    const refreshed = await oauth.processRefreshTokenResponse(as, client, ok);
    expect(refreshed.token_type).toBe('dpop');
    expect(decodeJwt(refreshed.access_token).cnf).toEqual({ jkt: key.jkt });
  });
});

describe('token exchange and the resource server (RFC 9449 §7)', () => {
  let parentToken: string;
  let keyA: ProofKey;
  let keyB: ProofKey;

  async function exchangeWithProof(agent: TestAgent, key: ProofKey, params: Record<string, string>) {
    return postForm(
      `${tb.url}/token`,
      {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        client_assertion_type: JWT_BEARER,
        client_assertion: await clientAssertion(agent, tb.url),
        ...params,
      },
      { dpop: await proof(key, { htu: `${tb.url}/token` }) },
    );
  }

  beforeAll(async () => {
    keyA = await proofKey();
    keyB = await proofKey();
    const user = await createUser(tb);
    const { credential } = await delegateViaCiba(tb, as, agentA, user, {
      scope: 'openid notes:read notes:write',
      resource: notesUrl,
      max_depth: '1',
    });
    const res = await exchangeWithProof(agentA, keyA, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: notesUrl,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; token_type: string };
    expect(body.token_type).toBe('DPoP');
    parentToken = body.access_token;
    expect(decodeJwt(parentToken).cnf).toEqual({ jkt: keyA.jkt });
  });

  test("a sub-agent's token is bound to the sub-agent's key (the proof on its own exchange)", async () => {
    const res = await exchangeWithProof(agentB, keyB, {
      subject_token: parentToken,
      subject_token_type: TT_ACCESS,
      scope: 'notes:read',
    });
    expect(res.status).toBe(200);
    const sub = ((await res.json()) as { access_token: string }).access_token;
    expect(decodeJwt(sub)).toMatchObject({ cnf: { jkt: keyB.jkt }, client_id: agentB.clientId });
    // B's token works with B's key, not with A's; A's token does not work with B's key.
    expect((await callNotes(`DPoP ${sub}`, await proof(keyB, { htu: notesUrl, token: sub }))).status).toBe(200);
    expect((await callNotes(`DPoP ${sub}`, await proof(keyA, { htu: notesUrl, token: sub }))).status).toBe(401);
    expect(
      (await callNotes(`DPoP ${parentToken}`, await proof(keyB, { htu: notesUrl, token: parentToken }))).status,
    ).toBe(401);
  });

  test('the guard: no proof, Bearer downgrade, another key, replay, wrong htu or htm are all refused', async () => {
    const good = await proof(keyA, { htu: notesUrl, token: parentToken });
    expect((await callNotes(`DPoP ${parentToken}`, good)).status).toBe(200);

    const expectRefused = async (res: Response, error: string) => {
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain(`error="${error}"`);
    };
    await expectRefused(await callNotes(`DPoP ${parentToken}`), 'invalid_dpop_proof');
    await expectRefused(await callNotes(`Bearer ${parentToken}`), 'invalid_token');
    await expectRefused(await callNotes(`Bearer ${parentToken}`, good), 'invalid_token');
    const other = await proofKey();
    await expectRefused(
      await callNotes(`DPoP ${parentToken}`, await proof(other, { htu: notesUrl, token: parentToken })),
      'invalid_dpop_proof',
    );
    await expectRefused(await callNotes(`DPoP ${parentToken}`, good), 'invalid_dpop_proof'); // replayed
    await expectRefused(
      await callNotes(`DPoP ${parentToken}`, await proof(keyA, { htu: `${notesUrl}/other`, token: parentToken })),
      'invalid_dpop_proof',
    );
    await expectRefused(
      await callNotes(`DPoP ${parentToken}`, await proof(keyA, { htu: notesUrl, htm: 'GET', token: parentToken })),
      'invalid_dpop_proof',
    );
    // A proof without ath, or for another token, does not bind this request to this token.
    await expectRefused(
      await callNotes(`DPoP ${parentToken}`, await proof(keyA, { htu: notesUrl })),
      'invalid_dpop_proof',
    );
  });
});

describe('server nonces (RFC 9449 §8)', () => {
  test('with ERRAND_DPOP_NONCE_REQUIRED a proof without the nonce gets use_dpop_nonce and the nonce to use', async () => {
    const nb = await startBroker({ ERRAND_DPOP_NONCE_REQUIRED: 'true' });
    try {
      const napi = await adminApi(nb);
      await addResource(napi, notesUrl, ['notes:read']);
      const agent = await addAgent(napi, {
        name: 'nonce agent',
        scope: ['notes:read'],
        grant_types: ['client_credentials'],
      });
      const key = await proofKey();
      const htu = `${nb.url}/token`;
      const first = await ccRequest(agent, await proof(key, { htu }), nb.url);
      expect(first.status).toBe(400);
      expect(await first.json()).toMatchObject({ error: 'use_dpop_nonce' });
      const nonce = first.headers.get('dpop-nonce');
      expect(nonce).toBeTruthy();
      const forged = await ccRequest(agent, await proof(key, { htu, nonce: 'made-up' }), nb.url);
      expect(await forged.json()).toMatchObject({ error: 'use_dpop_nonce' });
      const ok = await ccRequest(agent, await proof(key, { htu, nonce: nonce! }), nb.url);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('dpop-nonce')).toBeTruthy();
      // Bearer requests (no proof) need no nonce.
      expect((await ccRequest(agent, undefined, nb.url)).status).toBe(200);
      // An independent client retries with the nonce by itself.
      const nas = await discover(nb);
      const client: oauth.Client = { client_id: agent.clientId };
      const DPoP = oauth.DPoP(client, key.pair);
      const auth = oauth.PrivateKeyJwt({ key: agent.privateKey, kid: agent.kid });
      const params = new URLSearchParams({ resource: notesUrl, scope: 'notes:read' });
      let res = await oauth.clientCredentialsGrantRequest(nas, client, auth, params, { ...insecure, DPoP });
      let tokens: oauth.TokenEndpointResponse;
      try {
        tokens = await oauth.processClientCredentialsResponse(nas, client, res);
      } catch (err) {
        expect(oauth.isDPoPNonceError(err)).toBe(true);
        res = await oauth.clientCredentialsGrantRequest(nas, client, auth, params, { ...insecure, DPoP });
        tokens = await oauth.processClientCredentialsResponse(nas, client, res);
      }
      expect(tokens.token_type).toBe('dpop');
    } finally {
      await nb.close();
    }
  });
});
