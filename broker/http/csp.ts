import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from './types.js';

/**
 * The Content-Security-Policy of every response. `form-action` is `'self'` alone, except on a page
 * whose form leads, through a redirect after the POST, to one validated place outside Errand (the
 * consent page: the client's redirect URI). CSP Level 3 `form-action` also governs the redirects that
 * follow a form submission (Chromium checks each one), so without that source the redirect is blocked.
 */
export function contentSecurityPolicy(formActionTarget?: string | null): string {
  const formAction = formActionTarget ? `'self' ${formActionTarget}` : "'self'";
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `form-action ${formAction}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
  ].join('; ');
}

// CSP Level 3 source grammar: scheme-source, and host-source whose host-char is ALPHA / DIGIT / "-".
const SCHEME_SOURCE = /^[a-z][a-z0-9+.-]*:$/;
const HOST_SOURCE = /^https?:\/\/[a-z0-9-]+(\.[a-z0-9-]+)*(:\d{1,5})?$/;

/**
 * The narrowest CSP source expression that lets a form's redirect reach `redirectUri`: its origin
 * for http(s) (CSP Level 3 does not match paths after a redirect), its scheme for a
 * private-use scheme (RFC 8252 §7.1, e.g. `com.example.app:`). Null when the grammar cannot name it:
 * an IP-literal host such as `[::1]` has no host-source form.
 */
export function formActionSource(redirectUri: string): string | null {
  let url: URL;
  try {
    url = new URL(redirectUri);
  } catch {
    return null;
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    return HOST_SOURCE.test(url.origin) ? url.origin : null;
  }
  return SCHEME_SOURCE.test(url.protocol) && !['javascript:', 'data:', 'blob:', 'file:'].includes(url.protocol)
    ? url.protocol
    : null;
}

/** Sets the CSP after the handler ran; a handler may add one form target with `c.set('formActionTarget', …)`. */
export function pageCsp(): MiddlewareHandler<AppEnv> {
  // Nearly every response carries the policy without a form target: built once.
  const usual = contentSecurityPolicy(null);
  return async function pageCspMiddleware(c, next) {
    await next();
    const target = c.get('formActionTarget');
    c.res.headers.set('Content-Security-Policy', target ? contentSecurityPolicy(target) : usual);
  };
}
