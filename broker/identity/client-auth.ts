import { decodeJwt, decodeProtectedHeader, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import { type AssuranceLevel, type Client, isConfidential } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { ASSERTION_ALGS, AUTH_METHOD, CLIENT_ASSERTION_TYPE } from '../core/protocol.js';
import type { Logger } from '../log.js';
import { verifyJwtSignature } from '../tokens/jws.js';
import { hashSecret, safeEqual } from '../tokens/random.js';
import type { ClientDirectory } from './client-directory.js';
import { ClientKeyError, type ClientKeys } from './client-keys.js';
import { WorkloadError, type WorkloadVerifier } from './workload.js';

export interface ClientAuthDeps {
  directory: ClientDirectory;
  keys: ClientKeys;
  clock: Clock;
  issuer: string;
  assertionMaxLifetime: number;
  clockSkew: number;
  rememberAssertion(clientId: string, jti: string, expiresAt: number, now: number): Promise<boolean>;
  /** Workload identity federation (trusted issuers); absent: workload tokens are refused. */
  workload?: WorkloadVerifier;
  /** Records the level a workload agent authenticated at (shown in the inventory). */
  recordAssurance?(clientId: string, level: AssuranceLevel, trustedIssuerId: string): Promise<void>;
}

export interface AuthenticatedClient {
  client: Client;
  method: Client['authMethod'];
  /**
   * The assurance level of this authentication (SPECS §8), derived here and never taken from a
   * claim the client chose: a workload token's matching rule (NHI-AAL2/3), a key or secret
   * registered by hand (NHI-AAL1), nothing for a public client.
   */
  assurance: AssuranceLevel | null;
}

/** The credentials a request carries, before any of them is checked. */
export interface PresentedCredentials {
  form: Record<string, string | undefined>;
  authorization: string | undefined;
}

const GENERIC = 'client authentication failed';

function fail(description: string, viaHeader = false, cause?: unknown): OAuthError {
  // RFC 6749 §5.2: a 401 with WWW-Authenticate when the client used the Authorization header.
  return new OAuthError('invalid_client', description, {
    ...(viaHeader ? { headers: { 'WWW-Authenticate': 'Basic realm="errand"' } } : {}),
    cause,
  });
}

function parseBasic(header: string): { id: string; secret: string } | null {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header.trim());
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  try {
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    return {
      id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')),
      secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')),
    };
  } catch {
    return null;
  }
}

/**
 * Authenticates the client of a token, revocation or introspection request: `private_key_jwt`
 * (RFC 7523, audience per 7523bis), `client_secret_basic`/`_post` where an administrator enabled a
 * secret, or `none` for public clients. Exactly one method per request (RFC 6749 §2.3).
 */
export class ClientAuthenticator {
  constructor(
    private readonly deps: ClientAuthDeps,
    private readonly log: Logger,
  ) {}

  async authenticate(creds: PresentedCredentials): Promise<AuthenticatedClient> {
    const { form, authorization } = creds;
    const basic = authorization?.toLowerCase().startsWith('basic ') ? parseBasic(authorization) : null;
    if (authorization?.toLowerCase().startsWith('basic ') && !basic) {
      throw fail('the Authorization header is not valid Basic credentials', true);
    }
    const methods = [basic, form.client_secret, form.client_assertion].filter((m) => m !== undefined && m !== null);
    if (methods.length > 1) {
      throw new OAuthError('invalid_request', 'use exactly one client authentication method per request');
    }
    if (form.client_assertion !== undefined || form.client_assertion_type !== undefined) {
      return this.viaAssertion(form);
    }
    if (basic) return this.viaSecret(basic.id, basic.secret, AUTH_METHOD.clientSecretBasic, form.client_id, true);
    if (form.client_secret !== undefined) {
      if (!form.client_id) throw new OAuthError('invalid_request', 'client_id is required with client_secret');
      return this.viaSecret(form.client_id, form.client_secret, AUTH_METHOD.clientSecretPost, undefined, false);
    }
    if (!form.client_id) throw fail('client authentication is required');
    return this.asPublic(form.client_id);
  }

  /**
   * Verifies an RFC 8693 `actor_token`: a JWT the actor signed with its registered key, held to the
   * same rules as a client assertion (audience = the issuer, short life, one use). A failure is the
   * exchange's `invalid_request` (RFC 8693 §2.2.2), not the caller's authentication failing.
   */
  async verifyActorToken(token: string): Promise<AuthenticatedClient> {
    try {
      return await this.viaAssertion({
        client_assertion_type: CLIENT_ASSERTION_TYPE.jwtBearer,
        client_assertion: token,
      });
    } catch (err) {
      if (err instanceof OAuthError)
        throw new OAuthError('invalid_request', `actor_token: ${err.message}`, { cause: err });
      throw err;
    }
  }

