import { createHash } from 'node:crypto';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  type GenerateKeyPairResult,
  generateKeyPair,
  type JWK,
  SignJWT,
} from 'jose';
import { newId } from '../tokens/random.js';

/** A DPoP key pair, its public JWK and its RFC 7638 thumbprint (`cnf.jkt`). */
export interface ProofKey {
  pair: GenerateKeyPairResult;
  jwk: JWK;
  jkt: string;
}

export async function proofKey(): Promise<ProofKey> {
  const pair = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(pair.publicKey);
  return { pair, jwk, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
}

/** A DPoP proof (RFC 9449 §4.2) made at `iat`, with every part overridable to build attacks. */
export async function dpopProof(
  key: ProofKey,
  p: {
    iat: number;
    htm?: string;
    htu: string;
    token?: string;
    nonce?: string;
    header?: Record<string, unknown>;
    claims?: Record<string, unknown>;
    signWith?: CryptoKey | Uint8Array;
  },
): Promise<string> {
  return new SignJWT({
    jti: newId('p'),
    htm: p.htm ?? 'POST',
    htu: p.htu,
    iat: p.iat,
    // RFC 9449 §4.2: at a resource, ath is the hash of the access token presented with the proof.
    ...(p.token ? { ath: createHash('sha256').update(p.token).digest('base64url') } : {}),
    ...(p.nonce ? { nonce: p.nonce } : {}),
    ...p.claims,
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk, ...p.header })
    .sign(p.signWith ?? key.pair.privateKey);
}

/**
 * A fetch that presents a DPoP-bound access token as a client must (RFC 9449 §7.1): the DPoP scheme
 * and a fresh proof for each request's method and URL (without query or fragment), made on `now`.
 */
export function dpopFetch(token: string, key: ProofKey, now: () => number): typeof fetch {
  return (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set('authorization', `DPoP ${token}`);
    headers.set('dpop', await dpopProof(key, { iat: now(), htm: method, htu: `${url.origin}${url.pathname}`, token }));
    return fetch(input, { ...init, headers });
  }) as typeof fetch;
}
