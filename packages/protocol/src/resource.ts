/**
 * Resource indicators (RFC 8707) compared after RFC 3986 normalisation: lowercase scheme and host,
 * default port dropped, no fragment, and an empty path equal to "/" (RFC 3986 §6.2.2–6.2.3). The canonical
 * form drops a lone trailing "/" so `https://host` and `https://host/` are the same resource.
 */
export function canonicalizeResource(input: string): string | null {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return null;
  }
  // RFC 8707 §2: absolute URI, no fragment; Errand only protects http(s) resources.
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
  if (input.includes('#')) return null;
  if (url.username || url.password) return null;
  // URL already lowercases scheme and host and drops default ports.
  let path = url.pathname;
  if (path === '/') path = '';
  return `${url.protocol}//${url.host}${path}${url.search}`;
}