  private async load(clientId: string, viaHeader = false): Promise<Client> {
    const client = await this.deps.directory.resolve(clientId);
    if (!client) throw fail(GENERIC, viaHeader);
    if (client.status !== 'active') throw fail('the client is disabled', viaHeader);
    return client;
  }

  private async asPublic(clientId: string): Promise<AuthenticatedClient> {
    const client = await this.load(clientId);
    if (isConfidential(client)) throw fail('this client must authenticate');
    return { client, method: AUTH_METHOD.none, assurance: null };
  }

  private async viaSecret(
    clientId: string,
    secret: string,
    method: typeof AUTH_METHOD.clientSecretBasic | typeof AUTH_METHOD.clientSecretPost,
    bodyClientId: string | undefined,
    viaHeader: boolean,
  ): Promise<AuthenticatedClient> {
    if (bodyClientId !== undefined && bodyClientId !== clientId) {
      throw new OAuthError('invalid_request', 'client_id in the body differs from the authenticated client');
    }
    const client = await this.deps.directory.resolve(clientId).catch(() => null);
    // Hash and compare even for unknown clients so timing does not reveal which ids exist.
    const ok = safeEqual(hashSecret(secret), client?.secretHash ?? hashSecret(`unknown:${secret}`));
    if (!client || !ok || client.authMethod !== method) throw fail(GENERIC, viaHeader);
    if (client.status !== 'active') throw fail('the client is disabled', viaHeader);
    return { client, method, assurance: 'NHI-AAL1' };
  }

  private async viaAssertion(form: Record<string, string | undefined>): Promise<AuthenticatedClient> {
    const { client_assertion: assertion, client_assertion_type: type } = form;
    if (type !== CLIENT_ASSERTION_TYPE.jwtBearer && type !== CLIENT_ASSERTION_TYPE.jwtSpiffe) {
      throw new OAuthError(
        'invalid_request',
        `client_assertion_type must be ${CLIENT_ASSERTION_TYPE.jwtBearer} or ${CLIENT_ASSERTION_TYPE.jwtSpiffe}`,
      );
    }
    if (!assertion) throw new OAuthError('invalid_request', 'client_assertion is required with client_assertion_type');

    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: ReturnType<typeof decodeJwt>;
    try {
      header = decodeProtectedHeader(assertion);
      unverified = decodeJwt(assertion);
    } catch {
      throw fail('client_assertion is not a well-formed JWT');
    }
    if (!header.alg || !(ASSERTION_ALGS as readonly string[]).includes(header.alg)) {
      throw fail(`client_assertion alg must be one of ${ASSERTION_ALGS.join(', ')}`);
    }
    if (header.crit !== undefined) throw fail('client_assertion must not carry critical header parameters');
    // A workload token: issued by a trusted platform about the workload (iss ≠ sub), or a JWT-SVID.
    if (type === CLIENT_ASSERTION_TYPE.jwtSpiffe || unverified.iss !== unverified.sub) {
      return this.viaWorkloadToken(assertion, unverified, form.client_id);
    }
    // RFC 7523 §3: iss and sub are the client_id; client_id in the body, if sent, must agree.
    const clientId = unverified.sub;
    if (typeof clientId !== 'string' || unverified.iss !== clientId) {
      throw fail('client_assertion iss and sub must both be the client_id');
    }
    if (form.client_id !== undefined && form.client_id !== clientId) {
      throw fail('client_id does not match the client_assertion subject');
    }
    const client = await this.load(clientId);
    if (client.authMethod !== AUTH_METHOD.privateKeyJwt) throw fail(GENERIC);

    const now = this.deps.clock.now();
    let payload: JWTPayload;
    // The common case (ES256/EdDSA, a known key) is checked on node:crypto; anything else by jose.
    const known = this.deps.keys.knownKey(client, header.kid, header.alg);
    if (known) {
      const verified = verifyJwtSignature(assertion, (kid, alg) =>
        kid === header.kid && alg === header.alg ? known : undefined,
      );
      const problem = verified ? assertionClaimsProblem(verified.payload, clientId, now, this.deps.clockSkew) : null;
      if (!verified || problem) {
        this.log.info('client.assertion_rejected', { clientId, reason: verified ? 'claims' : 'signature' });
        throw fail(problem ?? GENERIC);
      }
      payload = verified.payload;
    } else {
      payload = await this.verifyWithJose(assertion, client, now);
    }
    // RFC 7523bis §4: the audience is the issuer identifier, as the sole value, compared as strings.
    const aud = payload.aud;
    const audOk = aud === this.deps.issuer || (Array.isArray(aud) && aud.length === 1 && aud[0] === this.deps.issuer);
    if (!audOk) throw fail('client_assertion aud must be the issuer identifier alone');
    const exp = payload.exp as number;
    const issuedAt = typeof payload.iat === 'number' ? payload.iat : now;
    if (exp - Math.min(issuedAt, now) > this.deps.assertionMaxLifetime) {
      throw fail(`client_assertion lifetime exceeds ${this.deps.assertionMaxLifetime} seconds`);
    }
    if (typeof payload.iat === 'number' && payload.iat > now + this.deps.clockSkew) {
      throw fail('client_assertion iat is in the future');
    }
    // RFC 7523 §3 item 7: a jti is accepted once, across every broker process (the database decides).
    const fresh = await this.deps.rememberAssertion(clientId, payload.jti as string, exp + this.deps.clockSkew, now);
    if (!fresh) throw fail('client_assertion has already been used');
    return { client, method: AUTH_METHOD.privateKeyJwt, assurance: 'NHI-AAL1' };
  }

