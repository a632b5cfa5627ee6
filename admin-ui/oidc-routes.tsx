import { Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { Config } from '../broker/config.js';
import type { Clock } from '../broker/core/ports.js';
import { type SessionOptions, startSession } from '../broker/http/session.js';
import type { AppEnv } from '../broker/http/types.js';
import { SIGNIN_COOKIE_TTL, UpstreamOidc, UpstreamSignInError, usernameFor } from '../broker/identity/upstream-oidc.js';
import type { Logger } from '../broker/log.js';
import { copyUpstreamGroups, groupsFromClaim, type UserGroupsDeps } from '../broker/services/policy/user-groups.js';
import type { CryptoBox } from '../broker/tokens/crypto-box.js';
import { newId } from '../broker/tokens/random.js';
import type { UserStore } from '../db/stores/user-store.js';
import type { SignInEvent } from './check-credentials.js';
import { MessagePage } from './pages/message.js';
import { safeNext } from './safe-next.js';

export interface OidcRouteDeps {
  /** Appends a `signin.succeeded` or `signin.failed` event to the audit log. */
  recordSignIn(event: SignInEvent): Promise<void>;
  /** The federation settings; null when ERRAND_OIDC_ISSUER is unset. */
  oidc: Config['oidc'];
  /** Errand's own issuer, the base of the callback URL. */
  issuer: string;
  users: UserStore;
  clock: Clock;
  log: Logger;
  box: CryptoBox;
  session: SessionOptions;
  timeoutMs: number;
  /** Where the upstream groups claim is copied at each sign-in (README "Organisation policies"). */
  groups: Omit<UserGroupsDeps, 'users'>;
}

export const OIDC_CALLBACK_PATH = '/signin/oidc/callback';
const COOKIE = 'errand_oidc';
const COOKIE_PATH = '/signin/oidc';

/** Sign-in through the upstream OpenID Connect provider: `GET /signin/oidc` and its callback. */
export function oidcRoutes(deps: OidcRouteDeps) {
  const app = new Hono<AppEnv>();
  const config = deps.oidc;
  const rp = config
    ? new UpstreamOidc({
        issuer: config.issuer,
        clientId: config.clientId,
        clientSecret: config.clientSecret,
        scopes: config.scopes,
        redirectUri: `${deps.issuer}${OIDC_CALLBACK_PATH}`,
        box: deps.box,
        clock: deps.clock,
        timeoutMs: deps.timeoutMs,
        groupsClaim: config.groupsClaim,
      })
    : null;
  const failed = (message: string, status: 400 | 403 | 404 | 502) =>
    [<MessagePage title="Sign-in did not work" message={message} />, status] as const;
  const fail = (err: unknown, log: Logger) => {
    if (err instanceof UpstreamSignInError) {
      const cause = err.cause;
      log.warn('signin.oidc_failed', {
        reason: err.reason,
        ...(cause instanceof Error
          ? { detail: cause.message, errorCode: (cause as { code?: unknown }).code ?? null }
          : {}),
      });
      return failed(err.message, err.status);
    }
    throw err;
  };

  app.get('/signin/oidc', async (c) => {
    const next = safeNext(c.req.query('next'), deps.issuer);
    if (!rp) return c.html(...failed('Single sign-on is not configured on this Errand.', 404));
    if (c.get('user')) return c.redirect(next, 303);
    try {
      const started = await rp.startSignIn(next);
      setCookie(c, COOKIE, started.cookie, {
        httpOnly: true,
        // Lax: the provider's redirect back is a top-level GET navigation, which still carries it.
        sameSite: 'Lax',
        secure: deps.session.secure,
        path: COOKIE_PATH,
        maxAge: SIGNIN_COOKIE_TTL,
      });
      c.header('Cache-Control', 'no-store');
      return c.redirect(started.url, 302);
    } catch (err) {
      return c.html(...fail(err, c.get('log')));
    }
  });

  app.get(OIDC_CALLBACK_PATH, async (c) => {
    if (!rp || !config) return c.html(...failed('Single sign-on is not configured on this Errand.', 404));
    const log = c.get('log');
    const cookie = getCookie(c, COOKIE);
    // One attempt per cookie, whatever the outcome.
    deleteCookie(c, COOKIE, { path: COOKIE_PATH, secure: deps.session.secure });
    c.header('Cache-Control', 'no-store');
    let finished: Awaited<ReturnType<UpstreamOidc['finishSignIn']>>;
    try {
      finished = await rp.finishSignIn(new URL(c.req.url), cookie);
    } catch (err) {
      return c.html(...fail(err, log));
    }
    const { identity } = finished;
    const now = deps.clock.now();
    let user = await deps.users.findByIdentity(identity);
    if (!user) {
      if (!config.autoCreate) {
        log.info('signin.oidc_unknown_identity', { issuer: identity.issuer });
        return c.html(
          ...failed(
            `No Errand account is linked to this ${config.displayName} account. Ask an administrator to give you access.`,
            403,
          ),
        );
      }
      user = await deps.users.linkIdentity(
        identity,
        {
          create: {
            id: newId('usr'),
            username: usernameFor(identity),
            displayName: identity.name,
            role: 'user',
            createdAt: now,
            disabledAt: null,
          },
        },
        now,
      );
      log.info('user.created_from_identity', { userId: user.id, issuer: identity.issuer });
    }
    if (user.disabledAt !== null) {
      log.info('signin.failed', { userId: user.id, method: 'oidc', reason: 'disabled' });
      await deps.recordSignIn({
        result: 'denied',
        userId: user.id,
        reason: 'disabled',
        method: 'oidc',
        address: c.var.address,
        requestId: c.var.requestId,
      });
      return c.html(...failed('This account is disabled. Ask an administrator if you need access.', 403));
    }
    // The provider's groups replace the upstream ones at every sign-in (absent claim: none).
    await copyUpstreamGroups(deps.groups, user.id, groupsFromClaim(identity.groups), c.var.requestId, c.var.address);
    await startSession(c, deps.session, user.id);
    log.info('signin.succeeded', { userId: user.id, method: 'oidc' });
    await deps.recordSignIn({
      result: 'allowed',
      userId: user.id,
      reason: null,
      method: 'oidc',
      address: c.var.address,
      requestId: c.var.requestId,
    });
    return c.redirect(safeNext(finished.next, deps.issuer), 303);
  });

  return app;
}
