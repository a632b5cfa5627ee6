import { type Context, Hono } from 'hono';
import { OAuthError } from '../broker/core/errors.js';
import type { Engine } from '../broker/engine.js';
import type { AppEnv } from '../broker/http/types.js';
import {
  AdminDelegationQuerySchema,
  AdminTaskQuerySchema,
  listDelegations,
  listTasks,
  namesOf,
} from '../broker/services/oversight.js';
import { readForm } from './forms.js';
import { AdminDelegationsPage, AdminTasksPage, type OversightFilters } from './pages/admin-oversight.js';
import { ConfirmPage } from './pages/confirm.js';
import { MessagePage } from './pages/message.js';

const NOTICES: Record<string, string> = {
  ended: 'The task and its sub-tasks have ended; their tokens no longer work.',
  revoked: 'Revoked. Every task under it has ended.',
};

/**
 * An administrator's view of every task and delegation across people (under `/admin/*`): filters by
 * person, agent and state, names beside ids, and ending or revoking through the same services as
 * `POST /api/admin/tasks/:id/end` and `POST /api/admin/delegations/:id/revoke`.
 */
export function adminOversightRoutes(deps: Engine) {
  const app = new Hono<AppEnv>();
  const csrf = (c: Context<AppEnv>) => c.get('csrfToken') ?? '';
  const me = (c: Context<AppEnv>) => c.get('user')!;

  /** The filters of the query string; a value the schema refuses is dropped, not an error page. */
  const filtersOf = (c: Context<AppEnv>): OversightFilters => ({
    user: (c.req.query('user') ?? '').slice(0, 100),
    agent: (c.req.query('agent') ?? '').slice(0, 2048),
    status: (c.req.query('status') ?? '').slice(0, 40),
  });
  const lists = async () => {
    const [users, clients, names] = await Promise.all([deps.users.list(), deps.clients.list(), namesOf(deps)]);
    return { users, agents: clients.filter((a) => a.kind === 'agent'), names };
  };
  const message = (c: Context<AppEnv>, title: string, text: string, status: 404 | 409) =>
    c.html(<MessagePage title={title} message={text} user={me(c)} csrf={csrf(c)} />, status);

  app.get('/admin/tasks', async (c) => {
    const f = filtersOf(c);
    const q = AdminTaskQuerySchema.safeParse({
      ...(f.user ? { user_id: f.user } : {}),
      ...(f.agent ? { agent_id: f.agent } : {}),
      ...(f.status ? { state: f.status } : {}),
      limit: 500,
    });
    const tasks = q.success ? await listTasks(deps, q.data) : [];
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <AdminTasksPage
        user={me(c)}
        csrf={csrf(c)}
        tasks={tasks}
        filters={f}
        now={deps.clock.now()}
        {...(await lists())}
        {...(notice ? { notice } : {})}
        {...(q.success ? {} : { error: 'That filter is not one of those offered.' })}
      />,
    );
  });
  app.get('/admin/tasks/:id/end', async (c) => {
    const task = await deps.tasks.get(c.req.param('id'));
    if (!task) return message(c, 'Not found', 'There is no such task.', 404);
    const names = await namesOf(deps);
    const person = names.users.get(task.userId) ?? task.userId;
    const agent = names.clients.get(task.agentId) ?? task.agentId;
    return c.html(
      <ConfirmPage
        user={me(c)}
        csrf={csrf(c)}
        title={`End ${agent}'s task for ${person}?`}
        consequence={
          <p>
            Task <code>{task.id}</code> ends as canceled, with every sub-task below it, and every token issued for them
            stops working at once. The agent has to ask again to continue.
          </p>
        }
        action={`/admin/tasks/${encodeURIComponent(task.id)}/end`}
        confirmLabel="End task"
        cancelHref="/admin/tasks"
      />,
    );
  });
  app.post('/admin/tasks/:id/end', async (c) => {
    await readForm(c);
    try {
      await deps.taskService.end({ kind: 'admin', userId: me(c).id }, c.req.param('id'), 'canceled', c.var.requestId);
    } catch (err) {
      if (err instanceof OAuthError && err.code === 'not_found') return message(c, 'Not found', err.message, 404);
      if (err instanceof OAuthError && err.code === 'conflict') return message(c, 'Already ended', err.message, 409);
      throw err;
    }
    return c.redirect('/admin/tasks?done=ended', 303);
  });

  app.get('/admin/delegations', async (c) => {
    const f = filtersOf(c);
    const q = AdminDelegationQuerySchema.safeParse({
      ...(f.user ? { user_id: f.user } : {}),
      ...(f.agent ? { agent_id: f.agent } : {}),
      ...(f.status ? { status: f.status } : {}),
      limit: 500,
    });
    const delegations = q.success ? await listDelegations(deps, q.data) : [];
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <AdminDelegationsPage
        user={me(c)}
        csrf={csrf(c)}
        delegations={delegations}
        filters={f}
        {...(await lists())}
        {...(notice ? { notice } : {})}
        {...(q.success ? {} : { error: 'That filter is not one of those offered.' })}
      />,
    );
  });
  app.get('/admin/delegations/:id/revoke', async (c) => {
    const d = await deps.delegations.get(c.req.param('id'));
    if (!d) return message(c, 'Not found', 'There is no such delegation.', 404);
    const names = await namesOf(deps);
    const person = names.users.get(d.userId) ?? d.userId;
    const agent = names.clients.get(d.agentId) ?? d.agentId;
    return c.html(
      <ConfirmPage
        user={me(c)}
        csrf={csrf(c)}
        title={`Revoke ${person}'s delegation to ${agent}?`}
        consequence={
          <p>
            {agent} can no longer act for {person} under delegation <code>{d.id}</code>: every task under it ends, with
            their sub-tasks, and their tokens stop working. {person} can be asked again.
          </p>
        }
        action={`/admin/delegations/${encodeURIComponent(d.id)}/revoke`}
        confirmLabel="Revoke delegation"
        cancelHref="/admin/delegations"
      />,
    );
  });
  app.post('/admin/delegations/:id/revoke', async (c) => {
    await readForm(c);
    try {
      await deps.delegationService.revoke({ userId: me(c).id, admin: true }, c.req.param('id'), c.var.requestId);
    } catch (err) {
      if (err instanceof OAuthError && err.code === 'not_found') return message(c, 'Not found', err.message, 404);
      if (err instanceof OAuthError && err.code === 'conflict') return message(c, 'Already ended', err.message, 409);
      throw err;
    }
    return c.redirect('/admin/delegations?done=revoked', 303);
  });

  return app;
}
