import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { checkCsrf } from '../../../admin-ui/session.js';
import type { AuditStore } from '../../../db/stores/audit-store.js';
import { OAuthError } from '../../core/errors.js';
import {
  type AdminDeps,
  CreateClientSchema,
  CreateResourceSchema,
  CreateUserSchema,
  clientView,
  createClient,
  createResource,
  createUser,
  UpdateClientSchema,
} from '../../services/admin.js';
import type { KeyRing } from '../../tokens/key-ring.js';
import { parseParams } from '../params.js';
import type { AppEnv } from '../types.js';

/** Admin API callers are signed-in administrators; unsafe methods also carry the CSRF token. */
function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async function requireAdminMiddleware(c, next) {
    const user = c.get('user');
    if (!user) throw new OAuthError('unauthorized', 'sign in first (POST /api/session or the web sign-in)');
    if (user.role !== 'admin') throw new OAuthError('forbidden', 'this API is for administrators');
    if (!['GET', 'HEAD', 'OPTIONS'].includes(c.req.method)) checkCsrf(c, c.req.header('x-csrf-token'));
    await next();
  };
}

async function jsonBody(c: Context): Promise<unknown> {
  if (!/^application\/json(\s*;|$)/i.test(c.req.header('content-type') ?? '')) {
    throw new OAuthError('invalid_request', 'the body must be application/json');
  }
  return c.req.json<unknown>().catch(() => {
    throw new OAuthError('invalid_request', 'the body is not valid JSON');
  });
}

const AuditQuery = z.object({
  type: z.string().max(100).optional(),
  user_id: z.string().max(100).optional(),
  client_id: z.string().max(2048).optional(),
  task_id: z.string().max(100).optional(),
  result: z.enum(['allowed', 'denied']).optional(),
  from: z.coerce.number().int().min(0).optional(),
  to: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/** The authenticated admin API (JSON). Documented in the README. */
export function adminApiRoutes(deps: AdminDeps & { keys: KeyRing; audit: AuditStore; rotateDelay: number }) {
  const app = new Hono<AppEnv>();
  app.use('/api/admin/*', requireAdmin());

  app.get('/api/admin/clients', async (c) => c.json({ clients: (await deps.clients.list()).map(clientView) }));
  app.post('/api/admin/clients', async (c) => {
    const input = parseParams(CreateClientSchema, await jsonBody(c), 'invalid_client_metadata');
    const created = await createClient(deps, input, c.get('user')!.id, c.var.requestId);
    return c.json(created, 201, { 'Cache-Control': 'no-store' });
  });
  app.get('/api/admin/clients/:id', async (c) => {
    const client = await deps.clients.get(c.req.param('id'));
    if (!client) throw new OAuthError('not_found', 'no such client');
    return c.json(clientView(client));
  });
  app.patch('/api/admin/clients/:id', async (c) => {
    const patch = parseParams(UpdateClientSchema, await jsonBody(c));
    const id = c.req.param('id');
    if (!(await deps.clients.get(id))) throw new OAuthError('not_found', 'no such client');
    const updated = await deps.clients.update(id, {
      ...(patch.status ? { status: patch.status } : {}),
      ...(patch.owner_id !== undefined ? { ownerId: patch.owner_id } : {}),
      ...(patch.name ? { name: patch.name } : {}),
    });
    return c.json(clientView(updated!));
  });

  app.get('/api/admin/resources', async (c) => c.json({ resources: await deps.clients.listResources() }));
  app.post('/api/admin/resources', async (c) => {
    const input = parseParams(CreateResourceSchema, await jsonBody(c));
    return c.json(await createResource(deps, input), 201);
  });

  app.get('/api/admin/users', async (c) => c.json({ users: await deps.users.list() }));
  app.post('/api/admin/users', async (c) => {
    const input = parseParams(CreateUserSchema, await jsonBody(c));
    return c.json(await createUser(deps, input), 201);
  });

  app.get('/api/admin/keys', (c) => c.json({ keys: deps.keys.describe() }));
  app.post('/api/admin/keys/rotate', async (c) => c.json(await deps.keys.rotateNow(deps.rotateDelay), 202));

  app.get('/api/admin/audit', async (c) => {
    const q = parseParams(AuditQuery, c.req.query());
    const events = await deps.audit.query({
      ...(q.type ? { type: q.type } : {}),
      ...(q.user_id ? { userId: q.user_id } : {}),
      ...(q.client_id ? { clientId: q.client_id } : {}),
      ...(q.task_id ? { taskId: q.task_id } : {}),
      ...(q.result ? { result: q.result } : {}),
      ...(q.from !== undefined ? { from: q.from } : {}),
      ...(q.to !== undefined ? { to: q.to } : {}),
      limit: q.limit,
    });
    return c.json({ events });
  });

  return app;
}
