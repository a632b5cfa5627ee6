/**
 * Compact JWS (RFC 7515 §7.1) signing and verification on node:crypto. Tokens are minted and checked
 * on every request, so this avoids jose's WebCrypto round-trips; jose is used only in the tests to
 * prove interoperability. Only asymmetric algorithms are supported: ES256 (RFC 7518 §3.4) and EdDSA
 * over Ed25519 (RFC 8037 §3.1).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';

export type SigningAlg = 'ES256' | 'EdDSA';

/** Public JWK as published in the JWKS (RFC 7517 §4, RFC 7518 §6.2, RFC 8037 §2). */
export interface JWK {
  kty: 'EC' | 'OKP';
  crv: 'P-256' | 'Ed25519';
  x: string;
  y?: string;
  kid: string;
  alg: SigningAlg;
  use: 'sig';
}

export interface JwsKey {
  kid: string;
  alg: SigningAlg;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
}

export interface JwsHeader {
  alg: SigningAlg;
  kid: string;
  [name: string]: unknown;
}

export interface VerifiedJws {
  header: JwsHeader;
  payload: Record<string, unknown>;
}

/** Resolves the verification key for a token's `kid`; `alg` is the (not yet trusted) header value. */
export type KeyResolver = (kid: string, alg: string) => KeyObject | undefined;

// RFC 7518 §3.4: the ES256 signature is R || S, each a 32-byte big-endian integer (not DER).
// RFC 8032 §5.1.6: an Ed25519 signature is also 64 bytes.
const SIGNATURE_LENGTH = 64;

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Encodes bytes or a string as unpadded base64url (RFC 7515 §2). */
export function encodeBase64url(input: Buffer | Uint8Array | string): string {
  return (typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input)).toString('base64url');
}

/**
 * Decodes unpadded base64url, returning null for anything that is not its canonical encoding.
 * Buffer's decoder silently skips foreign characters and ignores non-zero trailing bits, which would
 * let several distinct strings carry the same signature; re-encoding closes that gap.
 */
export function decodeBase64url(input: string): Buffer | null {
  if (!BASE64URL.test(input)) return null;
  const bytes = Buffer.from(input, 'base64url');
  return bytes.toString('base64url') === input ? bytes : null;
}

/** Creates a fresh signing key pair for `alg`, tagged with `kid`. */
export function generateSigningKey(alg: SigningAlg, kid: string): JwsKey {
  const { privateKey, publicKey } =
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : generateKeyPairSync('ed25519');
  return buildJwsKey(kid, alg, privateKey, publicKey);
}

/** Serialises the private key as PKCS#8 DER so it can be sealed and stored. */
export function exportPrivatePkcs8(key: JwsKey): Buffer {
  return key.privateKey.export({ format: 'der', type: 'pkcs8' });
}

/** Rebuilds a signing key from stored PKCS#8 DER, refusing a key that does not fit `alg`. */
export function importSigningKey(input: { kid: string; alg: SigningAlg; pkcs8: Buffer }): JwsKey {
  const privateKey = createPrivateKey({ key: input.pkcs8, format: 'der', type: 'pkcs8' });
  if (!isKeyForAlg(privateKey, input.alg)) {
    throw new Error(`stored key ${input.kid} does not match algorithm ${input.alg}`);
  }
  return buildJwsKey(input.kid, input.alg, privateKey, createPublicKey(privateKey));
}

/** Signs `payload` as a compact JWS; `alg` and `kid` always come from the key, never the caller. */
export function signJwt(key: JwsKey, header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const signingInput = `${encodeBase64url(JSON.stringify({ ...header, alg: key.alg, kid: key.kid }))}.${encodeBase64url(JSON.stringify(payload))}`;
  const data = Buffer.from(signingInput, 'ascii');
  const signature =
    key.alg === 'ES256'
      ? sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign(null, data, key.privateKey);
  return `${signingInput}.${signature.toString('base64url')}`;
}

