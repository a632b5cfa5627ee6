/**
 * RFC 8785 (JSON Canonicalization Scheme) for parsed JSON: members sorted by their names' UTF-16
 * code units (§3.2.3), no whitespace, and strings and numbers as ECMAScript's JSON.stringify writes
 * them (§3.2.2.2, §3.2.2.3). Members whose value is `undefined` are not JSON and are left out.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}
