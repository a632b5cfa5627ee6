/**
 * Sign-in federated to an upstream human identity provider: Errand as an OpenID Connect relying
 * party (authorization code flow with PKCE S256, state and nonce), built on oauth4webapi.
 *
 * The PKCE verifier, state and nonce of a sign-in in progress live in a short-lived cookie sealed
 * with the broker's CryptoBox, so nothing is stored server-side and a tampered cookie fails to open.
 * Upstream identities are identified by `iss` + `sub` only; email addresses are never used to link
 * accounts (an upstream that lets users choose their email would otherwise allow account takeover).
 */
import * as oauth from 'oauth4webapi';
import type { Clock } from '../core/ports.js';
import type { CryptoBox } from '../tokens/crypto-box.js';

export interface UpstreamOidcOptions {
  /** The provider's issuer identifier; discovery must return exactly this value. */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Space-separated scopes, including `openid`. */
  scopes: string;
  /** Errand's own callback, `<issuer>/signin/oidc/callback`. */
  redirectUri: string;
  box: CryptoBox;
  clock: Clock;
  /** Budget for each request to the provider. */
  timeoutMs: number;
  /** How long discovered metadata is reused (seconds). */
  discoveryTtl?: number;
  /** The claim holding the person's groups (ERRAND_OIDC_GROUPS_CLAIM); its value is passed on as sent. */
  groupsClaim?: string;
}

/** What Errand learns about the person from the provider. */
export interface UpstreamIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  preferredUsername: string | null;
  name: string | null;
  /** The groups claim's value as sent (ID token, else UserInfo when it was read); undefined when absent. */
  groups?: unknown;
}

export type SignInFailure =
  | 'unreachable'
  | 'expired'
  | 'state_mismatch'
  | 'provider_error'
  | 'invalid_response'
  | 'misconfigured';

/** A failed federated sign-in; the message is written for the person signing in and holds no secrets. */
export class UpstreamSignInError extends Error {
  readonly reason: SignInFailure;
  readonly status: 400 | 403 | 502;
  constructor(reason: SignInFailure, message: string, status: 400 | 403 | 502, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamSignInError';
    this.reason = reason;
    this.status = status;
  }
}

/** How long a started sign-in may take before the callback is refused (seconds). */
export const SIGNIN_COOKIE_TTL = 600;
const COOKIE_AAD = 'errand-oidc-signin:v1';
const DEFAULT_DISCOVERY_TTL = 3600;
const MAX_NEXT_LENGTH = 1024;

interface PendingSignIn {
  verifier: string;
  state: string;
  nonce: string;
  next: string;
  exp: number;
}

function isPending(v: unknown): v is PendingSignIn {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.verifier === 'string' &&
    typeof o.state === 'string' &&
    typeof o.nonce === 'string' &&
    typeof o.next === 'string' &&
    typeof o.exp === 'number'
  );
}

const stringClaim = (v: unknown): string | null => (typeof v === 'string' && v.trim() !== '' ? v.trim() : null);

export class UpstreamOidc {
  readonly #opts: UpstreamOidcOptions;
  readonly #client: oauth.Client;
  readonly #insecure: boolean;
  #metadata: { as: oauth.AuthorizationServer; until: number } | null = null;

  constructor(opts: UpstreamOidcOptions) {
    this.#opts = opts;
    this.#client = { client_id: opts.clientId };
    // The configuration accepts plain http only for loopback providers (development).
    this.#insecure = opts.issuer.startsWith('http://');
  }

