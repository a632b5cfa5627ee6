import { type Context, Hono } from 'hono';
import type { Engine } from '../../engine.js';
import {
  type LifecycleDeps,
  lifecycleDepsOf,
  ReduceDelegationSchema,
  reduceDelegation,
  suggestedPolicy,
} from '../../services/agent-lifecycle.js';
import {
  AttestSchema,
  attest,
  campaignView,
  closeCampaign,
  ExportQuerySchema,
  exportCsv,
  exportRows,
  getCampaign,
  itemView,
  OpenCampaignSchema,
  openCampaign,
} from '../../services/certification.js';
import { agentUsage, UsageQuerySchema, usageView } from '../../services/usage.js';
import { jsonBody } from '../api.js';
import { parseParams } from '../params.js';
import type { AppEnv } from '../types.js';
import { adminActorId, requireAdmin } from './admin-api.js';
import { requireUser } from './user-api.js';

const CAMPAIGNS = '/api/admin/certification-campaigns';

/**
 * The agent lifecycle API (README "Agent lifecycle: owners, certification and right-sizing"):
 * certification campaigns and an agent's usage for administrators; a person's items to certify and
 * the right-sizing of their own delegations. Every rule is in services/agent-lifecycle.ts,
 * services/certification.ts and services/usage.ts, which the console calls too.
 */
export function lifecycleApiRoutes(engine: Engine) {
  const deps: LifecycleDeps = lifecycleDepsOf(engine);
  const app = new Hono<AppEnv>();
  for (const path of [
    CAMPAIGNS,
    `${CAMPAIGNS}/*`,
    '/api/admin/clients/:id/usage',
    '/api/admin/delegations/:id/reduce',
  ]) {
    app.use(path, requireAdmin());
  }
  app.use('/api/me/certifications', requireUser());
  app.use('/api/me/certifications/*', requireUser());
  app.use('/api/me/delegations/:id/reduce', requireUser());

  const admin = (c: Context<AppEnv>) => ({
    userId: adminActorId(c),
    admin: true,
    requestId: c.var.requestId,
    address: c.var.address,
  });
  const person = (c: Context<AppEnv>) => {
    const user = c.get('user')!;
    return { userId: user.id, admin: user.role === 'admin', requestId: c.var.requestId, address: c.var.address };
  };

  app.post(CAMPAIGNS, async (c) => {
    const input = parseParams(OpenCampaignSchema, await jsonBody(c));
    const campaign = await openCampaign(deps, input, admin(c));
    return c.json(campaignView(campaign), 201);
  });
  app.get(CAMPAIGNS, async (c) => c.json({ campaigns: (await deps.lifecycle.listCampaigns()).map(campaignView) }));
  app.get(`${CAMPAIGNS}/:id`, async (c) => {
    const { campaign, items } = await getCampaign(deps, c.req.param('id'));
    return c.json({ ...campaignView(campaign), items: items.map(itemView) });
  });
  app.post(`${CAMPAIGNS}/:id/close`, async (c) => {
    const result = await closeCampaign(deps, c.req.param('id'), admin(c));
    const { campaign } = await getCampaign(deps, c.req.param('id'));
    return c.json({ ...campaignView(campaign), lapsed: result.lapsed });
  });
  app.get(`${CAMPAIGNS}/:id/export`, async (c) => {
    const { format } = parseParams(ExportQuerySchema, c.req.query());
    const { campaign, items } = await getCampaign(deps, c.req.param('id'));
    const rows = exportRows(campaign, items);
    if (format === 'json') return c.json({ ...campaignView(campaign), items: rows });
    return c.body(exportCsv(rows), 200, {
      'Content-Type': 'text/csv; charset=utf-8',
      'Content-Disposition': `attachment; filename="certification-${campaign.id}.csv"`,
    });
  });

  app.get('/api/admin/clients/:id/usage', async (c) => {
    const { days } = parseParams(UsageQuerySchema, c.req.query());
    const usage = await agentUsage(deps, c.req.param('id'), days);
    return c.json({ ...usageView(usage), suggested_policy: suggestedPolicy(usage.agentId, usage.resources.unused) });
  });
  app.post('/api/admin/delegations/:id/reduce', async (c) => {
    const input = parseParams(ReduceDelegationSchema, await jsonBody(c));
    const grants = await reduceDelegation(deps, c.req.param('id'), input, admin(c));
    return c.json({ delegation_id: c.req.param('id'), grants });
  });

  // A signed-in person: the agents they own to certify, and narrowing their own delegations.
  app.get('/api/me/certifications', async (c) => {
    const items = await deps.lifecycle.openItemsOf(c.get('user')!.id);
    return c.json({ items: items.map(itemView) });
  });
  app.post('/api/me/certifications/:id/attest', async (c) => {
    const input = parseParams(AttestSchema, await jsonBody(c));
    return c.json(itemView(await attest(deps, c.req.param('id'), input, person(c))));
  });
  app.post('/api/me/delegations/:id/reduce', async (c) => {
    const input = parseParams(ReduceDelegationSchema, await jsonBody(c));
    const grants = await reduceDelegation(deps, c.req.param('id'), input, { ...person(c), admin: false });
    return c.json({ delegation_id: c.req.param('id'), grants });
  });
  return app;
}
