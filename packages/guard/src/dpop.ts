import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { DPOP, JWT_TYP, verifyJwtSignature } from '@errand/protocol';
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, type JWK, jwtVerify } from 'jose';
import { z } from 'zod';

/** Asymmetric algorithms accepted on DPoP proofs (RFC 9449 §4.3: never `none`, never a MAC). */
export const DPOP_ALGS = DPOP.algs;

const DPOP_TYP = JWT_TYP.dpopProof;
// RFC 7517/7518: members that make a JWK private (or symmetric).
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

const ProofClaimsSchema = z.object({
  jti: z.string().min(1).max(256),
  htm: z.string().min(1).max(16),
  htu: z.string().min(1).max(4096),
  iat: z.number(),
  ath: z.string().max(128).optional(),
  nonce: z.string().max(512).optional(),
});

/** Where seen proof `jti`s are kept: memory in one process, or a database shared by several. */
export interface ProofReplay {
  /** Records `jti` until `until` (epoch seconds); false when it was already seen. */
  remember(jti: string, until: number, now: number): boolean | Promise<boolean>;
}

/** Remembers proof `jti`s until they can no longer pass the `iat` window (RFC 9449 §11.1). */
export class ReplayCache implements ProofReplay {
  private readonly seen = new Map<string, number>();

  constructor(private readonly max = 100_000) {}

  /** Records `jti` until `until` (epoch seconds); false when it was already seen. */
  remember(jti: string, until: number, now: number): boolean {
    const prev = this.seen.get(jti);
    if (prev !== undefined && prev >= now) return false;
    if (this.seen.size >= this.max) this.prune(now);
    // Still full of live entries: refuse rather than forget one (fail closed).
    if (this.seen.size >= this.max) return false;
    this.seen.set(jti, until);
    return true;
  }

  private prune(now: number): void {
    for (const [jti, until] of this.seen) if (until < now) this.seen.delete(jti);
  }
}

export interface DpopProofCheck {
  /** The `DPoP` request header value. */
  proof: string | null | undefined;
  method: string;
  url: string;
  /** The access token presented with the proof (for `ath`); absent at a token endpoint. */
  accessToken?: string;
  /** The token's `cnf.jkt`; absent when the proof's own key is what is being learnt. */
  jkt?: string;
  /** Epoch seconds. */
  now: number;
  replay: ProofReplay;
  clockSkew?: number;
  /** How old a proof may be, in seconds (default 300). */
  maxAge?: number;
  /** The nonce the server requires, if any (RFC 9449 §8), or a check of the proof's nonce. */
  nonce?: string | ((nonce: string | undefined) => boolean);
}

/** Outcome of a proof check. */
export type DpopResult =
  | { ok: true; jkt: string }
  | { ok: false; error: 'invalid_dpop_proof' | 'use_dpop_nonce'; description: string };

const invalid = (description: string): DpopResult => ({ ok: false, error: 'invalid_dpop_proof', description });

/** RFC 9449 §4.3 `htu` comparison: scheme, host, port and path; query and fragment ignored. */
function targetOf(uri: string): string | null {
  try {
    const u = new URL(uri);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return null;
  }
}

// Public keys of recent proofs: an agent signs many proofs with one key.
const curveKeys = new Map<string, KeyObject>();
const CURVE_KEYS_MAX = 1000;

/** The P-256 or Ed25519 public key a proof's jwk holds, fit for `alg`; null to take jose's path. */
function curveKey(jwk: JWK, alg: 'ES256' | 'EdDSA'): KeyObject | null {
  const fits =
    alg === 'ES256'
      ? jwk.kty === 'EC' && jwk.crv === 'P-256' && typeof jwk.y === 'string'
      : jwk.kty === 'OKP' && jwk.crv === 'Ed25519';
  if (!fits || typeof jwk.x !== 'string') return null;
  const id = `${jwk.crv}.${jwk.x}.${jwk.y ?? ''}`;
  let key = curveKeys.get(id);
  if (!key) {
    try {
      key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } as never, format: 'jwk' });
    } catch {
      return null;
    }
    if (curveKeys.size >= CURVE_KEYS_MAX) curveKeys.delete(curveKeys.keys().next().value as string);
    curveKeys.set(id, key);
  }
  return key;
}

/** jose's time rules: exp/nbf/iat numeric when present, exp not passed, nbf reached (with skew). */
function timesAcceptable(p: Record<string, unknown>, now: number, skew: number): boolean {
  for (const name of ['exp', 'nbf', 'iat']) {
    if (p[name] !== undefined && (typeof p[name] !== 'number' || !Number.isFinite(p[name]))) return false;
  }
  if (typeof p.exp === 'number' && p.exp <= now - skew) return false;
  if (typeof p.nbf === 'number' && p.nbf > now + skew) return false;
  return true;
}

