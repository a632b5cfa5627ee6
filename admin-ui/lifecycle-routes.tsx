import { type Context, Hono } from 'hono';
import { OAuthError } from '../broker/core/errors.js';
import type { Engine } from '../broker/engine.js';
import type { AppEnv } from '../broker/http/types.js';
import {
  type LifecycleDeps,
  lifecycleDepsOf,
  reduceDelegation,
  suggestedPolicy,
} from '../broker/services/agent-lifecycle.js';
import {
  AttestSchema,
  attest,
  closeCampaign,
  getCampaign,
  OpenCampaignSchema,
  openCampaign,
} from '../broker/services/certification.js';
import { agentUsage, UsageQuerySchema } from '../broker/services/usage.js';
import { field, firstIssue, readForm } from './forms.js';
import { CampaignPage, CampaignsPage, MyCertificationsPage, UsagePage } from './pages/certification.js';
import { MessagePage } from './pages/message.js';

const NOTICES: Record<string, string> = {
  opened: 'Campaign opened: each owner now sees their agents to certify.',
  closed: 'Campaign closed: agents not attested are suspended and their tasks have ended.',
  keep: 'Recorded: the agent keeps what it holds.',
  reduce: "Reduced: the agent's delegations keep only what it used; tasks under the dropped grants have ended.",
  remove: 'Removed: the agent is disabled and its tasks have ended.',
  reduced: "Reduced to what was used; the delegation's tasks have ended.",
};

/**
 * The console's agent lifecycle pages (README "Agent lifecycle: owners, certification and
 * right-sizing"), behind the guards of pages-routes.tsx (`/admin/*` administrators, `/my/*` anyone
 * signed in). Every form calls the same services as the JSON API (routes/lifecycle-api.ts).
 */
