import { createHash } from 'node:crypto';
import { ASSERTION_ALGS } from '@errand/protocol';
import { decodeProtectedHeader, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import { z } from 'zod';
import type { TrustedIssuerStore } from '../../db/stores/trusted-issuer-store.js';
import type { Metrics } from '../core/metrics.js';
import type { Clock } from '../core/ports.js';
import { matchWorkloadRule, spiffeTrustDomain, type TrustedIssuer, type WorkloadRule } from '../core/trusted-issuer.js';
import { type WorkloadClaims, workloadClaimsOf } from '../core/workload-claims.js';
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
  /** Counts the issuer metadata fetches (`trusted_issuer`) when given. */
  metrics?: Metrics;
}

/** A workload token that passed every check, and what its matching rule maps it to. */
export interface WorkloadIdentity {
  issuer: TrustedIssuer;
  rule: WorkloadRule;
  subject: string;
  /** What the token attested about the workload (namespace, service account, image, repository). */
  claims: WorkloadClaims;
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
 * RFC 7515 §2 and §7.1: each part of the compact serialization is unpadded base64url. Decoders also
 * take padding and unused low bits set (RFC 4648 §3.5), so one signature has many spellings; only
 * the one canonical spelling of each part is accepted.
 */
function isCanonicalCompactJws(token: string): boolean {
  const parts = token.split('.');
  return (
    parts.length === 3 &&
    parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p) && Buffer.from(p, 'base64url').toString('base64url') === p)
  );
}

/** JWT-SVID §2: a header holds `alg`, `kid` and `typ` (`JWT` or `JOSE`) and nothing else. */
function svidHeaderProblem(token: string): string | null {
  const header = decodeProtectedHeader(token) as Record<string, unknown>;
  const extra = Object.keys(header).find((k) => k !== 'alg' && k !== 'kid' && k !== 'typ');
  if (extra) return `must not carry "${extra.slice(0, 32)}" (JWT-SVID allows alg, kid and typ)`;
  if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') return 'typ must be JWT or JOSE';
  return null;
}

/**
 * The one-time-use key of a token without `jti`: a hash of its signing input (protected header and
 * payload, RFC 7515 §5.2), never of the signature. The signature cannot be made again for other
 * content, but the same content can carry other valid signatures (ECDSA `(r, n − s)`, or a second
 * signature by the issuer), and each of them must count as the same token.
 */
function signedContentId(token: string): string {
  const signingInput = token.slice(0, token.lastIndexOf('.'));
  return `sha256:${createHash('sha256').update(signingInput).digest('base64url')}`;
}

/**
 * Verifies workload identity tokens from trusted issuers (RFC 7523 §3, JWT-SVID): an OpenID issuer's
 * token, a SPIFFE JWT-SVID, a Kubernetes service-account token, a CI provider's OIDC token. Strict:
 * registered and active issuer, signature with the issuer's keys only, `aud` = the configured
 * audience alone, `exp`, a lifetime within the issuer's maximum, `iat` not in the future, one use,
 * and a rule that maps the claims to an agent.
 */
export class WorkloadVerifier {
  private readonly discovered = new Map<string, { jwksUri: string; until: number }>();

  constructor(private readonly deps: WorkloadDeps) {}

  /**
   * The registered issuer a token names: by its `iss`, or, for a JWT-SVID without `iss` (JWT-SVID §3
   * defines none), by the SPIFFE trust domain of its `sub`. A token that names an issuer is never
   * attributed to another one. Null when none is registered.
   */
  async findIssuer(unverified: JWTPayload): Promise<TrustedIssuer | null> {
    if (unverified.iss !== undefined) {
      const iss = unverified.iss;
      return typeof iss === 'string' && iss.length <= 2048 ? this.deps.issuers.findByIssuer(iss) : null;
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
      if (!isCanonicalCompactJws(token)) throw new WorkloadError(GENERIC);
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
    // RFC 7523 §3 item 1: `iss` names the issuer. Only a SPIFFE trust domain registered as
    // `spiffe://<domain>` takes tokens without one; a token that has one must name this issuer.
    const issOk = issuer.issuer.startsWith('spiffe://')
      ? payload.iss === undefined || payload.iss === issuer.issuer
      : payload.iss === issuer.issuer;
    if (!issOk) throw new WorkloadError('the workload token iss is not the trusted issuer');
    if (issuer.kind === 'spiffe') {
      const problem = svidHeaderProblem(token);
      if (problem) throw new WorkloadError(`the workload token header ${problem}`);
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
    // A workload token is a bearer credential: accepted once (its jti, or what it signs when it has none).
    const jti =
      typeof payload.jti === 'string' && payload.jti.length > 0 && payload.jti.length <= 256
        ? payload.jti
        : signedContentId(token);
    if (!(await this.deps.remember(`wif:${issuer.id}`, jti, exp + clockSkew, now))) {
      throw new WorkloadError('the workload token has already been used');
    }
    return {
      issuer,
      rule,
      subject,
      claims: workloadClaimsOf(issuer.issuer, subject, payload as Record<string, unknown>),
    };
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
        ...(this.deps.metrics ? { observe: { kind: 'trusted_issuer', metrics: this.deps.metrics } } : {}),
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
