import { z } from 'zod';
import type { Campaign, CampaignItem, Decision } from '../../db/stores/lifecycle-store.js';
import { credentialKindOf } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import { newId } from '../tokens/random.js';
import { type LifecycleDeps, ownerStatusOf, reduceDelegation, suspendInTx } from './agent-lifecycle.js';
import { agentUsage, usageView } from './usage.js';

/**
 * Certification campaigns (README "Agent lifecycle: owners, certification and right-sizing"): an
 * administrator (or the schedule) opens one; each active agent becomes an item with its owner and a
 * snapshot of what it holds and used; the owner (or an administrator) attests keep, reduce or remove;
 * items left unattested when the campaign closes (deadline or "close now") are suspended.
 */

const DAY = 86_400;

export const OpenCampaignSchema = z
  .object({
    name: z.string().trim().min(1).max(200),
    /** Epoch seconds; must be in the future. */
    deadline: z.number().int().positive(),
    usage_days: z.number().int().min(1).max(365).default(30),
  })
  .strict();

export const AttestSchema = z
  .object({
    decision: z.enum(['keep', 'reduce', 'remove']),
    /** reduce: per delegation id, the grants to keep; absent: what each delegation used in the window. */
    keep: z
      .record(z.string().max(100), z.record(z.url().max(2048), z.array(z.string().min(1).max(128)).max(100)))
      .optional(),
  })
  .strict()
  .refine((a) => a.decision === 'reduce' || a.keep === undefined, {
    path: ['keep'],
    message: 'only a reduce decision takes keep',
  });

export const ExportQuerySchema = z.object({ format: z.enum(['csv', 'json']).default('json') });

/** Who acts on a campaign: a person (owner or administrator) or Errand's own schedule and deadline. */
export interface CampaignActor {
  userId: string | null;
  admin: boolean;
  requestId: string;
  address?: string;
}

export type ItemSnapshot = ReturnType<typeof snapshotOf> extends Promise<infer T> ? T : never;

async function snapshotOf(deps: LifecycleDeps, agentId: string, days: number) {
  const client = (await deps.clients.get(agentId))!;
  const owner = client.ownerId ? await deps.users.get(client.ownerId) : null;
  const usage = usageView(await agentUsage(deps, agentId, days));
  const kind = credentialKindOf(client.authMethod);
  return {
    agent_name: client.name,
    owner_username: owner?.username ?? null,
    owner_status: ownerStatusOf(client, owner),
    credential_kind: kind,
    static_secret: kind === 'client_secret',
    usage,
  };
}

export function campaignView(c: Campaign) {
  return {
    campaign_id: c.id,
    name: c.name,
    status: c.status,
    opened_by: c.openedBy,
    created_at: c.createdAt,
    deadline: c.deadline,
    usage_days: c.usageDays,
    closed_at: c.closedAt,
  };
}

export function itemView(i: CampaignItem) {
  return {
    item_id: i.id,
    campaign_id: i.campaignId,
    agent_id: i.agentId,
    owner_id: i.ownerId,
    snapshot: i.snapshot as ItemSnapshot,
    decision: i.decision,
    decided_by: i.decidedBy,
    decided_at: i.decidedAt,
    outcome: i.outcome,
  };
}

/** Opens a campaign over every active agent; recorded as `campaign.opened`. */
export async function openCampaign(
  deps: LifecycleDeps,
  input: z.output<typeof OpenCampaignSchema>,
  by: CampaignActor,
): Promise<Campaign> {
  const now = deps.clock.now();
  if (input.deadline <= now) throw new OAuthError('invalid_request', 'deadline: must be in the future');
  const agents = (await deps.clients.list()).filter((c) => c.kind === 'agent' && c.status === 'active');
  const campaign: Campaign = {
    id: newId('cmp'),
    name: input.name,
    status: 'open',
    openedBy: by.userId ?? 'schedule',
    createdAt: now,
    deadline: input.deadline,
    usageDays: input.usage_days,
    closedAt: null,
  };
  const items: CampaignItem[] = [];
  for (const agent of agents) {
    items.push({
      id: newId('cit'),
      campaignId: campaign.id,
      agentId: agent.id,
      ownerId: agent.ownerId,
      snapshot: await snapshotOf(deps, agent.id, input.usage_days),
      decision: null,
      decidedBy: null,
      decidedAt: null,
      outcome: null,
    });
  }
  await deps.db.write(async (tx) => {
    await deps.lifecycle.insertCampaign(campaign, items, tx);
    await deps.audit.append(
      {
        type: 'campaign.opened',
        result: 'allowed',
        userId: by.userId,
        requestId: by.requestId,
        details: {
          campaign_id: campaign.id,
          name: campaign.name,
          items: items.length,
          deadline: campaign.deadline,
          ...(by.address ? { address: by.address } : {}),
        },
      },
      now,
      tx,
    );
  });
  return campaign;
}

