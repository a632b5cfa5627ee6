import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { assuranceLevel, credentialKindOf } from '../broker/core/client.js';
import { OAuthError } from '../broker/core/errors.js';
import type { Engine } from '../broker/engine.js';
import type { AppEnv } from '../broker/http/types.js';
import { setClientStatus } from '../broker/services/admin.js';
import { lifecycleViews } from '../broker/services/agent-lifecycle.js';
import { auditEventView } from '../broker/services/api-views.js';
import { updateClient } from '../broker/services/client-admin.js';
import { decideClient } from '../broker/services/client-approval.js';
import {
  CreateInitialAccessTokenSchema,
  issueInitialAccessToken,
  revokeInitialAccessToken,
} from '../broker/services/initial-access-tokens.js';
import { namesOf } from '../broker/services/oversight.js';
import { createPeerRegistry } from '../broker/services/peers/peers.js';
import type { AuditFilter } from '../db/stores/audit-store.js';
import { adminClientRoutes } from './admin-client-routes.js';
import { adminIssuerRoutes } from './admin-issuer-routes.js';
import { adminOversightRoutes } from './admin-oversight-routes.js';
import { approvalFromForm } from './components/delegation-controls.js';
import { adminActor, firstValue, readForm } from './forms.js';
import { intakePageRoutes } from './intake-routes.js';
import { lifecycleRoutes } from './lifecycle-routes.js';
import { AgentsPage } from './pages/admin-agents.js';
import { type AuditFilterValues, AuditPage } from './pages/admin-audit.js';
import { AdminHomePage } from './pages/admin-home.js';
import { KeysPage } from './pages/admin-misc.js';
import { PeersPage } from './pages/admin-peers.js';
import { RegistrationTokensPage } from './pages/admin-registration.js';
import { DelegationPage, DelegationsPage } from './pages/delegations.js';
import { MessagePage } from './pages/message.js';
import { type AgentSummary, LIVE_REQUESTS_SCRIPT, RequestCard, RequestsPage } from './pages/requests.js';
import { TasksPage, taskForest } from './pages/tasks.js';
import { peoplePageRoutes } from './people-routes.js';
import { policyPageRoutes } from './policy-routes.js';
import { resourceInfo } from './resource-info.js';
import { resourcePageRoutes } from './resource-routes.js';

const first = firstValue;

/** Pages need a session; state-changing forms also their CSRF token. */
function signedIn(role?: 'admin'): MiddlewareHandler<AppEnv> {
  return async function signedInMiddleware(c, next) {
    const user = c.get('user');
    if (!user) return c.redirect(`/signin?next=${encodeURIComponent(c.req.path)}`, 303);
    if (role === 'admin' && user.role !== 'admin') {
      return c.html(
        <MessagePage
          title="Not allowed"
          message="This page is for administrators."
          user={user}
          csrf={c.get('csrfToken') ?? ''}
        />,
        403,
      );
    }
    await next();
  };
}

const form = readForm;

const NOTICES: Record<string, string> = {
  approved: 'Approved. The agent can now collect its credential.',
  denied: 'Denied. The agent has been told.',
  revoked: 'Revoked. Every task under it has ended.',
  reduced: 'Reduced to what the agent used (revoked if it used nothing); the tasks under it have ended.',
  ended: 'The task and its sub-tasks have ended; their tokens no longer work.',
  disabled: 'The agent is disabled: its tasks have ended and its tokens are revoked.',
  enabled: 'The agent is enabled again.',
  owner: 'Owner assigned.',
  'agent-approved': 'Approved. The agent can now obtain tokens.',
  'agent-rejected': 'Rejected. The agent stays disabled.',
  'token-revoked': 'Revoked. Agents can no longer register with it; those it registered stay.',
  rotated: 'The next key will sign once caches have seen it.',
  added: 'Added.',
  deleted: 'Deleted: its tasks have ended, its delegations and tokens are revoked.',
};

/** datetime-local (UTC) ⇄ epoch seconds. */
function toEpoch(v: string): number | undefined {
  if (!v) return undefined;
  const t = Date.parse(`${v}Z`);
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000);
}

