import { randomUUID } from 'node:crypto';
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, test } from 'vitest';
import { accessTokenHash, type DpopProofCheck, type DpopResult, ReplayCache, verifyDpopProof } from '../src/dpop.js';
import { createGuard } from '../src/guard.js';
import { accessClaims, fakeIssuer } from './fake-issuer.js';

const URL_ = 'https://tools.example.test/mcp';
const TOKEN = 'eyJ.fake.token';

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;
let key: KeyPair;
let jwk: JWK;
let jkt: string;

beforeAll(async () => {
  key = await generateKeyPair('ES256', { extractable: true });
  jwk = await exportJWK(key.publicKey);
  jkt = await calculateJwkThumbprint(jwk, 'sha256');
});

async function proof(
  over: { claims?: Record<string, unknown>; header?: Record<string, unknown>; key?: KeyPair; token?: string } = {},
) {
  const k = over.key ?? key;
  return new SignJWT({
    jti: randomUUID(),
    htm: 'POST',
    htu: URL_,
    iat: Math.floor(Date.now() / 1000),
    ath: accessTokenHash(over.token ?? TOKEN),
    ...over.claims,
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(k.publicKey), ...over.header })
    .sign(k.privateKey);
}

function check(p: string | undefined, over: Partial<DpopProofCheck> = {}): Promise<DpopResult> {
  return verifyDpopProof({
    proof: p,
    method: 'POST',
    url: URL_,
    accessToken: TOKEN,
    jkt,
    now: Math.floor(Date.now() / 1000),
    replay: new ReplayCache(),
    ...over,
  });
}

/** A proof as a token endpoint checks it: no access token, the key is what is learnt. */
function atTokenEndpoint(p: string): Promise<DpopResult> {
  return verifyDpopProof({
    proof: p,
    method: 'POST',
    url: URL_,
    now: Math.floor(Date.now() / 1000),
    replay: new ReplayCache(),
  });
}

const refused = (description: RegExp) => ({
  ok: false,
  error: 'invalid_dpop_proof',
  description: expect.stringMatching(description),
});

describe('DPoP proofs (RFC 9449 §4.3)', () => {
  test('every accepted algorithm verifies and yields the RFC 7638 thumbprint jose computes', async () => {
    for (const alg of ['ES256', 'EdDSA', 'RS256', 'PS256'] as const) {
      const k = await generateKeyPair(alg, { extractable: true });
      const pub = await exportJWK(k.publicKey);
      const expected = await calculateJwkThumbprint(pub, 'sha256');
      const signed = await new SignJWT({
        jti: randomUUID(),
        htm: 'POST',
        htu: URL_,
        iat: Math.floor(Date.now() / 1000),
      })
        .setProtectedHeader({ alg, typ: 'dpop+jwt', jwk: pub })
        .sign(k.privateKey);
      expect(await atTokenEndpoint(signed), alg).toEqual({ ok: true, jkt: expected });
      // The same proof with one signature byte changed is refused.
      const [h, p, sig] = signed.split('.') as [string, string, string];
      const bytes = Buffer.from(sig, 'base64url');
      bytes[5] = (bytes[5]! + 1) % 256;
      const tampered = `${h}.${p}.${bytes.toString('base64url')}`;
      expect(await atTokenEndpoint(tampered), alg).toMatchObject(refused(/signature/));
    }
  });

  test('a proof whose exp has passed, or whose nbf is ahead, is refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await check(await proof({ claims: { exp: now - 120 } }))).toMatchObject(refused(/signature/));
    expect(await check(await proof({ claims: { nbf: now + 120 } }))).toMatchObject(refused(/signature/));
    expect(await check(await proof({ claims: { exp: 'soon' } }))).toMatchObject(refused(/signature/));
  });

  test('a valid proof is accepted; query and fragment of the request URI are ignored', async () => {
    expect(await check(await proof())).toEqual({ ok: true, jkt });
    expect(await check(await proof(), { url: `${URL_}?page=2` })).toEqual({ ok: true, jkt });
  });

  test('wrong htm or htu is refused', async () => {
    expect(await check(await proof({ claims: { htm: 'GET' } }))).toMatchObject(refused(/htm/));
    expect(await check(await proof({ claims: { htu: 'https://tools.example.test/other' } }))).toMatchObject(
      refused(/htu/),
    );
    expect(await check(await proof({ claims: { htu: 'https://evil.example.test/mcp' } }))).toMatchObject(
      refused(/htu/),
    );
  });

  test('a replayed proof is refused', async () => {
    const replay = new ReplayCache();
    const p = await proof();
    expect(await check(p, { replay })).toMatchObject({ ok: true });
    expect(await check(p, { replay })).toMatchObject(refused(/used before/));
  });

  test('a proof whose ath is for another token is refused', async () => {
    expect(await check(await proof({ token: 'another.access.token' }))).toMatchObject(refused(/ath/));
    expect(await check(await proof({ claims: { ath: undefined } }))).toMatchObject(refused(/ath/));
  });

  test('a proof by a key other than the bound one is refused', async () => {
    const other = await generateKeyPair('ES256', { extractable: true });
    expect(await check(await proof({ key: other }))).toMatchObject(refused(/not the key/));
  });

  test('a jwk carrying the private key is refused', async () => {
    const privateJwk = await exportJWK(key.privateKey);
    expect(privateJwk.d).toBeDefined();
    expect(await check(await proof({ header: { jwk: privateJwk } }))).toMatchObject(refused(/public key/));
  });

  test('alg none, a MAC alg and the wrong typ are refused', async () => {
    const enc = (o: object) => base64url.encode(JSON.stringify(o));
    const payload = { jti: randomUUID(), htm: 'POST', htu: URL_, iat: Math.floor(Date.now() / 1000) };
    const none = `${enc({ alg: 'none', typ: 'dpop+jwt', jwk })}.${enc({ ...payload, ath: accessTokenHash(TOKEN) })}.`;
    expect(await check(none)).toMatchObject(refused(/alg/));
    const secret = new Uint8Array(32).fill(7);
    const macHeader: Record<string, unknown> = { jwk: { kty: 'oct', k: base64url.encode(secret) } };
    const hs = await new SignJWT({ ...payload, ath: accessTokenHash(TOKEN) })
      .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', ...macHeader })
      .sign(secret);
    expect(await check(hs)).toMatchObject(refused(/alg/));
    expect(await check(await proof({ header: { typ: 'JWT' } }))).toMatchObject(refused(/typ/));
  });

  test('a stale or future proof, a missing proof and two proofs are refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await check(await proof({ claims: { iat: now - 3600 } }))).toMatchObject(refused(/iat/));
    expect(await check(await proof({ claims: { iat: now + 3600 } }))).toMatchObject(refused(/iat/));
    expect(await check(undefined)).toMatchObject(refused(/required/));
    const p = await proof();
    expect(await check(`${p}, ${p}`)).toMatchObject(refused(/exactly one/));
  });

  test('a required nonce is asked for with use_dpop_nonce', async () => {
    expect(await check(await proof(), { nonce: 'n-1' })).toMatchObject({ ok: false, error: 'use_dpop_nonce' });
    expect(await check(await proof({ claims: { nonce: 'n-1' } }), { nonce: 'n-1' })).toMatchObject({ ok: true });
  });
});