  /** The general path: every allowed algorithm, keys from the registered set or `jwks_uri`. */
  private async verifyWithJose(assertion: string, client: Client, now: number): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(assertion, this.deps.keys.resolverFor(client), {
        algorithms: [...ASSERTION_ALGS],
        issuer: client.id,
        subject: client.id,
        requiredClaims: ['exp', 'jti'],
        clockTolerance: this.deps.clockSkew,
        currentDate: new Date(now * 1000),
      });
      return payload;
    } catch (err) {
      this.log.info('client.assertion_rejected', {
        clientId: client.id,
        reason: err instanceof Error ? err.name : 'error',
      });
      if (err instanceof ClientKeyError) throw fail(err.message, false, err);
      if (err instanceof joseErrors.JWTExpired) throw fail('client_assertion has expired', false, err);
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw fail(`client_assertion ${err.message}`, false, err);
      throw fail(GENERIC, false, err);
    }
  }

  /**
   * Workload identity federation (RFC 7523 client authentication with a token from a trusted
   * issuer; draft-ietf-oauth-spiffe-client-auth for JWT-SVIDs). The issuer's rule names the agent
   * and its assurance level; the agent has no secret or key at Errand.
   */
  private async viaWorkloadToken(
    token: string,
    unverified: ReturnType<typeof decodeJwt>,
    bodyClientId: string | undefined,
  ): Promise<AuthenticatedClient> {
    const { workload } = this.deps;
    const issuer = workload ? await workload.findIssuer(unverified) : null;
    if (!workload || !issuer) {
      throw fail(
        'client_assertion issuer is not a trusted workload issuer (a private_key_jwt assertion has iss = sub = client_id)',
      );
    }
    let identity: Awaited<ReturnType<typeof workload.verify>>;
    try {
      identity = await workload.verify(token, issuer);
    } catch (err) {
      if (err instanceof WorkloadError) throw fail(err.message, false, err);
      throw err;
    }
    const { rule } = identity;
    if (bodyClientId !== undefined && bodyClientId !== rule.agentId) {
      throw fail('client_id does not match the agent the workload token maps to');
    }
    const client = await this.load(rule.agentId);
    // The rule may only name an agent registered for federation (never one with a key or a secret).
    if (client.kind !== 'agent' || client.authMethod !== AUTH_METHOD.workloadFederation) {
      this.log.info('workload.agent_mismatch', { issuerId: issuer.id, clientId: client.id });
      throw fail(GENERIC);
    }
    if (client.recordedAssurance !== rule.assurance || client.trustedIssuerId !== issuer.id) {
      await this.deps.recordAssurance?.(client.id, rule.assurance, issuer.id);
    }
    this.log.info('workload.authenticated', { clientId: client.id, issuerId: issuer.id, assurance: rule.assurance });
    return {
      client: { ...client, recordedAssurance: rule.assurance, trustedIssuerId: issuer.id },
      method: AUTH_METHOD.workloadFederation,
      assurance: rule.assurance,
    };
  }
}

/**
 * The claim rules jose applies to an assertion (issuer and subject = the client, `exp` and `jti`
 * required, `nbf`/`iat` numeric, the clock skew allowed), for assertions verified on node:crypto.
 */
function assertionClaimsProblem(p: JWTPayload, clientId: string, now: number, skew: number): string | null {
  for (const name of ['exp', 'jti'] as const) {
    if (p[name] === undefined) return `client_assertion missing required "${name}" claim`;
  }
  if (p.iss !== clientId) return 'client_assertion unexpected "iss" claim value';
  if (p.sub !== clientId) return 'client_assertion unexpected "sub" claim value';
  for (const name of ['exp', 'nbf', 'iat'] as const) {
    if (p[name] !== undefined && (typeof p[name] !== 'number' || !Number.isFinite(p[name])))
      return `client_assertion "${name}" claim must be a number`;
  }
  if ((p.exp as number) <= now - skew) return 'client_assertion has expired';
  if (p.nbf !== undefined && p.nbf > now + skew) return 'client_assertion "nbf" claim timestamp check failed';
  return null;
}
