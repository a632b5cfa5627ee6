import { verifyDpopProof } from '@errand/guard';
import { DPOP } from '@errand/protocol';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import type { CryptoBox } from '../tokens/crypto-box.js';

export interface DpopProofOptions {
  /** The token endpoint URL: the only `htu` accepted (RFC 9449 §4.3 check 9). */
  tokenEndpoint: string;
  /** Require a server nonce in every proof (RFC 9449 §8). */
  nonceRequired: boolean;
  clock: Clock;
  clockSkew: number;
  /** Seals nonces, so that every broker process sharing the master key accepts them. */
  box: CryptoBox;
  /** Records a proof `jti` until `until`; false when seen before, across every process (the database decides). */
  remember(key: string, until: number, now: number): Promise<boolean>;
}

/** A verified proof: the thumbprint of its key, to bind issued tokens to (`cnf.jkt`). */
export interface DpopBinding {
  jkt: string;
}

// How long one nonce is issued for; a nonce from the previous period is still accepted.
const NONCE_PERIOD = 300;
const NONCE_AAD = 'dpop-nonce';
// How old a proof may be (RFC 9449 §11.1: a short window, with jti replay checks inside it).
const PROOF_MAX_AGE = 300;

/**
 * DPoP at the token endpoint (RFC 9449 §5): checks the proof against the endpoint, remembers its
 * `jti` in the database, and hands out and checks server nonces when they are required.
 */
export class DpopProofs {
  private current: { period: number; nonce: string } | null = null;

  constructor(private readonly opts: DpopProofOptions) {}

  get nonceRequired(): boolean {
    return this.opts.nonceRequired;
  }

  /** The nonce to send in `DPoP-Nonce` now. */
  nonce(): string {
    const period = Math.floor(this.opts.clock.now() / NONCE_PERIOD);
    if (this.current?.period !== period) {
      this.current = { period, nonce: this.opts.box.seal(Buffer.from(String(period)), NONCE_AAD) };
    }
    return this.current.nonce;
  }

  /** Headers every token endpoint response carries (a fresh nonce when nonces are required). */
  responseHeaders(): Record<string, string> {
    return this.opts.nonceRequired ? { [DPOP.nonceHeader]: this.nonce() } : {};
  }

  /** Verifies the `DPoP` header of a token request; null when there is none. */
  async verify(proof: string | undefined, method: string): Promise<DpopBinding | null> {
    if (proof === undefined) return null;
    const { clock, clockSkew, tokenEndpoint } = this.opts;
    const result = await verifyDpopProof({
      proof,
      method,
      url: tokenEndpoint,
      now: clock.now(),
      clockSkew,
      maxAge: PROOF_MAX_AGE,
      replay: { remember: (jti, until, now) => this.opts.remember(jti, until, now) },
      ...(this.opts.nonceRequired ? { nonce: (n: string | undefined) => this.isValidNonce(n) } : {}),
    });
    if (result.ok) return { jkt: result.jkt };
    if (result.error === 'use_dpop_nonce') {
      // RFC 9449 §8: 400 use_dpop_nonce with the nonce to use.
      throw new OAuthError('use_dpop_nonce', 'the DPoP proof must carry the nonce from the DPoP-Nonce header', {
        headers: { [DPOP.nonceHeader]: this.nonce() },
      });
    }
    throw new OAuthError('invalid_dpop_proof', result.description, { headers: this.responseHeaders() });
  }

  private isValidNonce(nonce: string | undefined): boolean {
    if (!nonce) return false;
    let period: number;
    try {
      period = Number(this.opts.box.open(nonce, NONCE_AAD).toString('utf8'));
    } catch {
      return false;
    }
    const now = Math.floor(this.opts.clock.now() / NONCE_PERIOD);
    return period === now || period === now - 1;
  }
}
