/** Scope strings as RFC 6749 §3.3 defines them: space-delimited, case-sensitive, no duplicates. */

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** Whether a single scope token is syntactically valid. */
export function isScopeToken(s: string): boolean {
  return SCOPE_TOKEN.test(s);
}

/** Parses a scope parameter into a sorted, de-duplicated list; returns null when malformed. */
export function parseScope(value: string): string[] | null {
  if (value.length === 0) return [];
  const parts = value.split(' ');
  if (parts.some((p) => !isScopeToken(p))) return null;
  return [...new Set(parts)].sort();
}

/** Formats a scope list for the wire. */
export function formatScope(scopes: readonly string[]): string {
  return [...new Set(scopes)].sort().join(' ');
}

/** The requested scopes that are not in `allowed`. */
export function scopesOutside(requested: readonly string[], allowed: readonly string[]): string[] {
  const set = new Set(allowed);
  return requested.filter((s) => !set.has(s));
}

/** Whether every scope of `inner` is in `outer`. */
export function isScopeSubset(inner: readonly string[], outer: readonly string[]): boolean {
  return scopesOutside(inner, outer).length === 0;
}
