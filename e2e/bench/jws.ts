import { createHash, generateKeyPairSync, type JsonWebKey, type KeyObject, randomBytes, sign } from 'node:crypto';

/** An ES256 key for pre-signing many JWTs quickly (node:crypto, not WebCrypto). */
export interface BenchKey {
  privateKey: KeyObject;
  publicJwk: { kty: string; crv: string; x: string; y: string; kid: string; alg: 'ES256' };
  privateJwk: JsonWebKey & { kid: string; alg: 'ES256' };
}

export function newKey(kid: string): BenchKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = publicKey.export({ format: 'jwk' });
  const priv = privateKey.export({ format: 'jwk' });
  return {
    privateKey,
    publicJwk: { kty: pub.kty!, crv: pub.crv!, x: pub.x!, y: pub.y!, kid, alg: 'ES256' },
    privateJwk: { ...priv, kid, alg: 'ES256' },
  };
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

export function signJwt(key: KeyObject, header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const input = `${b64({ alg: 'ES256', ...header })}.${b64(claims)}`;
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

export const jti = () => randomBytes(12).toString('base64url');

/** RFC 7523 client assertions: unique jti each, valid for `lifetime` seconds. */
export function assertions(
  key: BenchKey,
  clientId: string,
  aud: string,
  n: number,
  lifetime: number,
  typ?: string,
): string[] {
  const now = Math.floor(Date.now() / 1000);
  const header = { kid: key.publicJwk.kid, ...(typ ? { typ } : {}) };
  const out: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = signJwt(key.privateKey, header, {
      iss: clientId,
      sub: clientId,
      aud,
      jti: jti(),
      iat: now,
      exp: now + lifetime,
    });
  }
  return out;
}

/** RFC 9449 proofs for POST to `htu`, unique jti each, with the public key embedded. */
export function dpopProofs(key: BenchKey, htu: string, n: number): string[] {
  const now = Math.floor(Date.now() / 1000);
  const { kid: _kid, alg: _alg, ...jwk } = key.publicJwk;
  const header = { typ: 'dpop+jwt', jwk };
  const out: string[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = signJwt(key.privateKey, header, { jti: jti(), htm: 'POST', htu, iat: now });
  return out;
}

export function thumbprint(key: BenchKey): string {
  const { crv, kty, x, y } = key.publicJwk;
  return createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
}