/** The campaign and its items; not_found when there is none. */
export async function getCampaign(deps: LifecycleDeps, id: string) {
  const campaign = await deps.lifecycle.getCampaign(id);
  if (!campaign) throw new OAuthError('not_found', 'no such campaign');
  return { campaign, items: await deps.lifecycle.items(id) };
}

/**
 * The owner (or an administrator) attests one item of an open campaign: keep records it; reduce
 * narrows each of the agent's delegations (to `keep`, or to what it used in the campaign's window);
 * remove suspends the agent (its tasks end). Recorded as `certification.attested`.
 */
export async function attest(
  deps: LifecycleDeps,
  itemId: string,
  input: z.output<typeof AttestSchema>,
  by: CampaignActor & { userId: string },
): Promise<CampaignItem> {
  const item = await deps.lifecycle.getItem(itemId);
  if (!item) throw new OAuthError('not_found', 'no such certification item');
  if (!by.admin && item.ownerId !== by.userId) {
    throw new OAuthError('forbidden', "only the agent's owner or an administrator can attest this item");
  }
  const campaign = await deps.lifecycle.getCampaign(item.campaignId);
  if (campaign?.status !== 'open') throw new OAuthError('conflict', 'the campaign is closed');
  if (item.decision) throw new OAuthError('conflict', `the item is already decided (${item.decision})`);
  const agent = await deps.clients.get(item.agentId);
  if (!agent) throw new OAuthError('conflict', 'the agent no longer exists');
  let outcome: Record<string, unknown> | null = null;
  if (input.decision === 'reduce') {
    const kept: Record<string, Record<string, string[]>> = {};
    for (const d of await deps.delegations.listForAgent(agent.id)) {
      if (d.status !== 'active') continue;
      const grants = input.keep?.[d.id];
      kept[d.id] = await reduceDelegation(
        deps,
        d.id,
        grants ? { grants, days: campaign.usageDays } : { to: 'used', days: campaign.usageDays },
        { userId: by.userId, admin: true, requestId: by.requestId, ...(by.address ? { address: by.address } : {}) },
      );
    }
    outcome = { kept };
  }
  const now = deps.clock.now();
  const events = await deps.db.write(async (tx) => {
    const decided = await deps.lifecycle.decide(
      item.id,
      { decision: input.decision, decidedBy: by.userId, decidedAt: now, outcome },
      tx,
    );
    if (!decided) throw new OAuthError('conflict', 'the item was decided meanwhile');
    await deps.audit.append(
      {
        type: 'certification.attested',
        result: 'allowed',
        userId: by.userId,
        clientId: item.agentId,
        requestId: by.requestId,
        details: {
          campaign_id: item.campaignId,
          item_id: item.id,
          decision: input.decision,
          ...(by.address ? { address: by.address } : {}),
        },
      },
      now,
      tx,
    );
    if (input.decision !== 'remove') return [];
    return suspendInTx(deps, tx, agent, 'certification_removed', {
      userId: by.userId,
      requestId: by.requestId,
      details: { campaign_id: item.campaignId, item_id: item.id },
    });
  });
  deps.taskService.flush(events);
  return (await deps.lifecycle.getItem(item.id))!;
}

/**
 * Closes a campaign: every item still undecided lapses (`certification.lapsed`) and its agent is
 * suspended (reason `certification_lapsed`, its tasks end); then `campaign.closed`. Used by the
 * deadline (maintenance) and an administrator's "close now".
 */
