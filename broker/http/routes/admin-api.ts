import { type Context, Hono, type MiddlewareHandler } from 'hono';
import type { AuditStore } from '../../../db/stores/audit-store.js';
import type { DelegationStore } from '../../../db/stores/delegation-store.js';
import type { LifecycleStore } from '../../../db/stores/lifecycle-store.js';
import type { TaskStore } from '../../../db/stores/task-store.js';
import type { TrustedIssuerStore } from '../../../db/stores/trusted-issuer-store.js';
import type { Client } from '../../core/client.js';
import { OAuthError } from '../../core/errors.js';
import {
  type AdminActor,
  type AdminDeps,
  CreateClientSchema,
  CreateUserSchema,
  clientView,
  createClient,
  createUser,
  setClientStatus,
  UpdateClientSchema,
} from '../../services/admin.js';
import { ClientListQuerySchema, listClients } from '../../services/admission.js';
import { lifecycleViews } from '../../services/agent-lifecycle.js';
import { auditEventView, keyRotationView, keyView, resourceView, userView } from '../../services/api-views.js';
import { deleteClient, ReplaceClientKeysSchema, replaceClientKeys, updateClient } from '../../services/client-admin.js';
import { decideClient } from '../../services/client-approval.js';
import { type DelegationService, delegationView } from '../../services/delegations.js';
import { ExchangeRulesSchema, exchangeRuleView, setExchangeRules } from '../../services/exchange-rules.js';
import {
  AdminDelegationQuerySchema,
  AdminTaskQuerySchema,
  listDelegations,
  listTasks,
  namesOf,
} from '../../services/oversight.js';
import {
  CreateResourceSchema,
  createResource,
  deleteResource,
  UpdateResourceSchema,
  updateResource,
} from '../../services/resources.js';
import { taskView } from '../../services/tasks.js';
import type { KeyRing } from '../../tokens/key-ring.js';
import { API_CREDENTIALS, AuditQuerySchema, auditFilter, checkApiCsrf, jsonBody } from '../api.js';
import { parseParams } from '../params.js';
import type { AppEnv } from '../types.js';

/**
 * Admin API callers (README "Admin API"): an admin service client whose `errand:admin` token
 * `adminTokenAuth` accepted (no cookie, so no CSRF), or a signed-in administrator whose unsafe
 * requests also carry the session's CSRF token.
 */
export function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async function requireAdminMiddleware(c, next) {
    if (c.get('adminClient')) return next();
    const user = c.get('user');
    // adminTokenAuth (before every admin route) has answered this with its challenge already.
    if (!user) throw new OAuthError('unauthorized', `${API_CREDENTIALS.session} or ${API_CREDENTIALS.token}`);
    if (user.role !== 'admin') {
      throw new OAuthError(
        'forbidden',
        `this API is for administrators: the signed-in account is not one; sign in as an administrator, or ${API_CREDENTIALS.token}`,
      );
    }
    checkApiCsrf(c);
    await next();
  };
}

/** Who acts in an admin API request, for services and audit events: the service client's id, or the administrator's. */
export function adminActorId(c: Context<AppEnv>): string {
  const client = c.get('adminClient');
  if (client) return client.id;
  const user = c.get('user');
  if (!user) throw new Error('adminActorId outside requireAdmin');
  return user.id;
}