export function lifecycleRoutes(engine: Engine) {
  const deps: LifecycleDeps = lifecycleDepsOf(engine);
  const app = new Hono<AppEnv>();
  const csrf = (c: Context<AppEnv>) => c.get('csrfToken') ?? '';
  const me = (c: Context<AppEnv>) => c.get('user')!;
  const notice = (c: Context<AppEnv>) => NOTICES[c.req.query('done') ?? ''];
  const actor = (c: Context<AppEnv>) => ({
    userId: me(c).id,
    admin: me(c).role === 'admin',
    requestId: c.var.requestId,
    address: c.var.address,
  });
  /** A refusal a person can fix is shown on the page; anything else goes to the error handler. */
  const refusal = (err: unknown): string => {
    if (err instanceof OAuthError && err.status < 500 && err.code !== 'forbidden') return err.message;
    throw err;
  };
  const notFound = (c: Context<AppEnv>, what: string) =>
    c.html(<MessagePage title="Not found" message={`There is no such ${what}.`} user={me(c)} csrf={csrf(c)} />, 404);

  const campaignsPage = async (c: Context<AppEnv>, error?: string) =>
    c.html(
      <CampaignsPage
        user={me(c)}
        csrf={csrf(c)}
        campaigns={await deps.lifecycle.listCampaigns()}
        {...(error ? { error } : {})}
      />,
      error ? 400 : 200,
    );
  app.get('/admin/certifications', (c) => campaignsPage(c));
  app.post('/admin/certifications', async (c) => {
    const body = await readForm(c);
    const days = Number(field(body, 'deadline_days'));
    const parsed = OpenCampaignSchema.safeParse({
      name: field(body, 'name'),
      deadline: Number.isInteger(days) && days > 0 ? deps.clock.now() + days * 86_400 : 0,
      usage_days: Number(field(body, 'usage_days') || 30),
    });
    if (!parsed.success) return campaignsPage(c, firstIssue(parsed.error));
    try {
      const campaign = await openCampaign(deps, parsed.data, actor(c));
      return c.redirect(`/admin/certifications/${encodeURIComponent(campaign.id)}?done=opened`, 303);
    } catch (err) {
      return campaignsPage(c, refusal(err));
    }
  });
  const campaignPage = async (c: Context<AppEnv>, id: string, error?: string) => {
    const found = await deps.lifecycle.getCampaign(id);
    if (!found) return notFound(c, 'campaign');
    const { campaign, items } = await getCampaign(deps, id);
    const n = notice(c);
    return c.html(
      <CampaignPage
        user={me(c)}
        csrf={csrf(c)}
        campaign={campaign}
        items={items}
        {...(n ? { notice: n } : {})}
        {...(error ? { error } : {})}
      />,
      error ? 400 : 200,
    );
  };
  app.get('/admin/certifications/:id', (c) => campaignPage(c, c.req.param('id')));
  app.post('/admin/certifications/:id/close', async (c) => {
    await readForm(c);
    const id = c.req.param('id');
    try {
      await closeCampaign(deps, id, actor(c));
    } catch (err) {
      if (err instanceof OAuthError && err.code === 'not_found') return notFound(c, 'campaign');
      return campaignPage(c, id, refusal(err));
    }
    return c.redirect(`/admin/certifications/${encodeURIComponent(id)}?done=closed`, 303);
  });

  const myPage = async (c: Context<AppEnv>, error?: string) => {
    const n = notice(c);
    return c.html(
      <MyCertificationsPage
        user={me(c)}
        csrf={csrf(c)}
        items={await deps.lifecycle.openItemsOf(me(c).id)}
        {...(n ? { notice: n } : {})}
        {...(error ? { error } : {})}
      />,
      error ? 400 : 200,
    );
  };
  app.get('/my/certifications', (c) => myPage(c));
  app.post('/my/certifications/:id/attest', async (c) => {
    const body = await readForm(c);
    const parsed = AttestSchema.safeParse({ decision: field(body, 'decision') });
    if (!parsed.success) return myPage(c, firstIssue(parsed.error));
    try {
      await attest(deps, c.req.param('id'), parsed.data, actor(c));
    } catch (err) {
      if (err instanceof OAuthError && err.code === 'forbidden') {
        return c.html(<MessagePage title="Not allowed" message={err.message} user={me(c)} csrf={csrf(c)} />, 403);
      }
      return myPage(c, refusal(err));
    }
    return c.redirect(`/my/certifications?done=${parsed.data.decision}`, 303);
  });

  const usagePage = async (c: Context<AppEnv>, id: string, days: number, error?: string) => {
    const client = await deps.clients.get(id);
    if (client?.kind !== 'agent') return notFound(c, 'agent');
    const usage = await agentUsage(deps, id, days);
    const n = notice(c);
    return c.html(
      <UsagePage
        user={me(c)}
        csrf={csrf(c)}
        agentName={client.name}
        usage={usage}
        policy={suggestedPolicy(id, usage.resources.unused)}
        {...(n ? { notice: n } : {})}
        {...(error ? { error } : {})}
      />,
      error ? 400 : 200,
    );
  };
  app.get('/admin/clients/:id/usage', async (c) => {
    const q = UsageQuerySchema.safeParse(c.req.query());
    return usagePage(c, c.req.param('id'), q.success ? q.data.days : 30, q.success ? undefined : firstIssue(q.error));
  });
  app.post('/admin/delegations/:id/reduce', async (c) => {
    const body = await readForm(c);
    const q = UsageQuerySchema.safeParse({ days: field(body, 'days') || undefined });
    const days = q.success ? q.data.days : 30;
    const d = await deps.delegations.get(c.req.param('id'));
    if (!d) return notFound(c, 'delegation');
    try {
      await reduceDelegation(deps, d.id, { to: 'used', days }, { ...actor(c), admin: true });
    } catch (err) {
      return usagePage(c, d.agentId, days, refusal(err));
    }
    return c.redirect(`/admin/clients/${encodeURIComponent(d.agentId)}/usage?days=${days}&done=reduced`, 303);
  });
  // The person's own delegation, narrowed to what the agent used in the last 30 days.
  app.post('/my/delegations/:id/reduce', async (c) => {
    await readForm(c);
    const id = c.req.param('id');
    try {
      await reduceDelegation(deps, id, { to: 'used', days: 30 }, { ...actor(c), admin: false });
    } catch (err) {
      if (err instanceof OAuthError && err.code === 'not_found') return notFound(c, 'delegation');
      return c.html(<MessagePage title="Not reduced" message={refusal(err)} user={me(c)} csrf={csrf(c)} />, 400);
    }
    return c.redirect('/my/delegations?done=reduced', 303);
  });
  return app;
}