export async function closeCampaign(deps: LifecycleDeps, id: string, by: CampaignActor): Promise<{ lapsed: number }> {
  const campaign = await deps.lifecycle.getCampaign(id);
  if (!campaign) throw new OAuthError('not_found', 'no such campaign');
  if (campaign.status !== 'open') throw new OAuthError('conflict', 'the campaign is already closed');
  let lapsed = 0;
  for (const item of await deps.lifecycle.items(id)) {
    if (item.decision) continue;
    const agent = await deps.clients.get(item.agentId);
    const events = await deps.db.write(async (tx) => {
      const now = deps.clock.now();
      const decision: Decision = 'lapsed';
      if (!(await deps.lifecycle.decide(item.id, { decision, decidedBy: null, decidedAt: now, outcome: null }, tx)))
        return [];
      lapsed += 1;
      await deps.audit.append(
        {
          type: 'certification.lapsed',
          result: 'allowed',
          userId: by.userId,
          clientId: item.agentId,
          reason: 'not_attested',
          requestId: by.requestId,
          details: { campaign_id: id, item_id: item.id, owner_id: item.ownerId },
        },
        now,
        tx,
      );
      return agent
        ? suspendInTx(deps, tx, agent, 'certification_lapsed', {
            userId: by.userId,
            requestId: by.requestId,
            details: { campaign_id: id, item_id: item.id },
          })
        : [];
    });
    deps.taskService.flush(events);
  }
  await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    if (!(await deps.lifecycle.closeCampaign(id, now, tx))) return;
    await deps.audit.append(
      {
        type: 'campaign.closed',
        result: 'allowed',
        userId: by.userId,
        requestId: by.requestId,
        details: {
          campaign_id: id,
          lapsed,
          by: by.userId ? 'admin' : 'deadline',
          ...(by.address ? { address: by.address } : {}),
        },
      },
      now,
      tx,
    );
  });
  return { lapsed };
}

/**
 * Maintenance: closes campaigns whose deadline passed, and opens a scheduled one when
 * ERRAND_CERTIFICATION_SCHEDULE_DAYS is set and the latest campaign is that old (or there is none).
 */
export async function runCampaignSchedule(
  deps: LifecycleDeps,
  scheduleDays: number,
  requestId: string,
): Promise<{ closed: number; opened: boolean }> {
  const now = deps.clock.now();
  const due = await deps.lifecycle.dueCampaigns(now);
  let closed = 0;
  for (const c of due) {
    try {
      await closeCampaign(deps, c.id, { userId: null, admin: true, requestId });
      closed += 1;
    } catch (err) {
      // An administrator closed it a moment earlier: nothing left to do.
      if (!(err instanceof OAuthError && err.code === 'conflict')) throw err;
    }
  }
  let opened = false;
  if (scheduleDays > 0) {
    const latest = await deps.lifecycle.latestCampaign();
    if (!latest || latest.createdAt + scheduleDays * DAY <= now) {
      const date = new Date(now * 1000).toISOString().slice(0, 10);
      await openCampaign(
        deps,
        {
          name: `Scheduled certification ${date}`,
          deadline: now + SCHEDULED_DEADLINE_DAYS * DAY,
          usage_days: scheduleDays,
        },
        { userId: null, admin: true, requestId },
      );
      opened = true;
    }
  }
  return { closed, opened };
}

/** Days a scheduled campaign stays open. */
export const SCHEDULED_DEADLINE_DAYS = 14;

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : Array.isArray(v) ? v.join(' ') : String(v);
  // Quote every cell; neutralise spreadsheet formulas.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return `"${safe.replace(/"/g, '""')}"`;
}

/** One row per item, for auditors: the snapshot's findings and the decision. */
export function exportRows(campaign: Campaign, items: CampaignItem[]) {
  return items.map((i) => {
    const s = i.snapshot as ItemSnapshot;
    const unused = s.usage.delegations.flatMap((d) =>
      Object.entries(d.resources).flatMap(([r, x]) => x.unused.map((scope) => `${r}#${scope}`)),
    );
    return {
      campaign_id: campaign.id,
      campaign_name: campaign.name,
      item_id: i.id,
      agent_id: i.agentId,
      agent_name: s.agent_name,
      owner_id: i.ownerId,
      owner_username: s.owner_username,
      credential_kind: s.credential_kind,
      static_secret: s.static_secret,
      delegations: s.usage.delegations.length,
      granted_unused: unused,
      last_used_at: s.usage.last_used_at,
      decision: i.decision,
      decided_by: i.decidedBy,
      decided_at: i.decidedAt,
    };
  });
}

const EXPORT_COLUMNS = [
  'campaign_id',
  'campaign_name',
  'item_id',
  'agent_id',
  'agent_name',
  'owner_id',
  'owner_username',
  'credential_kind',
  'static_secret',
  'delegations',
  'granted_unused',
  'last_used_at',
  'decision',
  'decided_by',
  'decided_at',
] as const;

/** The rows as CSV (RFC 4180, CRLF), every cell quoted. */
export function exportCsv(rows: ReturnType<typeof exportRows>): string {
  const lines = [EXPORT_COLUMNS.join(',')];
  for (const r of rows) lines.push(EXPORT_COLUMNS.map((c) => csvCell(r[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