/** RFC 7638 SHA-256 thumbprint of an EC or OKP key (required members, lexical order); null otherwise. */
function thumbprintOf(jwk: JWK): string | null {
  let members: string;
  if (jwk.kty === 'EC' && typeof jwk.crv === 'string' && typeof jwk.x === 'string' && typeof jwk.y === 'string') {
    members = JSON.stringify({ crv: jwk.crv, kty: 'EC', x: jwk.x, y: jwk.y });
  } else if (jwk.kty === 'OKP' && typeof jwk.crv === 'string' && typeof jwk.x === 'string') {
    members = JSON.stringify({ crv: jwk.crv, kty: 'OKP', x: jwk.x });
  } else {
    return null;
  }
  return createHash('sha256').update(members, 'utf8').digest('base64url');
}

/** base64url(SHA-256(access token)): the proof's `ath` (RFC 9449 §4.2). */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

/**
 * Verifies a DPoP proof (RFC 9449 §4.3): for a request carrying a DPoP-bound access token (§7.1,
 * with `accessToken` and `jkt`), or at a token endpoint (without them; the key's thumbprint is returned).
 */
export async function verifyDpopProof(check: DpopProofCheck): Promise<DpopResult> {
  const { proof } = check;
  if (!proof) return invalid('a DPoP proof is required with this token');
  // One header holding one JWT: a repeated header arrives comma-joined.
  if (proof.includes(',') || proof.split('.').length !== 3) return invalid('send exactly one DPoP proof JWT');
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    return invalid('the DPoP proof is not a well-formed JWT');
  }
  if (header.typ !== DPOP_TYP) return invalid(`the DPoP proof typ must be ${DPOP_TYP}`);
  if (typeof header.alg !== 'string' || !(DPOP_ALGS as readonly string[]).includes(header.alg)) {
    return invalid(`the DPoP proof alg must be one of ${DPOP_ALGS.join(', ')}`);
  }
  const jwk = header.jwk as JWK | undefined;
  if (!jwk || typeof jwk !== 'object') return invalid('the DPoP proof must carry its public key in jwk');
  if (PRIVATE_MEMBERS.some((m) => m in jwk)) return invalid('the DPoP proof jwk must be a public key');
  if (header.crit !== undefined) return invalid('the DPoP proof must not carry critical header parameters');

  const skew = check.clockSkew ?? 30;
  const maxAge = check.maxAge ?? 300;
  let payload: unknown;
  const key = header.alg === 'ES256' || header.alg === 'EdDSA' ? curveKey(jwk, header.alg) : null;
  if (key) {
    // ES256 and EdDSA (nearly every proof) are checked on node:crypto, with the rules jose applies.
    const verified = verifyJwtSignature(proof, (_kid, alg) => (alg === header.alg ? key : undefined), {
      kidOptional: true,
    });
    if (!verified || !timesAcceptable(verified.payload, check.now, skew)) {
      return invalid('the DPoP proof signature is not valid');
    }
    payload = verified.payload;
  } else {
    try {
      ({ payload } = await jwtVerify(proof, EmbeddedJWK, {
        algorithms: [...DPOP_ALGS],
        typ: DPOP_TYP,
        clockTolerance: skew,
        currentDate: new Date(check.now * 1000),
      }));
    } catch {
      return invalid('the DPoP proof signature is not valid');
    }
  }
  const parsed = ProofClaimsSchema.safeParse(payload);
  if (!parsed.success) return invalid('the DPoP proof lacks jti, htm, htu or iat');
  const claims = parsed.data;
  if (claims.htm !== check.method) return invalid('the DPoP proof htm does not match the request method');
  const htu = targetOf(claims.htu);
  if (htu === null || htu !== targetOf(check.url)) return invalid('the DPoP proof htu does not match the request URI');
  if (claims.iat > check.now + skew || claims.iat < check.now - maxAge - skew) {
    return invalid('the DPoP proof iat is outside the accepted window');
  }
  if (
    check.accessToken !== undefined &&
    (claims.ath === undefined || claims.ath !== accessTokenHash(check.accessToken))
  ) {
    return invalid('the DPoP proof ath does not match the access token');
  }
  const jkt = thumbprintOf(jwk) ?? (await calculateJwkThumbprint(jwk, 'sha256'));
  if (check.jkt !== undefined && jkt !== check.jkt) {
    return invalid('the DPoP proof key is not the key the access token is bound to');
  }
  const nonceOk =
    check.nonce === undefined ||
    (typeof check.nonce === 'function' ? check.nonce(claims.nonce) : claims.nonce === check.nonce);
  if (!nonceOk) return { ok: false, error: 'use_dpop_nonce', description: 'a DPoP nonce is required' };
  // Last, so a proof rejected for another reason does not burn its jti. The key is part of the
  // entry: a jti is unique per key, and one key cannot spend another's.
  if (!(await check.replay.remember(`${jkt}:${claims.jti}`, claims.iat + maxAge + skew, check.now))) {
    return invalid('the DPoP proof has been used before');
  }
  return { ok: true, jkt };
}
