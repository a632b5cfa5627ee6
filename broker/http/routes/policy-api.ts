import { type Context, Hono } from 'hono';
import {
  AgentAccessQuerySchema,
  type ExplorerDeps,
  exploreAgentAccess,
  exploreResourceAccess,
  ResourceAccessQuerySchema,
} from '../../services/policy/explorer.js';
import {
  CheckPolicySchema,
  checkPolicies,
  type PolicyActor,
  type PolicyAdminDeps,
  PolicyStatusSchema,
  policyVersionView,
  SavePolicySchema,
  savePolicyDraft,
  setPolicyStatus,
} from '../../services/policy/policy-admin.js';
import {
  checkView,
  getPolicyVersion,
  listPolicyVersions,
  listShadowDecisions,
  PolicyVersionParamSchema,
  ShadowDecisionsQuerySchema,
} from '../../services/policy/policy-views.js';
import { CEDAR_SCHEMA } from '../../services/policy/schema.js';
import { SetUserGroupsSchema, setUserGroups, type UserGroupsDeps } from '../../services/policy/user-groups.js';
import { jsonBody } from '../api.js';
import { parseParams } from '../params.js';
import { type AppEnv, NO_STORE } from '../types.js';
import { adminActorId, requireAdmin } from './admin-api.js';

const PATH = '/api/admin/policies';

/**
 * The organisation's policies in the admin API (README "Organisation policies"): versions, checks,
 * shadow and publish, the effective-access explorer, and people's groups. Administrators only, CSRF
 * on unsafe methods, as the rest of the admin API.
 */
export function policyApiRoutes(deps: PolicyAdminDeps & ExplorerDeps & UserGroupsDeps) {
  const app = new Hono<AppEnv>();
  app.use(PATH, requireAdmin());
  app.use(`${PATH}/*`, requireAdmin());
  app.use('/api/admin/access/*', requireAdmin());
  const actor = (c: Context<AppEnv>): PolicyActor => ({
    adminId: adminActorId(c),
    requestId: c.var.requestId,
    ...(c.var.address ? { address: c.var.address } : {}),
  });
  const version = (c: Context<AppEnv>) => parseParams(PolicyVersionParamSchema, c.req.param('version'));

  app.get(PATH, async (c) => c.json(await listPolicyVersions(deps)));
  app.post(PATH, async (c) => {
    const input = parseParams(SavePolicySchema, await jsonBody(c));
    return c.json(policyVersionView(await savePolicyDraft(deps, input, actor(c))), 201);
  });
  // Static paths before `:version`, which would otherwise take them.
  app.post(`${PATH}/check`, async (c) => {
    const input = parseParams(CheckPolicySchema, await jsonBody(c));
    return c.json(checkView(checkPolicies(deps, input)));
  });
  app.get(`${PATH}/schema`, (c) => c.json({ schema: CEDAR_SCHEMA }));
  app.get(`${PATH}/shadow-decisions`, async (c) => {
    const q = parseParams(ShadowDecisionsQuerySchema, c.req.query());
    return c.json(await listShadowDecisions(deps, q));
  });
  app.get(`${PATH}/:version`, async (c) => c.json(await getPolicyVersion(deps, version(c))));
  app.post(`${PATH}/:version/status`, async (c) => {
    const { status } = parseParams(PolicyStatusSchema, await jsonBody(c));
    return c.json(policyVersionView(await setPolicyStatus(deps, version(c), status, actor(c))));
  });

  app.get('/api/admin/access/agent', async (c) =>
    c.json(await exploreAgentAccess(deps, parseParams(AgentAccessQuerySchema, c.req.query()))),
  );
  app.get('/api/admin/access/resource', async (c) =>
    c.json(await exploreResourceAccess(deps, parseParams(ResourceAccessQuerySchema, c.req.query()))),
  );

  app.put('/api/admin/users/:id/groups', requireAdmin(), async (c) => {
    const input = parseParams(SetUserGroupsSchema, await jsonBody(c));
    return c.json(await setUserGroups(deps, c.req.param('id'), input, actor(c)), 200, NO_STORE);
  });
  return app;
}
