import type { AssuranceLevel } from './client.js';

/**
 * Outside issuers of workload identity and the rules that map their tokens' claims to an agent
 * (JWT-SVID, README "Assurance levels"). Pure: matching a verified token's claims against the rules.
 */

export type TrustedIssuerKind = 'oidc' | 'spiffe' | 'kubernetes' | 'ci';

/** One rule: every listed claim matches one of its patterns → this agent, at this level. */
export interface WorkloadRule {
  /**
   * Claim path → patterns. A path names a claim, nested ones with `/` between names
   * (`kubernetes.io/serviceaccount/name`; see `claimAt` for escapes and `[]`). Patterns are exact
   * strings or globs: `*` matches within one `/`-separated segment, `**` across segments.
   */
  match: Record<string, string[]>;
  agentId: string;
  /** NHI-AAL2 for an attested workload; NHI-AAL3 only with `attestation`. */
  assurance: Exclude<AssuranceLevel, 'NHI-AAL1'>;
  /** The claim and value by which the issuer attests a hardware-anchored, non-exportable key. */
  attestation: { claim: string; value: string } | null;
}

export interface TrustedIssuer {
  id: string;
  kind: TrustedIssuerKind;
  name: string;
  /** The `iss` of its tokens, or for a SPIFFE trust domain whose SVIDs carry none, `spiffe://<domain>`. */
  issuer: string;
  /** Where its keys are; null with no `jwks` means discovered from its OpenID metadata. */
  jwksUri: string | null;
  /** A static key set (a SPIFFE bundle). */
  jwks: { keys: Record<string, unknown>[] } | null;
  /** The audience its tokens must name, as their only value. */
  audience: string;
  /** Longest accepted token lifetime (exp − iat), seconds. */
  maxLifetime: number;
  rules: WorkloadRule[];
  status: 'active' | 'disabled';
  createdAt: number;
}

/**
 * The value at a claim path, or undefined. A path is always a walk through nested objects: `/`
 * separates names, and a name that itself contains `/` or `~` is written with the RFC 6901 §3
 * escapes `~1` and `~0` (`kubernetes.io/serviceaccount/name` is three levels; `a~1b` is the one
 * claim named `a/b`). A trailing `[]` is not part of the path: see `matchWorkloadRule`.
 */
export function claimAt(claims: Record<string, unknown>, path: string): unknown {
  let value: unknown = claims;
  for (const escaped of stripArrayMarker(path).split('/')) {
    const segment = escaped.replaceAll('~1', '/').replaceAll('~0', '~');
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    if (!Object.hasOwn(value, segment)) return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}

/** Whether a claim path asks for "any element of an array claim" (`groups[]`). */
export function isArrayClaimPath(path: string): boolean {
  return path.endsWith('[]');
}

function stripArrayMarker(path: string): string {
  return isArrayClaimPath(path) ? path.slice(0, -2) : path;
}

function globToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*' && pattern[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (ch === '*') {
      source += '[^/\\n\\r]*';
    } else {
      source += ch.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  // No `s` flag: neither wildcard matches a line break, so a value cannot smuggle a second line.
  return new RegExp(`^${source}$`);
}

/** Whether `value` matches an exact or glob pattern. */
export function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  return globToRegExp(pattern).test(value);
}

/**
 * Whether the claim at `path` matches. Scalars compare as strings. An array claim matches only
 * through a path that says so (`amr[]`: any element that is a scalar); with a plain path an array,
 * like an object, matches nothing, so `["none", "tpm"]` never passes for the value `tpm`.
 */
function claimMatches(claims: Record<string, unknown>, path: string, test: (text: string) => boolean): boolean {
  const value = claimAt(claims, path);
  const scalar = (v: unknown) =>
    (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') && test(String(v));
  if (isArrayClaimPath(path)) return Array.isArray(value) && value.some(scalar);
  return scalar(value);
}

/**
 * The first rule the claims satisfy, or null. A rule with an attestation requirement matches only
 * when the issuer stated it; the level is the rule's, never a claim the workload chose.
 */
export function matchWorkloadRule(
  rules: readonly WorkloadRule[],
  claims: Record<string, unknown>,
): WorkloadRule | null {
  for (const rule of rules) {
    const entries = Object.entries(rule.match);
    if (entries.length === 0) continue;
    const matches = ([path, patterns]: [string, string[]]) =>
      claimMatches(claims, path, (text) => patterns.some((p) => globMatch(p, text)));
    if (!entries.every(matches)) continue;
    // The attestation is compared exactly: it is what makes a rule worth NHI-AAL3.
    const attestation = rule.attestation;
    if (attestation && !claimMatches(claims, attestation.claim, (text) => text === attestation.value)) continue;
    return rule;
  }
  return null;
}

/** The trust domain of a SPIFFE ID (`spiffe://<domain>/<path>`), or null when it is not one. */
export function spiffeTrustDomain(id: string): string | null {
  const match = /^spiffe:\/\/([a-z0-9._-]+)(\/[A-Za-z0-9._\-/]*)?$/.exec(id);
  return match?.[1] ?? null;
}
