/** Where a browser goes after sign-in when `next` is missing or not acceptable. */
export const DEFAULT_NEXT = '/admin';

/** Longer values are not links anyone needs to follow after sign-in. */
const MAX_NEXT = 2048;

/**
 * The `next` page after sign-in, or the home page: only a path on Errand's own origin is followed,
 * so a sign-in link cannot send people elsewhere (an open redirect).
 *
 * The value is judged as a browser would read it: the WHATWG URL parser drops TAB and newlines and
 * treats `\` as `/`, which turns `/<TAB>/evil.example` into `//evil.example`. Control characters and
 * backslashes are refused outright, the rest is resolved against the issuer, and what is returned is
 * the parser's own serialization (percent-encoded, so always a valid Location header value).
 */
export function safeNext(next: string | undefined, issuer: string): string {
  if (!next || next.length > MAX_NEXT || !next.startsWith('/')) return DEFAULT_NEXT;
  if (hasRewrittenCharacter(next)) return DEFAULT_NEXT;
  const base = new URL(issuer);
  let url: URL;
  try {
    url = new URL(next, base);
  } catch {
    return DEFAULT_NEXT;
  }
  if (url.origin !== base.origin) return DEFAULT_NEXT;
  const path = `${url.pathname}${url.search}${url.hash}`;
  // Dot segments can leave a path that starts with `//` (`/.//evil.example`), which a browser
  // reads as a network-path reference to another host (RFC 3986 §4.2).
  if (path.startsWith('//')) return DEFAULT_NEXT;
  return path;
}

/** C0 controls (TAB, LF, CR…), DEL and backslash: what browsers drop or rewrite in a URL. */
function hasRewrittenCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f || code === 0x5c) return true;
  }
  return false;
}