/**
 * Checks a compact JWS signature and returns its decoded header and payload, or null on any problem.
 * Claims (exp, aud, ...) are deliberately not checked here; the caller owns those rules.
 */
export function verifyJwtSignature(
  token: string,
  resolveKey: KeyResolver,
  opts: { kidOptional?: boolean } = {},
): VerifiedJws | null {
  try {
    return verifyOrNull(token, resolveKey, opts.kidOptional === true);
  } catch {
    // A throwing resolver or an OpenSSL error must still read as "not valid", never as a 500.
    return null;
  }
}

function verifyOrNull(token: string, resolveKey: KeyResolver, kidOptional: boolean): VerifiedJws | null {
  if (typeof token !== 'string') return null;
  // RFC 7515 §7.1: compact serialisation is exactly three parts; five would be a JWE.
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string];

  const headerBytes = decodeBase64url(encodedHeader);
  const payloadBytes = decodeBase64url(encodedPayload);
  const signature = decodeBase64url(encodedSignature);
  if (!headerBytes || !payloadBytes || !signature) return null;

  const header = parseJsonObject(headerBytes);
  if (!header) return null;
  // Allow-list only: this rules out `none` (RFC 7518 §3.6) and HS* with a public key as the secret.
  const alg = header.alg;
  if (alg !== 'ES256' && alg !== 'EdDSA') return null;
  const kid = header.kid;
  // A key that travels in the header (a DPoP proof's jwk) needs no kid; Errand's own keys do.
  if (kidOptional ? kid !== undefined && typeof kid !== 'string' : typeof kid !== 'string' || kid.length === 0) {
    return null;
  }
  // RFC 7515 §4.1.11: we understand no extensions, so any `crit` (even an empty one) means reject.
  if ('crit' in header) return null;
  if (signature.length !== SIGNATURE_LENGTH) return null;

  const key = resolveKey(typeof kid === 'string' ? kid : '', alg);
  if (!key || !isKeyForAlg(key, alg)) return null;

  // RFC 7515 §5.2: the signature covers the ASCII of the encoded header and payload as received.
  const data = Buffer.from(`${encodedHeader}.${encodedPayload}`, 'ascii');
  const valid =
    alg === 'ES256'
      ? verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature)
      : verify(null, data, key, signature);
  if (!valid) return null;

  const payload = parseJsonObject(payloadBytes);
  if (!payload) return null;
  return { header: header as JwsHeader, payload };
}

function buildJwsKey(kid: string, alg: SigningAlg, privateKey: KeyObject, publicKey: KeyObject): JwsKey {
  const exported = publicKey.export({ format: 'jwk' });
  if (typeof exported.x !== 'string') throw new Error('public key export lacks x');
  let publicJwk: JWK;
  if (alg === 'ES256') {
    if (typeof exported.y !== 'string') throw new Error('EC public key export lacks y');
    publicJwk = { kty: 'EC', crv: 'P-256', x: exported.x, y: exported.y, kid, alg, use: 'sig' };
  } else {
    publicJwk = { kty: 'OKP', crv: 'Ed25519', x: exported.x, kid, alg, use: 'sig' };
  }
  return { kid, alg, privateKey, publicKey, publicJwk };
}

// The header's alg is attacker-chosen, so the key itself must agree with it (RFC 8725 §3.1).
function isKeyForAlg(key: KeyObject, alg: SigningAlg): boolean {
  if (key.type === 'secret') return false;
  if (alg === 'EdDSA') return key.asymmetricKeyType === 'ed25519';
  if (alg === 'ES256') return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  return false;
}

// RFC 7515 §5.2 requires valid UTF-8 JSON; JSON.parse keeps the last duplicate member, which §5.2 allows.
function parseJsonObject(bytes: Buffer): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(strictUtf8.decode(bytes));
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  return value as Record<string, unknown>;
}
