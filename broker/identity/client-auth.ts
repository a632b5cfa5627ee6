import {
  ASSERTION_ALGS,
  AUTH_METHOD,
  actorAudience,
  CLIENT_ASSERTION_TYPE,
  JWT_TYP,
  verifyJwtSignature,
} from '@errand/protocol';
import { decodeJwt, decodeProtectedHeader, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import { type AssuranceLevel, type Client, isConfidential } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import type { WorkloadClaims } from '../core/workload-claims.js';
import type { Logger } from '../log.js';
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
   * The assurance level of this authentication (README "Assurance levels"), derived here and never taken from a
   * claim the client chose: a workload token's matching rule (NHI-AAL2/3), a key or secret
   * registered by hand (NHI-AAL1), nothing for a public client.
   */
  assurance: AssuranceLevel | null;
  /** With workload identity federation: what the workload token attested (policies read it). */
  workload?: WorkloadClaims;
}

/** The credentials a request carries, before any of them is checked. */
export interface PresentedCredentials {
  form: Record<string, string | undefined>;
  authorization: string | undefined;
}

const GENERIC = 'client authentication failed';

/** What a signed JWT is presented as: the client's own authentication, or the actor of an exchange. */
type JwtUse = 'client_assertion' | 'actor_token';

/** `typ` values of a key-signed client assertion: RFC 7523bis's, or what RFC 7523 libraries send. */
const ASSERTION_TYPS: ReadonlySet<string> = new Set([JWT_TYP.clientAuthentication, 'jwt']);

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
   * Verifies an RFC 8693 `actor_token` (§2.1): a JWT the actor signed with its registered key, typed
   * `actor+jwt`, or a workload token from a trusted issuer whose only audience is
   * `actorAudience(issuer)`. Otherwise held to the client-assertion rules (audience, short life, one
   * use), but never interchangeable with one. A failure is the exchange's `invalid_request`
   * (RFC 8693 §2.2.2), not the caller's authentication failing.
   */
  async verifyActorToken(token: string): Promise<AuthenticatedClient> {
    try {
      return await this.verifySignedJwt(token, 'actor_token', { spiffe: false, bodyClientId: undefined });
    } catch (err) {
      if (err instanceof OAuthError) {
        const description = err.message.startsWith('actor_token') ? err.message : `actor_token: ${err.message}`;
        throw new OAuthError('invalid_request', description, { cause: err });
      }
      throw err;
    }
  }

  private async load(clientId: string, viaHeader = false): Promise<Client> {
    const client = await this.deps.directory.resolve(clientId);
    if (!client) throw fail(GENERIC, viaHeader);
    if (client.status !== 'active') throw fail(inactiveDescription(client), viaHeader);
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
    if (client.status !== 'active') throw fail(inactiveDescription(client), viaHeader);
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
    return this.verifySignedJwt(assertion, 'client_assertion', {
      spiffe: type === CLIENT_ASSERTION_TYPE.jwtSpiffe,
      bodyClientId: form.client_id,
    });
  }

  /**
   * The checks shared by client assertions and actor tokens. `use` names the parameter in every
   * description and decides the one rule that tells the two apart: the `typ` of a key-signed JWT, the
   * audience of a workload token.
   */
  private async verifySignedJwt(
    jwt: string,
    use: JwtUse,
    opts: { spiffe: boolean; bodyClientId: string | undefined },
  ): Promise<AuthenticatedClient> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: ReturnType<typeof decodeJwt>;
    try {
      header = decodeProtectedHeader(jwt);
      unverified = decodeJwt(jwt);
    } catch {
      throw fail(`${use} is not a well-formed JWT`);
    }
    if (!header.alg || !(ASSERTION_ALGS as readonly string[]).includes(header.alg)) {
      throw fail(`${use} alg must be one of ${ASSERTION_ALGS.join(', ')}`);
    }
    if (header.crit !== undefined) throw fail(`${use} must not carry critical header parameters`);
    const typ = mediaType(header.typ);
    // An actor token is handed to another party (the requester of the exchange), so it must never
    // pass as the actor's own client authentication, whoever signed it.
    if (use === 'client_assertion' && typ === JWT_TYP.actor) {
      throw fail(`a JWT of typ ${JWT_TYP.actor} is an actor_token and cannot authenticate a client`);
    }
    // A workload token: issued by a trusted platform about the workload (iss ≠ sub), or a JWT-SVID.
    if (opts.spiffe || unverified.iss !== unverified.sub) {
      return this.viaWorkloadToken(jwt, unverified, opts.bodyClientId, use);
    }
    if (use === 'actor_token' && typ !== JWT_TYP.actor) {
      throw fail(`actor_token typ must be ${JWT_TYP.actor}: a client assertion cannot stand for an actor`);
    }
    // RFC 7523bis: explicitly typed, or untyped (or JWT) as RFC 7523 client libraries send it.
    if (use === 'client_assertion' && typ !== null && !ASSERTION_TYPS.has(typ)) {
      throw fail(`client_assertion typ must be ${JWT_TYP.clientAuthentication}, JWT, or absent`);
    }
    // RFC 7523 §3: iss and sub are the client_id; client_id in the body, if sent, must agree.
    const clientId = unverified.sub;
    if (typeof clientId !== 'string' || unverified.iss !== clientId) {
      throw fail(`${use} iss and sub must both be the client_id`);
    }
    if (opts.bodyClientId !== undefined && opts.bodyClientId !== clientId) {
      throw fail(`client_id does not match the ${use} subject`);
    }
    const client = await this.load(clientId);
    if (client.authMethod !== AUTH_METHOD.privateKeyJwt) throw fail(GENERIC);

    const now = this.deps.clock.now();
    let payload: JWTPayload;
    // The common case (ES256/EdDSA, a known key) is checked on node:crypto; anything else by jose.
    const known = this.deps.keys.knownKey(client, header.kid, header.alg);
    if (known) {
      const verified = verifyJwtSignature(jwt, (kid, alg) =>
        kid === header.kid && alg === header.alg ? known : undefined,
      );
      const problem = verified ? claimsProblem(verified.payload, use, clientId, now, this.deps.clockSkew) : null;
      if (!verified || problem) {
        this.log.info('client.assertion_rejected', { clientId, use, reason: verified ? 'claims' : 'signature' });
        throw fail(problem ?? GENERIC);
      }
      payload = verified.payload;
    } else {
      payload = await this.verifyWithJose(jwt, use, client, now);
    }
    // RFC 7523bis §4: the audience is the issuer identifier, as the sole value, compared as strings.
    if (!isSoleAudience(payload.aud, this.deps.issuer)) throw fail(`${use} aud must be the issuer identifier alone`);
    const exp = payload.exp as number;
    const issuedAt = typeof payload.iat === 'number' ? payload.iat : now;
    if (exp - Math.min(issuedAt, now) > this.deps.assertionMaxLifetime) {
      throw fail(`${use} lifetime exceeds ${this.deps.assertionMaxLifetime} seconds`);
    }
    if (typeof payload.iat === 'number' && payload.iat > now + this.deps.clockSkew) {
      throw fail(`${use} iat is in the future`);
    }
    // RFC 7523 §3 item 7: a jti is accepted once, across every broker process (the database decides).
    const fresh = await this.deps.rememberAssertion(clientId, payload.jti as string, exp + this.deps.clockSkew, now);
    if (!fresh) throw fail(`${use} has already been used`);
    return { client, method: AUTH_METHOD.privateKeyJwt, assurance: 'NHI-AAL1' };
  }

  /** The general path: every allowed algorithm, keys from the registered set or `jwks_uri`. */
  private async verifyWithJose(jwt: string, use: JwtUse, client: Client, now: number): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(jwt, this.deps.keys.resolverFor(client), {
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
        use,
        reason: err instanceof Error ? err.name : 'error',
      });
      if (err instanceof ClientKeyError) throw fail(err.message, false, err);
      if (err instanceof joseErrors.JWTExpired) throw fail(`${use} has expired`, false, err);
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw fail(`${use} ${err.message}`, false, err);
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
    use: JwtUse,
  ): Promise<AuthenticatedClient> {
    const { workload } = this.deps;
    const issuer = workload ? await workload.findIssuer(unverified) : null;
    if (!workload || !issuer) {
      throw fail(`${use} issuer is not a trusted workload issuer (a key-signed ${use} has iss = sub = client_id)`);
    }
    // The platform chooses a workload token's typ, so its audience keeps the two uses apart: the
    // actor audience for an actor_token and never for a client assertion. A token handed to another
    // agent to prove an actor can then not authenticate as that actor.
    const forActor = actorAudience(this.deps.issuer);
    if (use === 'client_assertion' && isSoleAudience(unverified.aud, forActor)) {
      throw fail(`a workload token for ${forActor} is an actor_token and cannot authenticate a client`);
    }
    let identity: Awaited<ReturnType<typeof workload.verify>>;
    try {
      identity = await workload.verify(token, issuer, use === 'actor_token' ? forActor : issuer.audience);
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
      workload: identity.claims,
    };
  }
}

