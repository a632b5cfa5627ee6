import { createHash } from 'node:crypto';
import { type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import { z } from 'zod';
import type { TrustedIssuerStore } from '../../db/stores/trusted-issuer-store.js';
import type { Clock } from '../core/ports.js';
import { ASSERTION_ALGS } from '../core/protocol.js';
import { matchWorkloadRule, spiffeTrustDomain, type TrustedIssuer, type WorkloadRule } from '../core/trusted-issuer.js';
import type { Logger } from '../log.js';
import { ClientKeyError, type ClientKeys } from './client-keys.js';
import { SafeFetchError, safeFetch } from './safe-fetch.js';

export interface WorkloadDeps {
  issuers: Pick<TrustedIssuerStore, 'findByIssuer'>;
  keys: ClientKeys;
  clock: Clock;
  clockSkew: number;
  fetch: { timeoutMs: number; allowPrivate: boolean; cacheTtl: number };
  /** Records a token id until it expires; false when seen before (RFC 7523 §3 item 7, across processes). */
  remember(scope: string, jti: string, expiresAt: number, now: number): Promise<boolean>;
  log: Logger;
}

/** A workload token that passed every check, and what its matching rule maps it to. */
export interface WorkloadIdentity {
  issuer: TrustedIssuer;
  rule: WorkloadRule;
  subject: string;
}

/** A refusal whose message is safe to return to the caller. */
export class WorkloadError extends Error {}

const DiscoverySchema = z.object({ issuer: z.string(), jwks_uri: z.url() });
const DISCOVERY_MAX_BYTES = 65_536;
const GENERIC = 'the workload token could not be verified';

/**
 * SPIFFE bundle: keys for JWT-SVIDs say `use: jwt-svid`; entries for X.509-SVIDs are ignored. The
 * `use` is then dropped, since JOSE key selection only knows `sig`.
 */
const jwtSvidKeys = (keys: Record<string, unknown>[]) =>
  keys.filter((k) => k.use === undefined || k.use === 'jwt-svid').map(({ use: _use, ...key }) => key);

/**
 * Verifies workload identity tokens from trusted issuers (SPECS §4.4, §6.5): an OpenID issuer's
 * token, a SPIFFE JWT-SVID, a Kubernetes service-account token, a CI provider's OIDC token. Strict:
 * registered and active issuer, signature with the issuer's keys only, `aud` = the configured
 * audience alone, `exp`, a lifetime within the issuer's maximum, `iat` not in the future, one use,
 * and a rule that maps the claims to an agent.
 */
export class WorkloadVerifier {
  private readonly discovered = new Map<string, { jwksUri: string; until: number }>();

  constructor(private readonly deps: WorkloadDeps) {}

  /**
   * The registered issuer a token names: by `iss`, else (a JWT-SVID without `iss`) by the SPIFFE
   * trust domain of its `sub`. Null when none is registered.
   */
  async findIssuer(unverified: JWTPayload): Promise<TrustedIssuer | null> {
    if (typeof unverified.iss === 'string' && unverified.iss.length <= 2048) {
      const byIss = await this.deps.issuers.findByIssuer(unverified.iss);
      if (byIss) return byIss;
    }
    const domain = typeof unverified.sub === 'string' ? spiffeTrustDomain(unverified.sub) : null;
    return domain ? this.deps.issuers.findByIssuer(`spiffe://${domain}`) : null;
  }

  /**
   * Checks a token from `issuer` and maps it to an agent; throws WorkloadError otherwise. `audience`
   * is the one the token must name alone: the issuer's configured one for client authentication,
   * Errand's actor audience for an RFC 8693 actor_token.
   */
  async verify(token: string, issuer: TrustedIssuer, audience: string = issuer.audience): Promise<WorkloadIdentity> {
    const { clock, clockSkew, log } = this.deps;
    if (issuer.status !== 'active') throw new WorkloadError('the workload token issuer is disabled');
    const now = clock.now();
    let payload: JWTPayload;
    try {
      const source = await this.keySource(issuer);
      ({ payload } = await jwtVerify(
        token,
        this.deps.keys.resolverFor(source, {
          owner: 'the trusted issuer',
          ...(issuer.kind === 'spiffe' ? { selectKeys: jwtSvidKeys } : {}),
        }),
        {
          algorithms: [...ASSERTION_ALGS],
          requiredClaims: ['exp', 'sub'],
          clockTolerance: clockSkew,
          currentDate: new Date(now * 1000),
        },
      ));
    } catch (err) {
      log.info('workload.token_rejected', { issuerId: issuer.id, reason: err instanceof Error ? err.name : 'error' });
      if (err instanceof WorkloadError || err instanceof ClientKeyError) throw new WorkloadError(err.message);
      if (err instanceof joseErrors.JWTExpired) throw new WorkloadError('the workload token has expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed)
        throw new WorkloadError(`the workload token ${err.message}`);
      throw new WorkloadError(GENERIC);
    }
    const subject = payload.sub as string;
    if (payload.iss !== undefined && payload.iss !== issuer.issuer && !issuer.issuer.startsWith('spiffe://')) {
      throw new WorkloadError('the workload token iss is not the trusted issuer');
    }
    if (issuer.kind === 'spiffe') {
      // A JWT-SVID's subject is a SPIFFE ID, in the registered trust domain when one is named.
      const domain = spiffeTrustDomain(subject);
      if (!domain) throw new WorkloadError('the workload token sub is not a SPIFFE ID');
      if (issuer.issuer.startsWith('spiffe://') && `spiffe://${domain}` !== issuer.issuer) {
        throw new WorkloadError('the workload token sub is outside the trusted SPIFFE trust domain');
      }
    }
    // RFC 7523bis / SPIFFE client auth: the audience is the expected one, as the sole value.
    const aud = payload.aud;
    const audOk = aud === audience || (Array.isArray(aud) && aud.length === 1 && aud[0] === audience);
    if (!audOk) throw new WorkloadError(`the workload token aud must be ${audience} alone`);
    const exp = payload.exp as number;
    const iat = typeof payload.iat === 'number' ? payload.iat : null;
    if (iat !== null && iat > now + clockSkew) throw new WorkloadError('the workload token iat is in the future');
    if (exp - Math.min(iat ?? now, now) > issuer.maxLifetime) {
      throw new WorkloadError(`the workload token lifetime exceeds ${issuer.maxLifetime} seconds`);
    }
    const rule = matchWorkloadRule(issuer.rules, payload as Record<string, unknown>);
    if (!rule) {
      log.info('workload.no_rule', { issuerId: issuer.id });
      throw new WorkloadError('no rule matches the workload token');
    }
    // A workload token is a bearer credential: accepted once (its jti, or a hash of it when it has none).
    const jti =
      typeof payload.jti === 'string' && payload.jti.length > 0 && payload.jti.length <= 256
        ? payload.jti
        : `sha256:${createHash('sha256').update(token).digest('base64url')}`;
    if (!(await this.deps.remember(`wif:${issuer.id}`, jti, exp + clockSkew, now))) {
      throw new WorkloadError('the workload token has already been used');
    }
    return { issuer, rule, subject };
  }

  /** The issuer's registered keys, or (OIDC, Kubernetes, CI) the JWKS its metadata names. */
  private async keySource(issuer: TrustedIssuer): Promise<{ jwks: TrustedIssuer['jwks']; jwksUri: string | null }> {
    if (issuer.jwks || issuer.jwksUri) return { jwks: issuer.jwks, jwksUri: issuer.jwksUri };
    const now = this.deps.clock.now();
    const cached = this.discovered.get(issuer.issuer);
    if (cached && cached.until > now) return { jwks: null, jwksUri: cached.jwksUri };
    const url = `${issuer.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    let doc: z.infer<typeof DiscoverySchema>;
    try {
      const res = await safeFetch(url, {
        accept: 'application/json',
        timeoutMs: this.deps.fetch.timeoutMs,
        maxBytes: DISCOVERY_MAX_BYTES,
        allowPrivate: this.deps.fetch.allowPrivate,
      });
      const parsed = DiscoverySchema.safeParse(JSON.parse(res.body.toString('utf8')));
      if (!parsed.success) throw new WorkloadError('the trusted issuer metadata has no jwks_uri');
      doc = parsed.data;
    } catch (err) {
      if (err instanceof WorkloadError) throw err;
      const why = err instanceof SafeFetchError ? err.message : 'it is not valid JSON';
      throw new WorkloadError(`the trusted issuer metadata could not be fetched: ${why}`);
    }
    // OpenID Discovery §4.3: the metadata must name exactly the issuer it was fetched for.
    if (doc.issuer !== issuer.issuer) throw new WorkloadError('the trusted issuer metadata names another issuer');
    this.discovered.set(issuer.issuer, { jwksUri: doc.jwks_uri, until: now + this.deps.fetch.cacheTtl });
    return { jwks: null, jwksUri: doc.jwks_uri };
  }
}
