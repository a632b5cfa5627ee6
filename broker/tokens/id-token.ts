import type { TokenMinter } from './access-token.js';

/** Lifetime of ID tokens (CIBA §10.1.1, OIDC Core §3.1.3.3); signing keys are kept at least this long. */
export const ID_TOKEN_TTL = 300;

export interface IdTokenInput {
  /** The person (their Errand user id; `subject_types_supported: public`). */
  sub: string;
  /** The client the ID token is for (its only audience, so no `azp` is needed: OIDC Core §2). */
  clientId: string;
  /** When the person last acted: their approval of the request. */
  authTime: number;
  /** OIDC Core §3.1.2.1: echoed exactly when the authorization request carried one. */
  nonce?: string | null;
  /** Claims of the granted OpenID scopes (`profile`). */
  claims?: Record<string, unknown>;
}

/** Signs an OpenID ID token with the current key (OIDC Core §2, §3.1.3.7 checks pass on it). */
export function signIdToken(minter: TokenMinter, now: number, input: IdTokenInput): string {
  return minter.sign('JWT', {
    ...input.claims,
    sub: input.sub,
    aud: input.clientId,
    iat: now,
    exp: now + ID_TOKEN_TTL,
    auth_time: input.authTime,
    ...(input.nonce ? { nonce: input.nonce } : {}),
  }).token;
}

/** OIDC Core §5.4: the claims of the `profile` scope that Errand knows. */
export function profileClaims(
  user: { username: string; displayName: string | null },
  scopes: readonly string[],
): Record<string, string> {
  if (!scopes.includes('profile')) return {};
  return { name: user.displayName ?? user.username, preferred_username: user.username };
}