  #http(): { signal: AbortSignal; [oauth.allowInsecureRequests]?: boolean } {
    return {
      signal: AbortSignal.timeout(this.#opts.timeoutMs),
      ...(this.#insecure ? { [oauth.allowInsecureRequests]: true } : {}),
    };
  }

  /** The provider's metadata, discovered once and cached; its `issuer` must match the configured one exactly. */
  async metadata(): Promise<oauth.AuthorizationServer> {
    const now = this.#opts.clock.now();
    if (this.#metadata && this.#metadata.until > now) return this.#metadata.as;
    const issuer = new URL(this.#opts.issuer);
    let as: oauth.AuthorizationServer;
    try {
      as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, this.#http()));
    } catch (err) {
      if (err instanceof oauth.OperationProcessingError) {
        throw new UpstreamSignInError(
          'misconfigured',
          'The single sign-on provider published settings that do not match its configured issuer. Ask an administrator to check the configuration.',
          502,
          { cause: err },
        );
      }
      throw new UpstreamSignInError(
        'unreachable',
        'The single sign-on provider could not be reached. Please try again later.',
        502,
        { cause: err },
      );
    }
    if (!as.authorization_endpoint || !as.token_endpoint) {
      throw new UpstreamSignInError(
        'misconfigured',
        'The single sign-on provider does not publish an authorization and a token endpoint.',
        502,
      );
    }
    this.#metadata = { as, until: now + (this.#opts.discoveryTtl ?? DEFAULT_DISCOVERY_TTL) };
    return as;
  }

  /**
   * Starts a sign-in: returns the provider's authorization URL to redirect to and the sealed value
   * for the short-lived cookie that must come back with the callback.
   */
  async startSignIn(next: string): Promise<{ url: string; cookie: string }> {
    const as = await this.metadata();
    const verifier = oauth.generateRandomCodeVerifier();
    const pending: PendingSignIn = {
      verifier,
      state: oauth.generateRandomState(),
      nonce: oauth.generateRandomNonce(),
      next: next.length > MAX_NEXT_LENGTH ? '/admin' : next,
      exp: this.#opts.clock.now() + SIGNIN_COOKIE_TTL,
    };
    const url = new URL(as.authorization_endpoint!);
    url.searchParams.set('client_id', this.#opts.clientId);
    url.searchParams.set('redirect_uri', this.#opts.redirectUri);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('scope', this.#opts.scopes);
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
    url.searchParams.set('code_challenge_method', 'S256');
    url.searchParams.set('state', pending.state);
    url.searchParams.set('nonce', pending.nonce);
    const cookie = this.#opts.box.seal(Buffer.from(JSON.stringify(pending)), COOKIE_AAD);
    return { url: url.toString(), cookie };
  }

  /** Opens the sign-in cookie; null when it is missing, tampered with or too old. */
  #openCookie(cookie: string | undefined): PendingSignIn | null {
    if (!cookie || cookie.length > 4096) return null;
    try {
      const pending: unknown = JSON.parse(this.#opts.box.open(cookie, COOKIE_AAD).toString('utf8'));
      if (!isPending(pending) || pending.exp <= this.#opts.clock.now()) return null;
      return pending;
    } catch {
      return null;
    }
  }

  /** Completes a sign-in from the provider's redirect back to Errand and the cookie set by `startSignIn`. */
  async finishSignIn(
    callbackUrl: URL,
    cookie: string | undefined,
  ): Promise<{ identity: UpstreamIdentity; next: string }> {
    const pending = this.#openCookie(cookie);
    if (!pending) {
      throw new UpstreamSignInError(
        'expired',
        'This sign-in took too long or was started in another browser. Please start again.',
        400,
      );
    }
    const as = await this.metadata();

    let params: URLSearchParams;
    try {
      params = oauth.validateAuthResponse(as, this.#client, callbackUrl.searchParams, pending.state);
    } catch (err) {
      if (err instanceof oauth.AuthorizationResponseError) {
        const denied = err.error === 'access_denied';
        throw new UpstreamSignInError(
          'provider_error',
          denied
            ? 'The sign-in was cancelled at the single sign-on provider.'
            : `The single sign-on provider did not complete the sign-in (${err.error.slice(0, 64)}).`,
          denied ? 403 : 502,
          { cause: err },
        );
      }
      throw new UpstreamSignInError(
        'state_mismatch',
        'The answer from the single sign-on provider does not belong to this sign-in. Please start again.',
        400,
        { cause: err },
      );
    }

    const clientAuth = (as.token_endpoint_auth_methods_supported ?? []).includes('client_secret_post')
      ? oauth.ClientSecretPost(this.#opts.clientSecret)
      : oauth.ClientSecretBasic(this.#opts.clientSecret);
    let result: oauth.TokenEndpointResponse;
    try {
      const response = await oauth.authorizationCodeGrantRequest(
        as,
        this.#client,
        clientAuth,
        params,
        this.#opts.redirectUri,
        pending.verifier,
        this.#http(),
      );
      result = await oauth.processAuthorizationCodeResponse(as, this.#client, response, {
        expectedNonce: pending.nonce,
        requireIdToken: true,
      });
    } catch (err) {
      const network = !(
        err instanceof oauth.OperationProcessingError ||
        err instanceof oauth.ResponseBodyError ||
        err instanceof oauth.WWWAuthenticateChallengeError ||
        err instanceof oauth.UnsupportedOperationError
      );
      throw new UpstreamSignInError(
        network ? 'unreachable' : 'invalid_response',
        network
          ? 'The single sign-on provider could not be reached. Please try again later.'
          : 'The answer from the single sign-on provider could not be verified. Please start again.',
        502,
        { cause: err },
      );
    }

    const claims = oauth.getValidatedIdTokenClaims(result);
    if (!claims) {
      throw new UpstreamSignInError('invalid_response', 'The single sign-on provider did not return an ID token.', 502);
    }
    const identity: UpstreamIdentity = {
      issuer: claims.iss,
      subject: claims.sub,
      email: stringClaim(claims.email),
      preferredUsername: stringClaim(claims.preferred_username),
      name: stringClaim(claims.name),
    };
    const groupsClaim = this.#opts.groupsClaim;
    if (groupsClaim && claims[groupsClaim] !== undefined) identity.groups = claims[groupsClaim];
    // Providers that keep profile claims out of the ID token serve them from the UserInfo endpoint.
    if (!identity.email && !identity.preferredUsername && as.userinfo_endpoint) {
      try {
        const info = await oauth.processUserInfoResponse(
          as,
          this.#client,
          claims.sub,
          await oauth.userInfoRequest(as, this.#client, result.access_token, this.#http()),
        );
        identity.email = stringClaim(info.email);
        identity.preferredUsername = stringClaim(info.preferred_username);
        identity.name ??= stringClaim(info.name);
        if (groupsClaim && identity.groups === undefined && info[groupsClaim] !== undefined) {
          identity.groups = info[groupsClaim];
        }
      } catch {
        // The profile is a convenience for naming the account; sign-in works without it.
      }
    }
    return { identity, next: pending.next };
  }
}

/**
 * A local username for a new federated user: `preferred_username`, else the email address, else
 * `user`, reduced to the characters local usernames allow. The store makes it unique.
 */
export function usernameFor(identity: Pick<UpstreamIdentity, 'preferredUsername' | 'email'>): string {
  for (const candidate of [identity.preferredUsername, identity.email]) {
    const cleaned = (candidate ?? '')
      .replace(/[^A-Za-z0-9._@-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 64);
    if (cleaned) return cleaned;
  }
  return 'user';
}
