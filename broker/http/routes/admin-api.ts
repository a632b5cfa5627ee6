import { Hono, type MiddlewareHandler } from 'hono';
import type { AuditStore } from '../../../db/stores/audit-store.js';
import type { DelegationStore } from '../../../db/stores/delegation-store.js';
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
  setClientStatus,
  UpdateClientSchema,
} from '../../services/admin.js';
import { decideClient } from '../../services/client-approval.js';
import type { DelegationService } from '../../services/delegations.js';
import { ExchangeRulesSchema, exchangeRuleView, setExchangeRules } from '../../services/exchange-rules.js';
import { taskView } from '../../services/tasks.js';
import type { KeyRing } from '../../tokens/key-ring.js';
import { AuditQuerySchema, auditFilter, jsonBody } from '../api.js';
import { parseParams } from '../params.js';
import { checkCsrf } from '../session.js';
import type { AppEnv } from '../types.js';

/** Admin API callers are signed-in administrators; unsafe methods also carry the CSRF token. */
export function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async function requireAdminMiddleware(c, next) {
    const user = c.get('user');
    if (!user) throw new OAuthError('unauthorized', 'sign in first (POST /api/session or the web sign-in)');
    if (user.role !== 'admin') throw new OAuthError('forbidden', 'this API is for administrators');
    if (!['GET', 'HEAD', 'OPTIONS'].includes(c.req.method)) checkCsrf(c, c.req.header('x-csrf-token'));
    await next();
  };
}

/** The authenticated admin API (JSON). Documented in the README. */
export function adminApiRoutes(
  deps: AdminDeps & {
    keys: KeyRing;
    audit: AuditStore;
    rotateDelay: number;
    delegationService: DelegationService;
    delegations: DelegationStore;
    accessTokenTtl: number;
  },
) {
  const app = new Hono<AppEnv>();
  app.use('/api/admin/*', requireAdmin());

  app.get('/api/admin/clients', async (c) => c.json({ clients: (await deps.clients.list()).map(clientView) }));
  app.post('/api/admin/clients', async (c) => {
    const input = parseParams(CreateClientSchema, await jsonBody(c), 'invalid_client_metadata');
    const created = await createClient(deps, input, c.get('user')!.id, c.var.requestId, c.var.address);
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
    if (patch.status) await setClientStatus(deps, id, patch.status, c.get('user')!.id, c.var.requestId, c.var.address);
    const updated = await deps.clients.update(id, {
      ...(patch.owner_id !== undefined ? { ownerId: patch.owner_id } : {}),
      ...(patch.name ? { name: patch.name } : {}),
    });
    return c.json(clientView(updated!));
  });

  // An agent that registered itself with an initial access token waits for one of these.
  for (const decision of ['approve', 'reject'] as const) {
    app.post(`/api/admin/clients/:id/${decision}`, async (c) => {
      const client = await decideClient(
        deps,
        c.req.param('id'),
        decision,
        c.get('user')!.id,
        c.var.requestId,
        c.var.address,
      );
      return c.json(clientView(client));
    });
  }
  // On-behalf-of exchange: which downstream resources the resource server may exchange its users' tokens for.
  app.put('/api/admin/clients/:id/exchange-rules', async (c) => {
    const input = parseParams(ExchangeRulesSchema, await jsonBody(c));
    const rules = await setExchangeRules(
      deps,
      c.req.param('id'),
      input,
      c.get('user')!.id,
      c.var.requestId,
      c.var.address,
    );
    return c.json({ client_id: c.req.param('id'), exchange_rules: rules.map(exchangeRuleView) });
  });

  app.post('/api/admin/tasks/:id/end', async (c) => {
    const task = await deps.taskService.end(
      { kind: 'admin', userId: c.get('user')!.id },
      c.req.param('id'),
      'canceled',
      c.var.requestId,
    );
    return c.json(taskView(task));
  });
  app.post('/api/admin/delegations/:id/revoke', async (c) => {
    await deps.delegationService.revoke({ userId: c.get('user')!.id, admin: true }, c.req.param('id'), c.var.requestId);
    return c.json({ delegation_id: c.req.param('id'), status: 'revoked' });
  });

  app.get('/api/admin/resources', async (c) => c.json({ resources: await deps.clients.listResources() }));
  app.post('/api/admin/resources', async (c) => {
    const input = parseParams(CreateResourceSchema, await jsonBody(c));
    return c.json(await createResource(deps, input), 201);
  });

  app.get('/api/admin/users', async (c) => c.json({ users: await deps.users.list() }));
  app.post('/api/admin/users', async (c) => {
    const input = parseParams(CreateUserSchema, await jsonBody(c));
    return c.json(
      await createUser(deps, input, { adminId: c.get('user')!.id, requestId: c.var.requestId, address: c.var.address }),
      201,
    );
  });

  app.get('/api/admin/keys', (c) => c.json({ keys: deps.keys.describe() }));
  app.post('/api/admin/keys/rotate', async (c) => c.json(await deps.keys.rotateNow(deps.rotateDelay), 202));

  app.get('/api/admin/audit', async (c) => {
    const q = parseParams(AuditQuerySchema, c.req.query());
    return c.json({ events: await deps.audit.query(auditFilter(q)) });
  });

  return app;
}
