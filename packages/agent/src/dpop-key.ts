import { DPOP, JWT_TYP } from '@errand/protocol';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { accessTokenHash, randomId } from './util.js';

/**
 * An ephemeral DPoP key pair (RFC 9449), held in memory only: the private key is generated
 * non-extractable, so it can sign but can never be exported, logged or written to disk. Make a new
 * one per process or per task; a token bound to it is useless to anyone without it.
 */
export class DpopKey {
  private constructor(
    private readonly privateKey: CryptoKey,
    /** The public key, as sent in every proof's `jwk` header. */
    readonly publicJwk: JWK,
    /** RFC 7638 thumbprint: what tokens bound to this key carry as `cnf.jkt`. */
    readonly jkt: string,
  ) {}

  /** Generates a new key pair (ES256). */
  static async generate(): Promise<DpopKey> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: false });
    const publicJwk = await exportJWK(publicKey);
    return new DpopKey(privateKey, publicJwk, await calculateJwkThumbprint(publicJwk, 'sha256'));
  }

  /** A proof for one request (RFC 9449 §4.2): method, URL (without query/fragment), optional token and nonce. */
  async proof(req: {
    method: string;
    url: string;
    accessToken?: string;
    nonce?: string;
    now: number;
  }): Promise<string> {
    const u = new URL(req.url);
    return new SignJWT({
      jti: randomId(),
      htm: req.method.toUpperCase(),
      htu: `${u.protocol}//${u.host}${u.pathname}`,
      iat: req.now,
      ...(req.accessToken ? { ath: accessTokenHash(req.accessToken) } : {}),
      ...(req.nonce ? { nonce: req.nonce } : {}),
    })
      .setProtectedHeader({ alg: 'ES256', typ: JWT_TYP.dpopProof, jwk: this.publicJwk })
      .sign(this.privateKey);
  }

  /** The header name proofs travel in. */
  static readonly header = DPOP.header;
}
