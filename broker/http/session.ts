import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { UserStore } from '../../db/stores/user-store.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { hashSecret, newSecret, safeEqual } from '../tokens/random.js';
import type { AppEnv } from './types.js';

export type SessionEnv = AppEnv;

export interface SessionOptions {
  users: UserStore;
  clock: Clock;
  ttl: number;
  /** `Secure` cookies with the `__Host-` prefix when the broker is served over https. */
  secure: boolean;
}

export function sessionCookieName(secure: boolean): string {
  return secure ? '__Host-errand_session' : 'errand_session';
}

/** Loads the signed-in user (if any) from the session cookie. */
export function loadSession(opts: SessionOptions): MiddlewareHandler<SessionEnv> {
  const name = sessionCookieName(opts.secure);
  return async function loadSessionMiddleware(c, next) {
    c.set('user', null);
    c.set('csrfToken', null);
    c.set('sessionIdHash', null);
    const raw = getCookie(c, name);
    if (raw && raw.length < 200) {
      const idHash = hashSecret(raw);
      const session = await opts.users.getSession(idHash, opts.clock.now());
      const user = session ? await opts.users.get(session.userId) : null;
      if (session && user && user.disabledAt === null) {
        c.set('user', user);
        c.set('csrfToken', session.csrfToken);
        c.set('sessionIdHash', idHash);
      }
    }
    await next();
  };
}

/** Starts a session: HttpOnly, SameSite=Lax, Secure (and `__Host-`) behind https. */
export async function startSession(c: Context, opts: SessionOptions, userId: string): Promise<{ csrfToken: string }> {
  const raw = newSecret();
  const now = opts.clock.now();
  const csrfToken = newSecret();
  await opts.users.createSession(hashSecret(raw), { userId, csrfToken, expiresAt: now + opts.ttl }, now);
  setCookie(c, sessionCookieName(opts.secure), raw, {
    httpOnly: true,
    sameSite: 'Lax',
    secure: opts.secure,
    path: '/',
    maxAge: opts.ttl,
  });
  return { csrfToken };
}

export async function endSession(c: Context<SessionEnv>, opts: SessionOptions): Promise<void> {
  const idHash = c.get('sessionIdHash');
  if (idHash) await opts.users.deleteSession(idHash);
  deleteCookie(c, sessionCookieName(opts.secure), { path: '/', secure: opts.secure });
}

/** Whether `presented` is the session's CSRF token. */
export function hasValidCsrf(c: Context<SessionEnv>, presented: string | undefined): boolean {
  const expected = c.get('csrfToken');
  return Boolean(expected && presented && safeEqual(presented, expected));
}

/** Checks the session's CSRF token (form field `_csrf` or header `X-CSRF-Token`). */
export function checkCsrf(c: Context<SessionEnv>, presented: string | undefined): void {
  if (!hasValidCsrf(c, presented)) {
    throw new OAuthError(
      'forbidden',
      'the form has expired or did not come from this site; reload the page and try again',
    );
  }
}
