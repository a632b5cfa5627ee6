import { CLAIM, DPOP, formatScope, JWT_TYP, signJwt, type VerifiedJws, verifyJwtSignature } from '@errand/protocol';
import type { IssuedToken } from '../../db/stores/grant-store.js';
import type { AssuranceLevel } from '../core/client.js';
import type { Clock } from '../core/ports.js';
import type { KeyRing } from './key-ring.js';
import { timeOrderedId } from './random.js';

export interface MintRequest {
  clientId: string;
  subject: string;
  audience: string;
  scope: readonly string[];
  ttl: number;
  grantId: string | null;
  /** An absolute expiry that wins over `ttl` when earlier (task tokens). */
  exp?: number;
  /** Extra claims (`act`, `task_id`, `status`, `authorization_details`). */
  claims?: Record<string, unknown>;
}

export interface MintedToken {
  token: string;
  expiresIn: number;
  record: IssuedToken;
}

export interface VerifiedAccessToken {
  jti: string;
  claims: Record<string, unknown>;
}

/**
 * Claims about the current actor every access token carries: its assurance level (README "Assurance levels") and,
 * when the request carried a DPoP proof, the key the token is bound to (RFC 9449 §6.1 `cnf.jkt`).
 */
export function actorClaims(opts: {
  assurance?: AssuranceLevel | null;
  dpopJkt?: string | null;
}): Record<string, unknown> {
  return {
    ...(opts.assurance ? { [CLAIM.assurance]: opts.assurance } : {}),
    ...(opts.dpopJkt ? { [CLAIM.confirmation]: { jkt: opts.dpopJkt } } : {}),
  };
}

/** RFC 9449 §5: `token_type` is `DPoP` for a bound token, `Bearer` otherwise. */
export function tokenTypeFor(dpopJkt: string | null | undefined): 'Bearer' | 'DPoP' {
  return dpopJkt ? DPOP.tokenType : 'Bearer';
}

/** Mints and checks Errand's JWT access tokens (RFC 9068). */
/** Recently verified Errand JWTs whose signature check is not repeated. */
const VERIFIED_CACHE = 2000;

export class TokenMinter {
  private readonly verified = new Map<string, VerifiedJws>();

  constructor(
    private readonly deps: {
      keys: KeyRing;
      issuer: string;
      clock: Clock;
      /** Tolerated clock difference (ERRAND_CLOCK_SKEW): how far in the future an `iat` may lie. */
      clockSkew: number;
    },
  ) {}

  get issuer(): string {
    return this.deps.issuer;
  }

  /** Signs an access token; the caller stores `record` in the same transaction that returns it. */
  mint(req: MintRequest): MintedToken {
    const iat = this.deps.clock.now();
    const exp = Math.min(iat + req.ttl, req.exp ?? Number.POSITIVE_INFINITY);
    const key = this.deps.keys.signingKeyFor({ iat, exp });
    const jti = timeOrderedId();
    const scope = formatScope(req.scope);
    // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti; scope when one was granted.
    const claims: Record<string, unknown> = {
      iss: this.deps.issuer,
      sub: req.subject,
      aud: req.audience,
      client_id: req.clientId,
      iat,
      exp,
      jti,
      ...(scope ? { scope } : {}),
      ...req.claims,
    };
    const token = signJwt(key, { typ: JWT_TYP.accessToken }, claims);
    return {
      token,
      expiresIn: exp - iat,
      record: {
        jti,
        grantId: req.grantId,
        clientId: req.clientId,
        subject: req.subject,
        audience: req.audience,
        scope,
        kid: key.kid,
        issuedAt: iat,
        expiresAt: exp,
        revokedAt: null,
      },
    };
  }

  /**
   * Checks that a JWT is an unexpired access token Errand signed with a published key. Whether it
   * was revoked is the caller's question (the database row).
   */
  verify(token: string, opts: { acceptFutureIat?: boolean } = {}): VerifiedAccessToken | null {
    return this.verifyOwn(token, JWT_TYP.accessToken, opts);
  }

  /** Signs another short-lived Errand JWT (an ID token, a status list token). */
  sign(typ: string, claims: Record<string, unknown> & { iat: number; exp: number }): { token: string; kid: string } {
    const key = this.deps.keys.signingKeyFor(claims);
    return { token: signJwt(key, { typ }, { iss: this.deps.issuer, ...claims }), kid: key.kid };
  }

  /**
   * Signs an Errand JWT that may outlive the signing key's usual retention (a delegation credential):
   * its `exp` is recorded on the key first, so the key stays published until the token expires.
   */
  async signLongLived(
    typ: string,
    claims: Record<string, unknown> & { exp: number },
  ): Promise<{ token: string; kid: string }> {
    const key = await this.deps.keys.signingKeyUntil(claims.exp);
    return { token: signJwt(key, { typ }, { iss: this.deps.issuer, ...claims }), kid: key.kid };
  }

  /**
   * Checks an Errand-signed JWT of the given `typ`: signature, issuer, `jti`, expiry, and an `iat`
   * no further in the future than the clock skew. A token minted while this clock ran ahead would
   * otherwise live for its lifetime plus the jump once the clock is back (README "Clock skew and
   * clock jumps"). `acceptFutureIat` is for revocation only: such a token can still be revoked.
   */
  verifyOwn(token: string, typ: string, opts: { acceptFutureIat?: boolean } = {}): VerifiedAccessToken | null {
    const verified = this.checkSignature(token);
    if (!verified) return null;
    const { header, payload } = verified;
    if (header.typ !== typ) return null;
    if (payload.iss !== this.deps.issuer) return null;
    if (typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return null;
    const now = this.deps.clock.now();
    if (payload.exp <= now) return null;
    if (payload.iat !== undefined) {
      if (typeof payload.iat !== 'number') return null;
      if (payload.iat > now + this.deps.clockSkew && !opts.acceptFutureIat) return null;
    }
    return { jti: payload.jti, claims: payload };
  }

  /**
   * The signature check, remembered for tokens seen recently: a delegation credential or a task
   * token is presented again and again, and the same bytes under the same, still published key
   * verify the same way. Only the signature is remembered; every claim is checked on each use.
   */
  private checkSignature(token: string): VerifiedJws | null {
    const seen = this.verified.get(token);
    if (seen && this.deps.keys.verificationKey(seen.header.kid) !== undefined) return seen;
    const verified = verifyJwtSignature(token, (kid) => this.deps.keys.verificationKey(kid));
    if (!verified) return null;
    Object.freeze(verified.header);
    Object.freeze(verified.payload);
    if (this.verified.size >= VERIFIED_CACHE) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(token, verified);
    return verified;
  }
}