/**
 * The claim rules jose applies to an assertion (issuer and subject = the client, `exp` and `jti`
 * required, `nbf`/`iat` numeric, the clock skew allowed), for assertions verified on node:crypto.
 */
function claimsProblem(p: JWTPayload, use: JwtUse, clientId: string, now: number, skew: number): string | null {
  for (const name of ['exp', 'jti'] as const) {
    if (p[name] === undefined) return `${use} missing required "${name}" claim`;
  }
  if (p.iss !== clientId) return `${use} unexpected "iss" claim value`;
  if (p.sub !== clientId) return `${use} unexpected "sub" claim value`;
  for (const name of ['exp', 'nbf', 'iat'] as const) {
    if (p[name] !== undefined && (typeof p[name] !== 'number' || !Number.isFinite(p[name])))
      return `${use} "${name}" claim must be a number`;
  }
  if ((p.exp as number) <= now - skew) return `${use} has expired`;
  if (p.nbf !== undefined && p.nbf > now + skew) return `${use} "nbf" claim timestamp check failed`;
  return null;
}

/**
 * Why a client that is not active cannot authenticate. A self-registered agent waits for an
 * administrator; it is refused before its keys are used (its `jwks_uri` is not fetched until then).
 */
function inactiveDescription(client: Pick<Client, 'status'>): string {
  return client.status === 'pending' ? 'the client is awaiting approval' : 'the client is disabled';
}

/** `aud` names `audience` as its only value (RFC 7523bis §4), compared as strings. */
function isSoleAudience(aud: unknown, audience: string): boolean {
  return aud === audience || (Array.isArray(aud) && aud.length === 1 && aud[0] === audience);
}

/**
 * A `typ` header as a lowercase media type, `application/` dropped (RFC 7515 §4.1.9); null when
 * absent, '' when it is not a string (never an accepted value).
 */
function mediaType(typ: unknown): string | null {
  if (typ === undefined) return null;
  if (typeof typ !== 'string') return '';
  const t = typ.toLowerCase();
  return t.startsWith('application/') ? t.slice('application/'.length) : t;
}
