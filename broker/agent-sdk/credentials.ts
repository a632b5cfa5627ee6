import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { CLIENT_ASSERTION_TYPE, JWT_TYP } from '../core/protocol.js';
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
}

/**
 * A workload identity token from a trusted platform (a SPIFFE JWT-SVID, a Kubernetes service-account
 * token, a CI provider's OIDC token), requested with Errand's issuer as its audience. `fetchToken` is
 * called for every request and must return a fresh token: Errand accepts each one once.
 *
 * @example
 * const credential = workloadIdentity(() => spire.fetchJwtSvid({ audience: 'https://errand.example' }));
 */
export function workloadIdentity(fetchToken: () => Promise<string>, opts: { spiffe?: boolean } = {}): AgentCredential {
  return {
    async authenticate() {
      return {
        // draft-ietf-oauth-spiffe-client-auth names a JWT-SVID's type; any other token is RFC 7523's.
        client_assertion_type: opts.spiffe ? CLIENT_ASSERTION_TYPE.jwtSpiffe : CLIENT_ASSERTION_TYPE.jwtBearer,
        client_assertion: await fetchToken(),
      };
    },
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
 * agent's current key, one per request.
 */
export function privateKeyJwt(opts: { clientId: string; keys: AgentKeys; lifetime?: number }): AgentCredential {
  return {
    async authenticate(audience, now) {
      const assertion = await opts.keys.sign(
        {
          iss: opts.clientId,
          sub: opts.clientId,
          aud: audience,
          jti: randomId(),
          iat: now,
          exp: now + (opts.lifetime ?? 60),
        },
        JWT_TYP.clientAuthentication,
      );
      return {
        client_assertion_type: CLIENT_ASSERTION_TYPE.jwtBearer,
        client_assertion: assertion,
        client_id: opts.clientId,
      };
    },
  };
}