/** The authenticated admin API (JSON). Documented in the README. */
export function adminApiRoutes(
  deps: AdminDeps & {
    keys: KeyRing;
    audit: AuditStore;
    rotateDelay: number;
    delegationService: DelegationService;
    delegations: DelegationStore;
    tasks: TaskStore;
    trustedIssuers: TrustedIssuerStore;
    lifecycle: LifecycleStore;
    accessTokenTtl: number;
    issuer: string;
  },
) {
  const app = new Hono<AppEnv>();
  const actor = (c: Context<AppEnv>): AdminActor => ({
    adminId: adminActorId(c),
    requestId: c.var.requestId,
    address: c.var.address,
  });
  app.use('/api/admin/*', requireAdmin());

  // Agents also carry owner_status, owner_lapsed_at and suspended_reason (services/agent-lifecycle.ts).
  const withLifecycle = async (list: Client[]) => {
    const views = await lifecycleViews(deps, list);
    return list.map((client) => ({ ...clientView(client), ...views.get(client.id) }));
  };
  app.get('/api/admin/clients', async (c) => {
    const q = parseParams(ClientListQuerySchema, c.req.query());
    return c.json({ clients: await withLifecycle(await listClients(deps, q)) });
  });
  app.post('/api/admin/clients', async (c) => {
    const input = parseParams(CreateClientSchema, await jsonBody(c), 'invalid_client_metadata');
    const created = await createClient(deps, input, adminActorId(c), c.var.requestId, c.var.address);
    return c.json(created, 201, { 'Cache-Control': 'no-store' });
  });
  app.get('/api/admin/clients/:id', async (c) => {
    const client = await deps.clients.get(c.req.param('id'));
    if (!client) throw new OAuthError('not_found', 'no such client');
    return c.json((await withLifecycle([client]))[0]);
  });
  app.patch('/api/admin/clients/:id', async (c) => {
    const { status, ...patch } = parseParams(UpdateClientSchema, await jsonBody(c));
    const id = c.req.param('id');
    if (!(await deps.clients.get(id))) throw new OAuthError('not_found', 'no such client');
    if (status) await setClientStatus(deps, id, status, adminActorId(c), c.var.requestId, c.var.address);
    return c.json((await withLifecycle([await updateClient(deps, id, patch, actor(c))]))[0]);
  });
  // Ends its tasks, revokes its delegations and tokens, then removes it (client-admin.ts).
  app.delete('/api/admin/clients/:id', async (c) => {
    await deleteClient(deps, c.req.param('id'), actor(c));
    return c.body(null, 204);
  });
  // New keys for a private_key_jwt client: assertions signed with a key no longer listed are refused.
  app.put('/api/admin/clients/:id/keys', async (c) => {
    const input = parseParams(ReplaceClientKeysSchema, await jsonBody(c));
    return c.json(clientView(await replaceClientKeys(deps, c.req.param('id'), input, actor(c))));
  });

  // An agent that registered itself with an initial access token waits for one of these.
  for (const decision of ['approve', 'reject'] as const) {
    app.post(`/api/admin/clients/:id/${decision}`, async (c) => {
      const client = await decideClient(
        deps,
        c.req.param('id'),
        decision,
        adminActorId(c),
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
      adminActorId(c),
      c.var.requestId,
      c.var.address,
    );
    return c.json({ client_id: c.req.param('id'), exchange_rules: rules.map(exchangeRuleView) });
  });

  // Every task and delegation across people, with the names beside the ids.
  app.get('/api/admin/tasks', async (c) => {
    const q = parseParams(AdminTaskQuerySchema, c.req.query());
    const [tasks, names] = await Promise.all([listTasks(deps, q), namesOf(deps)]);
    return c.json({
      tasks: tasks.map((t) => ({
        ...taskView(t),
        user_name: names.users.get(t.userId) ?? null,
        agent_name: names.clients.get(t.agentId) ?? null,
      })),
    });
  });
  app.get('/api/admin/delegations', async (c) => {
    const q = parseParams(AdminDelegationQuerySchema, c.req.query());
    const [delegations, names] = await Promise.all([listDelegations(deps, q), namesOf(deps)]);
    return c.json({
      delegations: delegations.map((d) => ({
        ...delegationView(d),
        user_name: names.users.get(d.userId) ?? null,
        agent_name: names.clients.get(d.agentId) ?? null,
      })),
    });
  });

  app.post('/api/admin/tasks/:id/end', async (c) => {
    const task = await deps.taskService.end(
      { kind: 'admin', userId: adminActorId(c) },
      c.req.param('id'),
      'canceled',
      c.var.requestId,
    );
    return c.json(taskView(task));
  });
  app.post('/api/admin/delegations/:id/revoke', async (c) => {
    await deps.delegationService.revoke({ userId: adminActorId(c), admin: true }, c.req.param('id'), c.var.requestId);
    return c.json({ delegation_id: c.req.param('id'), status: 'revoked' });
  });

  app.get('/api/admin/resources', async (c) =>
    c.json({ resources: (await deps.clients.listResources()).map(resourceView) }),
  );
  app.post('/api/admin/resources', async (c) => {
    const input = parseParams(CreateResourceSchema, await jsonBody(c));
    return c.json(resourceView(await createResource(deps, input, actor(c))), 201);
  });
  app.get('/api/admin/resources/:id', async (c) => {
    const r = await deps.clients.getResourceById(c.req.param('id'));
    if (!r) throw new OAuthError('not_found', 'no such resource');
    return c.json(resourceView(r));
  });
  app.patch('/api/admin/resources/:id', async (c) => {
    const input = parseParams(UpdateResourceSchema, await jsonBody(c));
    return c.json(resourceView(await updateResource(deps, c.req.param('id'), input, actor(c))));
  });
  app.delete('/api/admin/resources/:id', async (c) => {
    await deleteResource(deps, c.req.param('id'), actor(c));
    return c.body(null, 204);
  });

  app.get('/api/admin/users', async (c) => c.json({ users: (await deps.users.list()).map(userView) }));
  app.post('/api/admin/users', async (c) => {
    const input = parseParams(CreateUserSchema, await jsonBody(c));
    return c.json(
      await createUser(deps, input, { adminId: adminActorId(c), requestId: c.var.requestId, address: c.var.address }),
      201,
    );
  });

  app.get('/api/admin/keys', (c) => c.json({ keys: deps.keys.describe().map(keyView) }));
  app.post('/api/admin/keys/rotate', async (c) =>
    c.json(
      keyRotationView(
        await deps.keys.rotateNow(deps.rotateDelay, {
          userId: adminActorId(c),
          requestId: c.var.requestId,
          address: c.var.address,
        }),
      ),
      202,
    ),
  );

  app.get('/api/admin/audit', async (c) => {
    const q = parseParams(AuditQuerySchema, c.req.query());
    return c.json({ events: (await deps.audit.query(auditFilter(q))).map(auditEventView) });
  });

  return app;
}
