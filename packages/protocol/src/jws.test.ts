import { createHmac, createPublicKey, createSecretKey, type KeyObject, sign } from 'node:crypto';
import * as jose from 'jose';
import { describe, expect, test } from 'vitest';
import {
  exportPrivatePkcs8,
  generateSigningKey,
  importSigningKey,
  type JwsKey,
  type SigningAlg,
  signJwt,
  verifyJwtSignature,
} from './jws.js';

const ALGS: SigningAlg[] = ['ES256', 'EdDSA'];

function resolverFor(...keys: JwsKey[]) {
  return (kid: string): KeyObject | undefined => keys.find((k) => k.kid === kid)?.publicKey;
}

function b64(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

function samplePayload() {
  const now = Math.floor(Date.now() / 1000);
  return { iss: 'https://errand.test', sub: 'user-1', aud: 'https://api.test', iat: now, exp: now + 300 };
}

// Signs an arbitrary header/payload encoding with our key, bypassing signJwt's JSON handling.
function signRaw(key: JwsKey, encodedHeader: string, encodedPayload: string): string {
  const data = Buffer.from(`${encodedHeader}.${encodedPayload}`, 'ascii');
  const signature =
    key.alg === 'ES256'
      ? sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign(null, data, key.privateKey);
  return `${encodedHeader}.${encodedPayload}.${signature.toString('base64url')}`;
}

describe.each(ALGS)('%s', (alg) => {
  const key = generateSigningKey(alg, `kid-${alg}`);
  const resolve = resolverFor(key);

  test('round-trips and keeps caller header fields, with alg and kid taken from the key', () => {
    const token = signJwt(key, { typ: 'at+jwt', alg: 'none', kid: 'spoofed' }, { sub: 'u', n: 1 });
    const result = verifyJwtSignature(token, resolve);
    expect(result).not.toBeNull();
    expect(result?.header).toEqual({ typ: 'at+jwt', alg, kid: key.kid });
    expect(result?.payload).toEqual({ sub: 'u', n: 1 });
  });

  test('public JWK has the expected shape', () => {
    const jwk = key.publicJwk;
    expect(jwk).toMatchObject({ kid: key.kid, alg, use: 'sig' });
    if (alg === 'ES256') {
      expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256' });
      expect(Buffer.from(jwk.x, 'base64url')).toHaveLength(32);
      expect(Buffer.from(jwk.y ?? '', 'base64url')).toHaveLength(32);
    } else {
      expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
      expect('y' in jwk).toBe(false);
    }
  });

  test('our tokens verify with jose', async () => {
    const payload = samplePayload();
    const token = signJwt(key, { typ: 'at+jwt' }, payload);
    const publicKey = await jose.importJWK(key.publicJwk, alg);
    const { payload: verified, protectedHeader } = await jose.jwtVerify(token, publicKey, {
      algorithms: [alg],
      issuer: payload.iss,
      audience: payload.aud,
      typ: 'at+jwt',
    });
    expect(verified).toEqual(payload);
    expect(protectedHeader).toEqual({ typ: 'at+jwt', alg, kid: key.kid });
  });

  test('jose-signed tokens verify with ours', async () => {
    const pair = await jose.generateKeyPair(alg, { extractable: true });
    const jwk = await jose.exportJWK(pair.publicKey);
    const publicKey = createPublicKey({ key: { ...jwk }, format: 'jwk' });
    const payload = samplePayload();
    const token = await new jose.SignJWT(payload)
      .setProtectedHeader({ alg, kid: 'jose-kid', typ: 'JWT' })
      .sign(pair.privateKey);
    const result = verifyJwtSignature(token, (kid) => (kid === 'jose-kid' ? publicKey : undefined));
    expect(result?.payload).toEqual(payload);
    expect(result?.header).toEqual({ alg, kid: 'jose-kid', typ: 'JWT' });
  });

  test('PKCS#8 export and import keep the key usable and the JWK identical', () => {
    const restored = importSigningKey({ kid: key.kid, alg, pkcs8: exportPrivatePkcs8(key) });
    expect(restored.publicJwk).toEqual(key.publicJwk);
    const token = signJwt(restored, {}, { a: 1 });
    expect(verifyJwtSignature(token, resolve)?.payload).toEqual({ a: 1 });
  });

  test('import refuses a key of the other algorithm', () => {
    const other = generateSigningKey(alg === 'ES256' ? 'EdDSA' : 'ES256', 'other');
    expect(() => importSigningKey({ kid: 'x', alg, pkcs8: exportPrivatePkcs8(other) })).toThrow(/does not match/);
  });

  test('rejects a tampered payload', () => {
    const [h, , s] = signJwt(key, {}, { role: 'reader' }).split('.');
    expect(verifyJwtSignature(`${h}.${b64({ role: 'admin' })}.${s}`, resolve)).toBeNull();
  });

  test('rejects a tampered signature', () => {
    const [h, p, s = ''] = signJwt(key, {}, { a: 1 }).split('.');
    const sig = Buffer.from(s, 'base64url');
    sig[10] = (sig[10] ?? 0) ^ 0x01;
    expect(verifyJwtSignature(`${h}.${p}.${sig.toString('base64url')}`, resolve)).toBeNull();
  });

  test('rejects an unknown kid and a kid that resolves to another key', () => {
    const token = signJwt(key, {}, { a: 1 });
    expect(verifyJwtSignature(token, () => undefined)).toBeNull();
    const impostor = generateSigningKey(alg, key.kid);
    expect(verifyJwtSignature(token, resolverFor(impostor))).toBeNull();
  });

  test('rejects a key whose type does not match the header alg', () => {
    const token = signJwt(key, {}, { a: 1 });
    const other = generateSigningKey(alg === 'ES256' ? 'EdDSA' : 'ES256', key.kid);
    expect(verifyJwtSignature(token, () => other.publicKey)).toBeNull();
    // Same token with the header lying about alg: the key for the claimed alg cannot check it.
    const [, p, s] = token.split('.');
    const lying = `${b64({ alg: other.alg, kid: key.kid })}.${p}.${s}`;
    expect(verifyJwtSignature(lying, () => key.publicKey)).toBeNull();
  });

  test('rejects algorithms outside the allow-list, even over a valid signature from this key', () => {
    for (const other of ['ES384', 'ES512', 'RS256', 'PS256', 'HS256', 'none', 'es256', 'Ed25519', '']) {
      const forged = signRaw(key, b64({ alg: other, kid: key.kid }), b64({ a: 1 }));
      expect(verifyJwtSignature(forged, resolve), other).toBeNull();
    }
    expect(verifyJwtSignature(signRaw(key, b64({ alg: ['ES256'], kid: key.kid }), b64({})), resolve)).toBeNull();
  });

  test('rejects a crit header, even when correctly signed', () => {
    const token = signJwt(key, { crit: ['exp'], exp: 1 }, { a: 1 });
    expect(verifyJwtSignature(token, resolve)).toBeNull();
    expect(verifyJwtSignature(signJwt(key, { crit: [] }, { a: 1 }), resolve)).toBeNull();
  });

  test('rejects a correctly signed token without a kid or with an empty kid', () => {
    expect(verifyJwtSignature(signRaw(key, b64({ alg }), b64({ a: 1 })), () => key.publicKey)).toBeNull();
    expect(verifyJwtSignature(signRaw(key, b64({ alg, kid: '' }), b64({ a: 1 })), () => key.publicKey)).toBeNull();
  });

  test('rejects a correctly signed non-object payload', () => {
    for (const payload of ['[1,2]', '"str"', 'null', '42', '{bad json']) {
      const forged = signRaw(key, b64({ alg, kid: key.kid }), b64(payload));
      expect(verifyJwtSignature(forged, resolve), payload).toBeNull();
    }
    // Sanity: the same hand-signing path accepts a proper object.
    expect(verifyJwtSignature(signRaw(key, b64({ alg, kid: key.kid }), b64({ ok: true })), resolve)).not.toBeNull();
  });
});

describe('structural and algorithm attacks', () => {
  const key = generateSigningKey('ES256', 'k1');
  const resolve = resolverFor(key);
  const good = signJwt(key, { typ: 'JWT' }, { sub: 'u' });
  const [goodHeader = '', goodPayload = '', goodSig = ''] = good.split('.');

  test('baseline token verifies', () => {
    expect(verifyJwtSignature(good, resolve)).not.toBeNull();
  });

  test('rejects alg none with and without a signature', () => {
    const header = b64({ alg: 'none', kid: 'k1' });
    expect(verifyJwtSignature(`${header}.${goodPayload}.`, resolve)).toBeNull();
    expect(verifyJwtSignature(`${header}.${goodPayload}.${goodSig}`, resolve)).toBeNull();
    expect(verifyJwtSignature(`${b64({ alg: 'None', kid: 'k1' })}.${goodPayload}.`, resolve)).toBeNull();
  });

  test('rejects HS256 signed with the public key bytes as the HMAC secret', () => {
    const header = b64({ alg: 'HS256', kid: 'k1' });
    const input = `${header}.${goodPayload}`;
    const secrets = [
      key.publicKey.export({ format: 'pem', type: 'spki' }),
      key.publicKey.export({ format: 'der', type: 'spki' }),
      JSON.stringify(key.publicJwk),
    ];
    for (const secret of secrets) {
      const mac = createHmac('sha256', secret).update(input).digest('base64url');
      expect(verifyJwtSignature(`${input}.${mac}`, resolve)).toBeNull();
    }
    // Even if a careless resolver hands back a symmetric key, the alg allow-list still refuses.
    const secret = createSecretKey(Buffer.from('secret'));
    const mac = createHmac('sha256', secret).update(input).digest('base64url');
    expect(verifyJwtSignature(`${input}.${mac}`, () => secret)).toBeNull();
  });

  test('rejects wrong part counts', () => {
    expect(verifyJwtSignature(`${goodHeader}.${goodPayload}`, resolve)).toBeNull();
    expect(verifyJwtSignature(`${good}.extra`, resolve)).toBeNull();
    expect(verifyJwtSignature(`${goodHeader}.${goodPayload}.${goodSig}.a.b`, resolve)).toBeNull();
    expect(verifyJwtSignature('', resolve)).toBeNull();
  });

  test('rejects a non-JSON header and a non-object header', () => {
    expect(verifyJwtSignature(`${b64('not json')}.${goodPayload}.${goodSig}`, resolve)).toBeNull();
    expect(verifyJwtSignature(`${b64('["ES256"]')}.${goodPayload}.${goodSig}`, resolve)).toBeNull();
    expect(verifyJwtSignature(`${b64('null')}.${goodPayload}.${goodSig}`, resolve)).toBeNull();
  });

  test('rejects non-base64url characters, padding and whitespace', () => {
    expect(verifyJwtSignature(`${goodHeader}=.${goodPayload}.${goodSig}`, resolve)).toBeNull();
    expect(verifyJwtSignature(`${goodHeader}.${goodPayload}.${goodSig}=`, resolve)).toBeNull();
    expect(verifyJwtSignature(` ${good}`, resolve)).toBeNull();
    expect(
      verifyJwtSignature(`${goodHeader}.${goodPayload}.${goodSig.replace(/-/g, '+').replace(/_/g, '/')}A`, resolve),
    ).toBeNull();
  });

  test('rejects a non-canonical signature encoding that decodes to the same bytes', () => {
    // 64 bytes encode to 86 chars; the last char carries 4 unused bits Buffer would ignore.
    const last = goodSig.at(-1) ?? 'A';
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = alphabet[alphabet.indexOf(last) ^ 1] ?? 'A';
    const mangled = `${goodHeader}.${goodPayload}.${goodSig.slice(0, -1)}${twin}`;
    expect(Buffer.from(mangled.split('.')[2] ?? '', 'base64url')).toEqual(Buffer.from(goodSig, 'base64url'));
    expect(verifyJwtSignature(mangled, resolve)).toBeNull();
  });

  test('rejects a DER-encoded ES256 signature (RFC 7518 §3.4 requires R || S)', () => {
    const der = sign('sha256', Buffer.from(`${goodHeader}.${goodPayload}`), {
      key: key.privateKey,
      dsaEncoding: 'der',
    });
    expect(verifyJwtSignature(`${goodHeader}.${goodPayload}.${der.toString('base64url')}`, resolve)).toBeNull();
  });

  test('never throws, even when the resolver does', () => {
    expect(
      verifyJwtSignature(good, () => {
        throw new Error('db down');
      }),
    ).toBeNull();
    expect(verifyJwtSignature(undefined as unknown as string, resolve)).toBeNull();
  });

  test('rejects a header that is not valid UTF-8', () => {
    const bad = Buffer.concat([Buffer.from('{"alg":"ES256","kid":"k1","x":"'), Buffer.from([0xff]), Buffer.from('"}')]);
    expect(verifyJwtSignature(`${bad.toString('base64url')}.${goodPayload}.${goodSig}`, resolve)).toBeNull();
  });
});