describe('the guard with DPoP-bound tokens (hand-made: Errand does not issue them yet)', () => {
  test('bound token: DPoP scheme + proof accepted; Bearer downgrade, foreign key and unbound DPoP refused', async () => {
    const as = await fakeIssuer();
    const guard = createGuard({ issuer: as.issuer, resource: URL_, fetch: as.fetch });
    const bound = await as.sign(accessClaims(as.issuer, URL_, { cnf: { jkt } }));
    const req = async (scheme: string, p?: string) =>
      guard.verify({ authorization: `${scheme} ${bound}`, dpop: p, method: 'POST', url: URL_ });

    expect(await req('DPoP', await proof({ token: bound }))).toMatchObject({ ok: true, sub: 'usr_1' });

    const bearer = await req('Bearer');
    expect(bearer).toMatchObject({ ok: false, status: 401, error: 'invalid_token' });
    if (!bearer.ok) expect(bearer.wwwAuthenticate).toMatch(/^DPoP error="invalid_token".*algs="ES256/);

    const other = await generateKeyPair('ES256', { extractable: true });
    const foreign = await req('DPoP', await proof({ token: bound, key: other }));
    expect(foreign).toMatchObject({ ok: false, status: 401, error: 'invalid_dpop_proof' });
    if (!foreign.ok) {
      expect(foreign.wwwAuthenticate).toMatch(/DPoP error="invalid_dpop_proof"/);
      expect(foreign.wwwAuthenticate).toContain(`Bearer resource_metadata="${guard.metadataUrl}"`);
    }

    const unbound = await as.sign(accessClaims(as.issuer, URL_));
    const r = await guard.verify({
      authorization: `DPoP ${unbound}`,
      dpop: await proof({ token: unbound }),
      method: 'POST',
      url: URL_,
    });
    expect(r).toMatchObject({ ok: false, error: 'invalid_token' });
  });

  test('RS256 tokens are accepted (RFC 9068 §4: RS256 is mandatory to implement)', async () => {
    const as = await fakeIssuer({ alg: 'RS256' });
    const guard = createGuard({ issuer: as.issuer, resource: URL_, fetch: as.fetch });
    const token = await as.sign(accessClaims(as.issuer, URL_));
    expect(await guard.verify({ authorization: `Bearer ${token}`, method: 'GET', url: URL_ })).toMatchObject({
      ok: true,
    });
  });
});
