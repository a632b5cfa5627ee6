import { type Context, Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { OAuthError } from '../broker/core/errors.js';
import { checkCsrf, endSession, type SessionOptions, startSession } from '../broker/http/session.js';
import type { AppEnv } from '../broker/http/types.js';
import { hashPassword } from '../broker/identity/passwords.js';
import { hashSecret, newId, newSecret, safeEqual } from '../broker/tokens/random.js';
import type { UserWithPassword } from '../db/stores/user-store.js';
import { type CredentialCheckDeps, checkCredentials } from './check-credentials.js';
import { STYLESHEET } from './components/layout.js';
import { MessagePage } from './pages/message.js';
import { SetupPage } from './pages/setup.js';
import { SignInPage } from './pages/sign-in.js';
import { safeNext } from './safe-next.js';

export interface UiDeps extends CredentialCheckDeps {
  /** Errand's issuer: `next` after sign-in must stay on its origin. */
  issuer: string;
  session: SessionOptions;
  clientAddress: (c: Context) => string;
  /** The upstream provider's button label when single sign-on is configured (ERRAND_OIDC_DISPLAY_NAME). */
  federationName?: string | null;
}

type Env = AppEnv;

const SIGNIN_CSRF_COOKIE = 'errand_signin_csrf';
const MIN_PASSWORD = 12;

async function formOf(c: Context): Promise<Record<string, string>> {
  const body = await c.req.parseBody();
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** Sign-in, sign-out, first-administrator setup and the signed-in home page. */
export function uiRoutes(deps: UiDeps) {
  const app = new Hono<Env>();

  app.get('/assets/app.css', (c) =>
    c.body(STYLESHEET, 200, { 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': 'public, max-age=3600' }),
  );

  app.get('/signin', (c) => {
    if (c.get('user')) return c.redirect(safeNext(c.req.query('next'), deps.issuer), 303);
    // Login CSRF: a per-browser value in a cookie that the form must echo.
    const csrf = newSecret();
    setCookie(c, SIGNIN_CSRF_COOKIE, csrf, {
      httpOnly: true,
      sameSite: 'Lax',
      secure: deps.session.secure,
      path: '/signin',
    });
    return c.html(
      <SignInPage
        csrf={csrf}
        next={safeNext(c.req.query('next'), deps.issuer)}
        federationName={deps.federationName ?? null}
      />,
    );
  });

  app.post('/signin', async (c) => {
    const form = await formOf(c);
    const cookie = getCookie(c, SIGNIN_CSRF_COOKIE);
    const next = safeNext(form.next, deps.issuer);
    if (!cookie || !form._csrf || !safeEqual(cookie, form._csrf)) {
      return c.html(
        <SignInPage
          csrf={cookie ?? ''}
          next={next}
          error="The form expired. Please try again."
          federationName={deps.federationName ?? null}
        />,
        403,
      );
    }
    const result = await checkCredentials(deps, deps.clientAddress(c), form.username ?? '', form.password ?? '', c.var);
    if (!result.ok) {
      return c.html(
        <SignInPage
          csrf={cookie}
          next={next}
          error={result.message}
          username={form.username ?? ''}
          federationName={deps.federationName ?? null}
        />,
        result.status,
      );
    }
    await startSession(c, deps.session, result.user.id);
    return c.redirect(next, 303);
  });

  // JSON sign-in for scripts using the admin API; the JSON content type keeps cross-site forms out.
  app.post('/api/session', async (c) => {
    if (!/^application\/json(\s*;|$)/i.test(c.req.header('content-type') ?? '')) {
      throw new OAuthError('invalid_request', 'the body must be application/json');
    }
    const body = (await c.req.json<Record<string, unknown>>().catch(() => null)) ?? {};
    const username = typeof body.username === 'string' ? body.username : '';
    const password = typeof body.password === 'string' ? body.password : '';
    if (!username || !password) throw new OAuthError('invalid_request', 'username and password are required');
    const result = await checkCredentials(deps, deps.clientAddress(c), username, password, c.var);
    if (!result.ok) {
      throw new OAuthError(result.status === 401 ? 'unauthorized' : 'rate_limited', result.message, {
        status: result.status,
      });
    }
    const { csrfToken } = await startSession(c, deps.session, result.user.id);
    return c.json({ user_id: result.user.id, role: result.user.role, csrf_token: csrfToken }, 200, {
      'Cache-Control': 'no-store',
    });
  });

  app.post('/signout', async (c) => {
    const form = await formOf(c);
    checkCsrf(c, form._csrf);
    await endSession(c, deps.session);
    return c.redirect('/signin', 303);
  });

  app.get('/setup', async (c) => {
    const token = c.req.query('token') ?? '';
    const valid = token && (await deps.users.isBootstrapTokenValid(hashSecret(token), deps.clock.now()));
    if (!valid || (await deps.users.countAdmins()) > 0) {
      return c.html(
        <MessagePage title="Setup link not valid" message="This setup link has expired or was already used." />,
        404,
      );
    }
    return c.html(<SetupPage token={token} />);
  });

  app.post('/setup', async (c) => {
    const form = await formOf(c);
    const token = form.token ?? '';
    const username = (form.username ?? '').trim();
    const again = (error: string) => c.html(<SetupPage token={token} error={error} username={username} />, 400);
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(username))
      return again('The username may use letters, digits and . _ @ - (up to 64).');
    if ((form.password ?? '').length < MIN_PASSWORD)
      return again(`The password needs at least ${MIN_PASSWORD} characters.`);
    if (form.password !== form.confirm) return again('The two passwords differ.');
    const now = deps.clock.now();
    const admin: UserWithPassword = {
      id: newId('usr'),
      username,
      displayName: null,
      passwordHash: await hashPassword(form.password ?? ''),
      role: 'admin',
      createdAt: now,
      disabledAt: null,
      failedSignins: 0,
      lockedUntil: null,
    };
    if (!(await deps.users.createFirstAdmin(hashSecret(token), admin, now))) {
      return c.html(
        <MessagePage title="Setup link not valid" message="This setup link has expired or was already used." />,
        400,
      );
    }
    deps.log.info('user.bootstrapped', { userId: admin.id });
    await startSession(c, deps.session, admin.id);
    return c.redirect('/admin', 303);
  });

  app.get('/', (c) => c.redirect('/admin', 302));

  return app;
}
