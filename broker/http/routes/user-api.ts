import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { z } from 'zod';
import type { AuditStore } from '../../../db/stores/audit-store.js';
import type { DelegationStore } from '../../../db/stores/delegation-store.js';
import type { TaskStore } from '../../../db/stores/task-store.js';
import { OAuthError } from '../../core/errors.js';
import { auditEventView } from '../../services/api-views.js';
import { ApprovalSchema, type DelegationService, delegationView } from '../../services/delegations.js';
import { type TaskService, taskView } from '../../services/tasks.js';
import { API_CREDENTIALS, AuditQuerySchema, auditFilter, checkApiCsrf, jsonBody } from '../api.js';
import { parseParams } from '../params.js';
import type { AppEnv } from '../types.js';

/** Signed-in people; unsafe methods also carry the session's CSRF token in `X-CSRF-Token`. */
export function requireUser(): MiddlewareHandler<AppEnv> {
  return async function requireUserMiddleware(c, next) {
    if (!c.get('user')) {
      // A person's own API: access tokens (even errand:admin ones) are not accepted here.
      const tokenSent = c.req.header('authorization') !== undefined;
      throw new OAuthError(
        'unauthorized',
        `${API_CREDENTIALS.session}${tokenSent ? '; this API does not accept access tokens' : ''}`,
      );
    }
    checkApiCsrf(c);
    await next();
  };
}

export const DelegationStatusQuerySchema = z.object({
  status: z.enum(['pending', 'active', 'denied', 'revoked']).optional(),
});

/** The API of a signed-in person: their delegations, tasks and audit trail (and nothing else). */
export function userApiRoutes(deps: {
  delegations: DelegationStore;
  delegationService: DelegationService;
  tasks: TaskStore;
  taskService: TaskService;
  audit: AuditStore;
}) {
  const app = new Hono<AppEnv>();
  app.use('/api/me', requireUser());
  app.use('/api/me/*', requireUser());
  const me = (c: Context<AppEnv>) => c.get('user')!;

  app.get('/api/me', (c) => {
    const u = me(c);
    return c.json({ user_id: u.id, username: u.username, role: u.role });
  });

  app.get('/api/me/delegations', async (c) => {
    const q = parseParams(DelegationStatusQuerySchema, c.req.query());
    const list = await deps.delegations.listForUser(me(c).id, q.status);
    return c.json({ delegations: list.map(delegationView) });
  });
  app.get('/api/me/delegations/:id', async (c) => {
    const d = await deps.delegations.get(c.req.param('id'));
    if (!d || d.userId !== me(c).id) throw new OAuthError('not_found', 'no such delegation');
    return c.json(delegationView(d));
  });
  app.post('/api/me/delegations/:id/approve', async (c) => {
    const approval = parseParams(ApprovalSchema, await jsonBody(c, true));
    const d = await deps.delegationService.approve(me(c).id, c.req.param('id'), approval, c.var.requestId, {
      door: 'user_api',
      address: c.var.address,
    });
    return c.json(delegationView(d));
  });
  app.post('/api/me/delegations/:id/deny', async (c) => {
    await deps.delegationService.deny(me(c).id, c.req.param('id'), c.var.requestId);
    return c.json(delegationView((await deps.delegations.get(c.req.param('id')))!));
  });
  app.post('/api/me/delegations/:id/revoke', async (c) => {
    await deps.delegationService.revoke({ userId: me(c).id, admin: false }, c.req.param('id'), c.var.requestId);
    return c.json(delegationView((await deps.delegations.get(c.req.param('id')))!));
  });

  app.get('/api/me/tasks', async (c) => c.json({ tasks: (await deps.tasks.listForUser(me(c).id)).map(taskView) }));
  app.get('/api/me/tasks/:id', async (c) => {
    const task = await deps.tasks.get(c.req.param('id'));
    if (!task || task.userId !== me(c).id) throw new OAuthError('not_found', 'no such task');
    return c.json({ ...taskView(task), tree: (await deps.tasks.tree(task.rootTaskId)).map(taskView) });
  });
  app.post('/api/me/tasks/:id/end', async (c) => {
    const task = await deps.taskService.end(
      { kind: 'user', userId: me(c).id },
      c.req.param('id'),
      'canceled',
      c.var.requestId,
    );
    return c.json(taskView(task));
  });

  app.get('/api/me/audit', async (c) => {
    const q = parseParams(AuditQuerySchema, c.req.query());
    // Only events on the caller's behalf, whatever user_id the query names.
    return c.json({ events: (await deps.audit.query({ ...auditFilter(q), userId: me(c).id })).map(auditEventView) });
  });

  return app;
}
