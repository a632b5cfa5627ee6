import { actorAudience, CLIENT_ASSERTION_TYPE, JWT_TYP } from '@errand/protocol';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { randomId } from './util.js';

/** Client authentication parameters for one request at Errand (RFC 7523 §2.2). */
export interface ClientAuthParams {
  client_assertion_type: string;
  client_assertion: string;
  client_id?: string;
}

/** How an agent proves who it is at Errand; called once per request (assertions are single-use). */
export interface AgentCredential {
  /** Parameters for one request; `audience` is Errand's issuer identifier, `now` epoch seconds. */
  authenticate(audience: string, now: number): Promise<ClientAuthParams>;
  /**
   * A single-use RFC 8693 `actor_token` proving this agent, for another agent to present when it
   * exchanges a token with this agent as the actor. Errand never accepts it as this agent's client
   * authentication, so handing it over does not let the other agent act as this one.
   */
  actorToken?(issuer: string, now: number): Promise<string>;
}

/**
 * A workload identity token from a trusted platform (a SPIFFE JWT-SVID, a Kubernetes service-account
 * token, a CI provider's OIDC token). `fetchToken(audience)` is called for every request and must
 * return a fresh token for that audience (Errand accepts each one once): Errand's issuer to
 * authenticate, `actorAudience(issuer)` for an actor token.
 *
 * @example
 * const credential = workloadIdentity((audience) => spire.fetchJwtSvid({ audience }));
 */
export function workloadIdentity(
  fetchToken: (audience: string) => Promise<string>,
  opts: { spiffe?: boolean } = {},
): AgentCredential {
  return {
    async authenticate(audience) {
      return {
        // draft-ietf-oauth-spiffe-client-auth names a JWT-SVID's type; any other token is RFC 7523's.
        client_assertion_type: opts.spiffe ? CLIENT_ASSERTION_TYPE.jwtSpiffe : CLIENT_ASSERTION_TYPE.jwtBearer,
        client_assertion: await fetchToken(audience),
      };
    },
    // The platform chooses the token's typ; the audience is what makes it an actor token only.
    actorToken: (issuer) => fetchToken(actorAudience(issuer)),
  };
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/**
 * The agent's own signing keys for `private_key_jwt`, in memory only, rotated as often as you like.
 * Serve `jwks()` at the `jwks_uri` registered at Errand: Errand refetches it when an assertion names
 * a `kid` it has not seen, and never accepts a key from anywhere else.
 */
export class AgentKeys {
  private keys: SigningKey[] = [];

  private constructor(private readonly keep: number) {}

  /** A key set with one fresh key; `keep` keys stay published after a rotation (default 2). */
  static async create(opts: { keep?: number } = {}): Promise<AgentKeys> {
    const set = new AgentKeys(Math.max(1, opts.keep ?? 2));
    await set.rotate();
    return set;
  }

  /** Makes a new key the signing key; the oldest beyond `keep` is forgotten. */
  async rotate(): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: false });
    const kid = randomId();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    this.keys = [{ kid, privateKey, publicJwk }, ...this.keys].slice(0, this.keep);
    return kid;
  }

  /** The public keys to publish at the agent's `jwks_uri`. */
  jwks(): { keys: JWK[] } {
    return { keys: this.keys.map((k) => k.publicJwk) };
  }

  /** The current signing key's id. */
  get kid(): string {
    return this.keys[0]!.kid;
  }

  /** Signs a JWT with the current key. */
  async sign(claims: Record<string, unknown>, typ: string): Promise<string> {
    const key = this.keys[0]!;
    return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: key.kid, typ }).sign(key.privateKey);
  }
}

/**
 * `private_key_jwt` (RFC 7523, audience per 7523bis): a short-lived assertion signed with the
 * agent's current key, one per request. Its actor tokens carry the same claims, typed `actor+jwt`.
 */
export function privateKeyJwt(opts: { clientId: string; keys: AgentKeys; lifetime?: number }): AgentCredential {
  const signed = (audience: string, now: number, typ: string) =>
    opts.keys.sign(
      {
        iss: opts.clientId,
        sub: opts.clientId,
        aud: audience,
        jti: randomId(),
        iat: now,
        exp: now + (opts.lifetime ?? 60),
      },
      typ,
    );
  return {
    async authenticate(audience, now) {
      return {
        client_assertion_type: CLIENT_ASSERTION_TYPE.jwtBearer,
        client_assertion: await signed(audience, now, JWT_TYP.clientAuthentication),
        client_id: opts.clientId,
      };
    },
    actorToken: (issuer, now) => signed(issuer, now, JWT_TYP.actor),
  };
}
