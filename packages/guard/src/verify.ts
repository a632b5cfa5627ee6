import { type ActClaim, canonicalizeResource, fromActClaim, JWT_TYP, parseScope } from '@errand/protocol';
import { decodeProtectedHeader, type JWTVerifyGetKey, errors as joseErrors, jwtVerify } from 'jose';
import { z } from 'zod';

/** Signature algorithms accepted on access tokens (RFC 8725 §3.1: an explicit list; never `none` or a MAC). */
export const ACCESS_TOKEN_ALGS = ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256'] as const;

// RFC 8693 §4.1: nested { sub, act? }, bounded in depth.
const ActSchema = z.custom<ActClaim>((v) => fromActClaim(v) !== null, 'malformed act claim');

/** RFC 9068 §2.2 claims plus Errand's (`task_id`, `act`, `status`, `cnf`, `authorization_details`); others pass through. */
export const AccessTokenClaimsSchema = z.looseObject({
  iss: z.string(),
  sub: z.string().min(1),
  aud: z.union([z.string(), z.array(z.string()).min(1)]),
  exp: z.number(),
  iat: z.number(),
  nbf: z.number().optional(),
  jti: z.string().min(1).max(256),
  client_id: z.string().min(1),
  scope: z.string().max(4096).optional(),
  task_id: z.string().min(1).optional(),
  act: ActSchema.optional(),
  cnf: z.looseObject({ jkt: z.string().min(1).max(128).optional() }).optional(),
  /** RFC 9396 §9.1: structured grants; `mcp_tool` entries limit the tools callable at a location. */
  authorization_details: z.array(z.unknown()).max(100).optional(),
  status: z
    .looseObject({
      status_list: z.object({ idx: z.number().int().min(0), uri: z.string().min(1).max(2048) }).optional(),
    })
    .optional(),
});
/** The validated claims of an access token. */
export type AccessTokenClaims = z.infer<typeof AccessTokenClaimsSchema>;

export interface AccessTokenCheck {
  issuer: string;
  /** The guard's canonical resource identifier. */
  resource: string;
  getKey: JWTVerifyGetKey;
  /** Epoch seconds. */
  now: number;
  clockSkew: number;
}

/** Outcome of the token checks; `description` is safe to send (it never says which signature check failed). */
export type AccessTokenResult =
  | { ok: true; claims: AccessTokenClaims; scopes: string[] }
  | { ok: false; description: string };

const GENERIC = 'the access token is not valid';

// RFC 8725 §3.11 / RFC 9068 §4: explicit typing; media types compare case-insensitively, "application/" optional.
function isAccessTokenTyp(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const t = typ.toLowerCase();
  return t === JWT_TYP.accessToken || t === `application/${JWT_TYP.accessToken}`;
}

/** Whether the token's `aud` names this resource (RFC 8707 §2, compared after canonicalisation). */
export function isAudienceFor(aud: string | string[], resource: string): boolean {
  return (Array.isArray(aud) ? aud : [aud]).some((a) => canonicalizeResource(a) === resource);
}

/**
 * RFC 9068 §4 validation of a JWT access token: header first (typ, alg allow-list, no `crit`),
 * then signature against the issuer's keys, `iss` exactly, `exp`/`nbf` with skew, an `iat` no
 * further in the future than the skew, the audience, and the claim shapes. Does not look at sender constraints, revocation or scopes.
 */
export async function checkAccessToken(token: string, check: AccessTokenCheck): Promise<AccessTokenResult> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return { ok: false, description: GENERIC };
  }
  if (token.split('.').length !== 3) return { ok: false, description: GENERIC };
  if (!isAccessTokenTyp(header.typ)) return { ok: false, description: 'the token is not an access token (typ)' };
  if (typeof header.alg !== 'string' || !(ACCESS_TOKEN_ALGS as readonly string[]).includes(header.alg)) {
    return { ok: false, description: GENERIC };
  }
  if (header.crit !== undefined) return { ok: false, description: GENERIC };

  let payload: unknown;
  try {
    ({ payload } = await jwtVerify(token, check.getKey, {
      algorithms: [...ACCESS_TOKEN_ALGS],
      issuer: check.issuer,
      typ: JWT_TYP.accessToken,
      requiredClaims: ['exp', 'iat', 'aud', 'sub', 'jti', 'client_id'],
      clockTolerance: check.clockSkew,
      currentDate: new Date(check.now * 1000),
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) return { ok: false, description: 'the access token has expired' };
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf') {
      return { ok: false, description: 'the access token is not valid yet' };
    }
    return { ok: false, description: GENERIC };
  }
  const parsed = AccessTokenClaimsSchema.safeParse(payload);
  if (!parsed.success) return { ok: false, description: GENERIC };
  const claims = parsed.data;
  // jose checks iat only with maxTokenAge: a token minted while its issuer's clock ran ahead would
  // otherwise live its lifetime plus the jump once that clock is back.
  if (claims.iat > check.now + check.clockSkew) return { ok: false, description: 'the access token is not valid yet' };
  if (!isAudienceFor(claims.aud, check.resource)) {
    return { ok: false, description: 'the access token was not issued for this resource' };
  }
  const scopes = parseScope(claims.scope ?? '');
  if (scopes === null) return { ok: false, description: GENERIC };
  return { ok: true, claims, scopes };
}

/**
 * Whether granted scopes cover a required one (MCP 2026-07-28: servers honour scope hierarchies).
 * A scope covers itself, its colon-delimited descendants (`notes` covers `notes:read`), and whatever
 * `hierarchy` says it implies, transitively (`{ 'notes:write': ['notes:read'] }`).
 */
export function scopeCovers(
  granted: readonly string[],
  required: string,
  hierarchy: Readonly<Record<string, readonly string[]>> = {},
): boolean {
  const seen = new Set<string>();
  const queue = [...granted];
  while (queue.length > 0) {
    const s = queue.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    if (s === required || required.startsWith(`${s}:`)) return true;
    queue.push(...(hierarchy[s] ?? []));
  }
  return false;
}
