import { type Context, Hono } from 'hono';
import { OAuthError } from '../broker/core/errors.js';
import type { Engine } from '../broker/engine.js';
import type { AppEnv } from '../broker/http/types.js';
import { CreateUserSchema, createUser } from '../broker/services/admin.js';
import {
  ChangePasswordSchema,
  changeOwnPassword,
  type PeopleActor,
  ResetPasswordSchema,
  resetPassword,
  updateUser,
} from '../broker/services/people.js';
import { firstIssue, firstValue, readForm } from './forms.js';
import { ChangePasswordPage, PeoplePage, SetPasswordPage } from './pages/admin-people.js';
import { ConfirmPage } from './pages/confirm.js';
import { MessagePage } from './pages/message.js';

const NOTICES: Record<string, string> = {
  added: 'Added.',
  disabled: 'Disabled: their sessions, delegations, tasks and tokens have ended.',
  enabled: 'Enabled: they can sign in again (agents must ask them again).',
  role: 'Role changed.',
  password: 'New password set; their sessions have ended.',
};

const refused = (err: unknown): OAuthError | null => (err instanceof OAuthError && err.status < 500 ? err : null);
const statusOf = (e: OAuthError) => (e.status === 404 ? 404 : e.status === 409 ? 409 : e.status === 403 ? 403 : 400);

/**
 * People (`/admin/users/*`, behind the administrators' guard) and every person's own password page
 * (`/my/password`, behind the signed-in guard). The same services as `PATCH /api/admin/users/:id`,
 * `POST /api/admin/users/:id/password` and `POST /api/me/password`.
 */
export function peoplePageRoutes(deps: Engine) {
  const app = new Hono<AppEnv>();
  const people = {
    ...deps,
    guesses: { maxFailures: deps.config.sessions.maxFailures, lockout: deps.config.sessions.lockout },
  };
  const csrf = (c: Context<AppEnv>) => c.get('csrfToken') ?? '';
  const me = (c: Context<AppEnv>) => c.get('user')!;
  const actor = (c: Context<AppEnv>): PeopleActor => ({
    userId: me(c).id,
    requestId: c.var.requestId,
    address: c.var.address,
  });

  const listPage = async (c: Context<AppEnv>, error?: string, status: 200 | 400 | 403 | 404 | 409 = 200) => {
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <PeoplePage
        user={me(c)}
        csrf={csrf(c)}
        users={await deps.users.list()}
        {...(notice && !error ? { notice } : {})}
        {...(error ? { error } : {})}
      />,
      status,
    );
  };
  const target = async (c: Context<AppEnv>) => deps.users.get(c.req.param('id') ?? '');
  const notFound = (c: Context<AppEnv>) =>
    c.html(<MessagePage title="Not found" message="There is no such person." user={me(c)} csrf={csrf(c)} />, 404);
  /** Runs a change; a refusal (the last administrator, a bad value) shows on the People page. */
  const change = async (c: Context<AppEnv>, run: () => Promise<unknown>, done: string) => {
    try {
      await run();
    } catch (err) {
      const e = refused(err);
      if (!e) throw err;
      return listPage(c, e.message, statusOf(e));
    }
    // Disabling yourself ends your own session: the sign-in page follows.
    return c.redirect(`/admin/users?done=${done}`, 303);
  };

  app.get('/admin/users', (c) => listPage(c));
  app.post('/admin/users', async (c) => {
    const body = await readForm(c);
    const parsed = CreateUserSchema.safeParse({
      username: firstValue(body.username),
      password: firstValue(body.password),
      role: firstValue(body.role),
    });
    if (!parsed.success) return listPage(c, firstIssue(parsed.error), 400);
    return change(
      c,
      () => createUser(deps, parsed.data, { adminId: me(c).id, requestId: c.var.requestId, address: c.var.address }),
      'added',
    );
  });
  app.post('/admin/users/:id/role', async (c) => {
    const role = firstValue((await readForm(c)).role) === 'admin' ? 'admin' : 'user';
    return change(c, () => updateUser(people, c.req.param('id'), { role }, actor(c)), 'role');
  });
  app.post('/admin/users/:id/enable', async (c) => {
    await readForm(c);
    return change(c, () => updateUser(people, c.req.param('id'), { status: 'active' }, actor(c)), 'enabled');
  });
  // Disabling: GET asks for confirmation (ConfirmLink), POST disables.
  app.get('/admin/users/:id/disable', async (c) => {
    const u = await target(c);
    if (!u) return notFound(c);
    return c.html(
      <ConfirmPage
        user={me(c)}
        csrf={csrf(c)}
        title={`Disable ${u.username}?`}
        consequence={
          <p>
            {u.username} can no longer sign in. Every delegation they approved is revoked, the tasks under them end and
            their tokens stop working at once; their sessions end. Enabling them later restores sign-in only: agents
            must ask them again.
          </p>
        }
        action={`/admin/users/${u.id}/disable`}
        confirmLabel={`Disable ${u.username}`}
        cancelHref="/admin/users"
      />,
    );
  });
  app.post('/admin/users/:id/disable', async (c) => {
    await readForm(c);
    return change(c, () => updateUser(people, c.req.param('id'), { status: 'disabled' }, actor(c)), 'disabled');
  });

  app.get('/admin/users/:id/password', async (c) => {
    const u = await target(c);
    if (!u) return notFound(c);
    return c.html(<SetPasswordPage user={me(c)} csrf={csrf(c)} target={u} />);
  });
  app.post('/admin/users/:id/password', async (c) => {
    const body = await readForm(c);
    const u = await target(c);
    if (!u) return notFound(c);
    const parsed = ResetPasswordSchema.safeParse({ password: firstValue(body.password) });
    if (!parsed.success) {
      return c.html(<SetPasswordPage user={me(c)} csrf={csrf(c)} target={u} error={firstIssue(parsed.error)} />, 400);
    }
    await resetPassword(people, u.id, parsed.data, actor(c));
    return c.redirect('/admin/users?done=password', 303);
  });

  // Every person's own password.
  const passwordPage = (
    c: Context<AppEnv>,
    extra: { error?: string; notice?: string } = {},
    status: 200 | 400 | 403 | 409 | 429 = 200,
  ) => c.html(<ChangePasswordPage user={me(c)} csrf={csrf(c)} {...extra} />, status);
  app.get('/my/password', (c) =>
    passwordPage(
      c,
      c.req.query('done') === 'changed' ? { notice: 'Password changed. Your other sessions have ended.' } : {},
    ),
  );
  app.post('/my/password', async (c) => {
    const body = await readForm(c);
    if (firstValue(body.new_password) !== firstValue(body.confirm)) {
      return passwordPage(c, { error: 'The two new passwords differ.' }, 400);
    }
    const parsed = ChangePasswordSchema.safeParse({
      current_password: firstValue(body.current_password),
      new_password: firstValue(body.new_password),
    });
    if (!parsed.success) return passwordPage(c, { error: firstIssue(parsed.error) }, 400);
    try {
      await changeOwnPassword(people, parsed.data, actor(c), c.get('sessionIdHash') ?? null);
    } catch (err) {
      const e = refused(err);
      if (!e) throw err;
      return passwordPage(
        c,
        { error: e.message },
        e.status === 403 ? 403 : e.status === 409 ? 409 : e.status === 429 ? 429 : 400,
      );
    }
    return c.redirect('/my/password?done=changed', 303);
  });

  return app;
}