function csvCell(v: unknown): string {
  const s =
    v === null || v === undefined
      ? ''
      : Array.isArray(v)
        ? v.join(' ')
        : typeof v === 'object'
          ? JSON.stringify(v)
          : String(v);
  // Quote every cell; neutralise spreadsheet formulas.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return `"${safe.replace(/"/g, '""')}"`;
}

/** The signed-in pages: a user's requests, delegations and tasks; an administrator's inventory. */
export function pageRoutes(deps: Engine) {
  const app = new Hono<AppEnv>();
  const csrf = (c: Context<AppEnv>) => c.get('csrfToken') ?? '';
  const me = (c: Context<AppEnv>) => c.get('user')!;

  app.get('/assets/live-requests.js', (c) =>
    c.body(LIVE_REQUESTS_SCRIPT, 200, {
      'Content-Type': 'text/javascript; charset=utf-8',
      'Cache-Control': 'no-cache',
    }),
  );

  const anyone = signedIn();
  const admins = signedIn('admin');
  app.use('/my/*', anyone);
  // '/admin/*' also matches '/admin' itself, the landing page every signed-in person gets.
  app.use('/admin/*', (c, next) => (c.req.path === '/admin' ? anyone(c, next) : admins(c, next)));

  // Resources, people and every person's own password (their own modules, behind the guards above).
  app.route('/', resourcePageRoutes(deps));
  app.route('/', peoplePageRoutes(deps));
  // Certification campaigns, an owner's agents to certify, right-sizing (README "Agent lifecycle").
  app.route('/', lifecycleRoutes(deps));
  app.route('/', policyPageRoutes(deps));

  app.get('/admin', async (c) => {
    const pending = await deps.delegations.listForUser(me(c).id, 'pending');
    return c.html(<AdminHomePage user={me(c)} csrf={csrf(c)} pending={pending.length} />);
  });
  // Clients, trusted issuers, and every task and delegation (admin-client-routes.tsx and siblings).
  app.route('/', adminClientRoutes(deps));
  app.route('/', adminIssuerRoutes(deps));
  app.route('/', adminOversightRoutes(deps));
  app.route('/', intakePageRoutes(deps));

  // A person's pages -------------------------------------------------------------------------------

  const agentSummaries = async (ids: string[]): Promise<Map<string, AgentSummary>> => {
    const users = await deps.users.list();
    const out = new Map<string, AgentSummary>();
    for (const id of new Set(ids)) {
      const client = await deps.clients.get(id);
      out.set(id, {
        id,
        name: client?.name ?? id,
        owner: users.find((u) => u.id === client?.ownerId)?.username ?? null,
        assurance: client ? assuranceLevel(client) : null,
        staticSecret: client ? credentialKindOf(client.authMethod) === 'client_secret' : false,
      });
    }
    return out;
  };

  const requestsPage = async (c: Context<AppEnv>, extra: { error?: string } = {}, status: 200 | 400 = 200) => {
    const pending = await deps.delegations.listForUser(me(c).id, 'pending');
    const agents = await agentSummaries(pending.map((d) => d.agentId));
    const resources = await resourceInfo(
      deps.clients,
      pending.flatMap((d) => Object.keys(d.requested.grants)),
    );
    const notice = NOTICES[c.req.query('done') ?? ''];
    const approvedId = c.req.query('delegation');
    return c.html(
      <RequestsPage
        user={me(c)}
        csrf={csrf(c)}
        requests={pending.map((d) => ({ d, agent: agents.get(d.agentId)! }))}
        resources={resources}
        {...(notice ? { notice } : {})}
        {...(notice && approvedId && /^dlg_[A-Za-z0-9_-]{1,64}$/.test(approvedId) ? { approvedId } : {})}
        {...extra}
      />,
      status,
    );
  };
  app.get('/my/requests', (c) => requestsPage(c));
  app.get('/my/requests/:id/card', async (c) => {
    const d = await deps.delegations.get(c.req.param('id'));
    if (!d || d.userId !== me(c).id || d.status !== 'pending') return c.body(null, 404);
    const agents = await agentSummaries([d.agentId]);
    const resources = await resourceInfo(deps.clients, Object.keys(d.requested.grants));
    return c.html(<RequestCard d={d} agent={agents.get(d.agentId)!} csrf={csrf(c)} resources={resources} />);
  });
  app.post('/my/requests/:id/approve', async (c) => {
    const body = await form(c);
    const d = await deps.delegations.get(c.req.param('id'));
    if (!d || d.userId !== me(c).id) throw new OAuthError('not_found', 'no such request');
    try {
      await deps.delegationService.approve(me(c).id, d.id, approvalFromForm(body, d.requested), c.var.requestId, {
        door: 'web',
        address: c.var.address,
      });
    } catch (err) {
      if (err instanceof OAuthError && err.status < 500) return requestsPage(c, { error: err.message }, 400);
      throw err;
    }
    return c.redirect(`/my/requests?done=approved&delegation=${encodeURIComponent(d.id)}`, 303);
  });
  app.post('/my/requests/:id/deny', async (c) => {
    await form(c);
    await deps.delegationService.deny(me(c).id, c.req.param('id'), c.var.requestId);
    return c.redirect('/my/requests?done=denied', 303);
  });

  app.get('/my/delegations', async (c) => {
    const list = await deps.delegations.listForUser(me(c).id);
    const agents = await agentSummaries(list.map((d) => d.agentId));
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <DelegationsPage
        user={me(c)}
        csrf={csrf(c)}
        list={list.map((d) => ({ d, agentName: agents.get(d.agentId)?.name ?? d.agentId }))}
        {...(notice ? { notice } : {})}
      />,
    );
  });
  app.get('/my/delegations/:id', async (c) => {
    const d = await deps.delegations.get(c.req.param('id'));
    if (!d || d.userId !== me(c).id) {
      return c.html(
        <MessagePage title="Not found" message="There is no such delegation." user={me(c)} csrf={csrf(c)} />,
        404,
      );
    }
    const agent = await deps.clients.get(d.agentId);
    return c.html(<DelegationPage user={me(c)} csrf={csrf(c)} d={d} agentName={agent?.name ?? d.agentId} />);
  });
  app.post('/my/delegations/:id/revoke', async (c) => {
    await form(c);
    await deps.delegationService.revoke({ userId: me(c).id, admin: false }, c.req.param('id'), c.var.requestId);
    return c.redirect('/my/delegations?done=revoked', 303);
  });

  app.get('/my/tasks', async (c) => {
    const tasks = await deps.tasks.listForUser(me(c).id, 500);
    const tokens = await deps.grants.countByTask(tasks.map((t) => t.id));
    const agents = await agentSummaries(tasks.flatMap((t) => t.actorChain));
    const names = new Map([...agents].map(([id, a]) => [id, a.name]));
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <TasksPage
        user={me(c)}
        csrf={csrf(c)}
        forest={taskForest(tasks, tokens)}
        names={names}
        now={deps.clock.now()}
        {...(notice ? { notice } : {})}
      />,
    );
  });
  app.post('/my/tasks/:id/end', async (c) => {
    await form(c);
    await deps.taskService.end({ kind: 'user', userId: me(c).id }, c.req.param('id'), 'canceled', c.var.requestId);
    return c.redirect('/my/tasks?done=ended', 303);
  });

  // An administrator's pages ------------------------------------------------------------------------

  app.get('/admin/agents', async (c) => {
    const now = deps.clock.now();
    const unused = deps.config.ui.unusedAgentDays * 86_400;
    const [clients, users, counts] = await Promise.all([
      deps.clients.list(),
      deps.users.list(),
      deps.grants.countIssuedSince(now - 86_400),
    ]);
    const lifecycle = await lifecycleViews(deps, clients);
    const rows = clients
      .filter((client) => client.kind === 'agent')
      .map((client) => ({
        client,
        tokens24h: counts.get(client.id) ?? 0,
        stale: now - (client.lastUsedAt ?? client.createdAt) >= unused,
        lifecycle: lifecycle.get(client.id) ?? null,
      }));
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <AgentsPage
        user={me(c)}
        csrf={csrf(c)}
        rows={rows}
        users={users}
        unusedDays={deps.config.ui.unusedAgentDays}
        now={now}
        {...(notice ? { notice } : {})}
      />,
    );
  });
  app.post('/admin/agents/:id/status', async (c) => {
    const body = await form(c);
    const status = first(body.status) === 'active' ? 'active' : 'disabled';
    await setClientStatus(deps, c.req.param('id'), status, me(c).id, c.var.requestId, c.var.address);
    return c.redirect(`/admin/agents?done=${status === 'active' ? 'enabled' : 'disabled'}`, 303);
  });
  app.post('/admin/agents/:id/owner', async (c) => {
    const body = await form(c);
    const ownerId = first(body.owner_id) || null;
    // The admin API's edit (audited as client.updated); an active owner clears a lapsed-owner flag.
    await updateClient(deps, c.req.param('id'), { owner_id: ownerId }, adminActor(c));
    return c.redirect('/admin/agents?done=owner', 303);
  });

  app.post('/admin/agents/:id/decision', async (c) => {
    const decision = first((await form(c)).decision) === 'approve' ? 'approve' : 'reject';
    await decideClient(deps, c.req.param('id'), decision, me(c).id, c.var.requestId, c.var.address);
    return c.redirect(`/admin/agents?done=agent-${decision === 'approve' ? 'approved' : 'rejected'}`, 303);
  });

  // Initial access tokens (RFC 7591 §3): agents register themselves with one.
  const tokensPage = async (
    c: Context<AppEnv>,
    extra: { issued?: { name: string; value: string }; error?: string } = {},
  ) => {
    const notice = NOTICES[c.req.query('done') ?? ''];
    const page = (
      <RegistrationTokensPage
        user={me(c)}
        csrf={csrf(c)}
        tokens={await deps.initialAccessTokens.list()}
        now={deps.clock.now()}
        {...(notice ? { notice } : {})}
        {...extra}
      />
    );
    // The page that shows a token's value must not be kept by any cache.
    return c.html(page, extra.error ? 400 : 200, extra.issued ? { 'Cache-Control': 'no-store' } : {});
  };
  app.get('/admin/registration-tokens', (c) => tokensPage(c));
  app.post('/admin/registration-tokens', async (c) => {
    const body = await form(c);
    const num = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : Number(v));
    const hours = num(first(body.expires_in_hours));
    const scope = (first(body.scope) ?? '').split(/\s+/).filter(Boolean);
    const grants = (Array.isArray(body.grant_types) ? body.grant_types : [body.grant_types]).filter(
      (g): g is string => typeof g === 'string',
    );
    const parsed = CreateInitialAccessTokenSchema.safeParse({
      name: first(body.name),
      ...(hours !== undefined ? { expires_in: Math.round(hours * 3600) } : {}),
      ...(num(first(body.max_uses)) !== undefined ? { max_uses: num(first(body.max_uses)) } : {}),
      auto_approve: first(body.auto_approve) === 'true',
      ...(scope.length > 0 ? { scope } : {}),
      grant_types: grants,
    });
    if (!parsed.success) {
      const [issue] = parsed.error.issues;
      return tokensPage(c, { error: `${String(issue?.path[0] ?? '')}: ${issue?.message ?? 'invalid'}` });
    }
    const issued = await issueInitialAccessToken(deps, parsed.data, me(c).id, c.var.requestId);
    return tokensPage(c, { issued: { name: issued.name, value: issued.initial_access_token } });
  });
  app.post('/admin/registration-tokens/:id/revoke', async (c) => {
    await form(c);
    await revokeInitialAccessToken(deps, c.req.param('id'), me(c).id, c.var.requestId);
    return c.redirect('/admin/registration-tokens?done=token-revoked', 303);
  });

  // A2A peers (a2a/peers.ts): registered from their Agent Card, each one a resource.
  const peers = createPeerRegistry(deps);
  const PEER_NOTICES: Record<string, string> = {
    registered: 'Peer registered.',
    refreshed: 'Peer card fetched again.',
  };
  const peersPage = async (c: Context<AppEnv>, extra: { error?: string; cardUrl?: string } = {}) => {
    const notice = PEER_NOTICES[c.req.query('done') ?? ''];
    const page = (
      <PeersPage user={me(c)} csrf={csrf(c)} peers={await peers.list()} {...(notice ? { notice } : {})} {...extra} />
    );
    return c.html(page, extra.error ? 400 : 200);
  };
  const peerAction = async (c: Context<AppEnv>, action: () => Promise<unknown>, done: string, cardUrl?: string) => {
    try {
      await action();
    } catch (err) {
      if (err instanceof OAuthError && err.status < 500)
        return peersPage(c, { error: err.message, ...(cardUrl ? { cardUrl } : {}) });
      throw err;
    }
    return c.redirect(`/admin/peers?done=${done}`, 303);
  };
  app.get('/admin/peers', (c) => peersPage(c));
  app.post('/admin/peers', async (c) => {
    const cardUrl = (first((await form(c)).card_url) ?? '').trim().slice(0, 2048);
    const by = { userId: me(c).id, requestId: c.var.requestId };
    return peerAction(c, () => peers.register(cardUrl, by), 'registered', cardUrl);
  });
  app.post('/admin/peers/:id/refresh', async (c) => {
    await form(c);
    const by = { userId: me(c).id, requestId: c.var.requestId };
    return peerAction(c, () => peers.refresh(c.req.param('id'), by), 'refreshed');
  });

  app.get('/admin/keys', (c) => {
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(<KeysPage user={me(c)} csrf={csrf(c)} keys={deps.keys.describe()} {...(notice ? { notice } : {})} />);
  });
  app.post('/admin/keys/rotate', async (c) => {
    await form(c);
    await deps.keys.rotateNow(deps.config.keys.minPublishAhead, {
      userId: me(c).id,
      requestId: c.var.requestId,
      address: c.var.address,
    });
    return c.redirect('/admin/keys?done=rotated', 303);
  });

  const auditQuery = (c: Context<AppEnv>) => {
    const q = c.req.query();
    const values: AuditFilterValues = {
      type: (q.type ?? '').slice(0, 100),
      agent: (q.agent ?? '').slice(0, 2048),
      user: (q.user ?? '').slice(0, 100),
      task: (q.task ?? '').slice(0, 100),
      result: q.result === 'allowed' || q.result === 'denied' ? q.result : '',
      from: (q.from ?? '').slice(0, 20),
      to: (q.to ?? '').slice(0, 20),
    };
    const from = toEpoch(values.from);
    const to = toEpoch(values.to);
    const filter: AuditFilter = {
      ...(values.type ? { type: values.type } : {}),
      ...(values.agent ? { agentId: values.agent } : {}),
      ...(values.user ? { userId: values.user } : {}),
      ...(values.task ? { taskId: values.task } : {}),
      ...(values.result ? { result: values.result as 'allowed' | 'denied' } : {}),
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
    };
    const query = new URLSearchParams(Object.entries(values).filter(([, v]) => v !== '')).toString();
    return { values, filter, query };
  };
  app.get('/admin/audit', async (c) => {
    const { values, filter, query } = auditQuery(c);
    const [events, names] = await Promise.all([deps.audit.query({ ...filter, limit: 500 }), namesOf(deps)]);
    return c.html(
      <AuditPage user={me(c)} csrf={csrf(c)} events={events} filters={values} query={query} names={names} />,
    );
  });
  app.get('/admin/audit/export', async (c) => {
    const { filter } = auditQuery(c);
    const format = c.req.query('format') === 'csv' ? 'csv' : 'jsonl';
    // The admin API's snake_case envelope (services/api-views.ts), so exports and API answers read alike.
    const events = (await deps.audit.query({ ...filter, limit: 100_000 })).map(auditEventView);
    const stamp = new Date(deps.clock.now() * 1000).toISOString().slice(0, 19).replace(/[:T]/g, '-');
    if (format === 'jsonl') {
      return c.body(events.map((e) => JSON.stringify(e)).join('\n') + (events.length ? '\n' : ''), 200, {
        'Content-Type': 'application/x-ndjson; charset=utf-8',
        'Content-Disposition': `attachment; filename="errand-audit-${stamp}.jsonl"`,
        'Cache-Control': 'no-store',
      });
    }
    const columns = [
      'id',
      'at',
      'type',
      'result',
      'user_id',
      'client_id',
      'actor_chain',
      'task_id',
      'delegation_id',
      'audience',
      'scope',
      'reason',
      'request_id',
    ] as const;
    const lines = [columns.join(','), ...events.map((e) => columns.map((k) => csvCell(e[k])).join(','))];
    return c.body(`${lines.join('\r\n')}\r\n`, 200, {
      'Content-Type': 'text/csv; charset=utf-8',
      'Content-Disposition': `attachment; filename="errand-audit-${stamp}.csv"`,
      'Cache-Control': 'no-store',
    });
  });

  return app;
}
