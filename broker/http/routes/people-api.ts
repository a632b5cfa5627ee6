import { type Context, Hono } from 'hono';
import { userView } from '../../services/api-views.js';
import {
  ChangePasswordSchema,
  changeOwnPassword,
  type PeopleDeps,
  ResetPasswordSchema,
  resetPassword,
  UpdateUserSchema,
  updateUser,
} from '../../services/people.js';
import { jsonBody } from '../api.js';
import { parseParams } from '../params.js';
import { type AppEnv, NO_STORE } from '../types.js';
import { adminActorId, requireAdmin } from './admin-api.js';
import { requireUser } from './user-api.js';

/** Accounts: an administrator disables, enables, re-roles or resets a person; everyone changes their own password. */
export function peopleApiRoutes(deps: PeopleDeps) {
  const app = new Hono<AppEnv>();
  const actor = (c: Context<AppEnv>) => ({
    userId: adminActorId(c),
    requestId: c.var.requestId,
    address: c.var.address,
  });

  app.patch('/api/admin/users/:id', requireAdmin(), async (c) => {
    const input = parseParams(UpdateUserSchema, await jsonBody(c));
    return c.json(userView(await updateUser(deps, c.req.param('id'), input, actor(c))));
  });
  app.post('/api/admin/users/:id/password', requireAdmin(), async (c) => {
    const input = parseParams(ResetPasswordSchema, await jsonBody(c));
    await resetPassword(deps, c.req.param('id'), input, actor(c));
    return c.body(null, 204, NO_STORE);
  });
  app.post('/api/me/password', requireUser(), async (c) => {
    const input = parseParams(ChangePasswordSchema, await jsonBody(c));
    await changeOwnPassword(deps, input, actor(c), c.get('sessionIdHash') ?? null);
    return c.body(null, 204, NO_STORE);
  });
  return app;
}
