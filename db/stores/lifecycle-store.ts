import { and, asc, desc, eq, gte, inArray, isNull, lte, max, or, sql } from 'drizzle-orm';
import { affected, type Db, type Tx } from '../open.js';
import { agentLifecycle, certificationCampaigns, certificationItems, issuedTokens, tasks } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

/** What Errand recorded about an agent's owner and suspension (README "Agent lifecycle"). */
export interface AgentLifecycle {
  clientId: string;
  lapsedOwnerId: string | null;
  ownerLapsedAt: number | null;
  suspendedAt: number | null;
  suspendedReason: string | null;
}

/** One group of tokens issued to an agent: same delegation, audience, scope and tools. */
export interface IssuedUse {
  /** The client the tokens were issued to: the agent, or a sub-agent under its delegation. */
  clientId: string;
  delegationId: string | null;
  audience: string;
  scope: string;
  authorizationDetails: string | null;
  lastIssuedAt: number;
}

export interface Campaign {
  id: string;
  name: string;
  status: 'open' | 'closed';
  openedBy: string;
  createdAt: number;
  deadline: number;
  usageDays: number;
  closedAt: number | null;
}

export type Decision = 'keep' | 'reduce' | 'remove' | 'lapsed';

export interface CampaignItem<S = unknown> {
  id: string;
  campaignId: string;
  agentId: string;
  ownerId: string | null;
  snapshot: S;
  decision: Decision | null;
  decidedBy: string | null;
  decidedAt: number | null;
  outcome: Record<string, unknown> | null;
}

function toItem(row: typeof certificationItems.$inferSelect): CampaignItem {
  return {
    ...row,
    snapshot: parseJson<unknown>(row.snapshot, {}),
    outcome: parseJson<Record<string, unknown> | null>(row.outcome, null),
  };
}

/** Agent lifecycle rows, certification campaigns and the usage read of issued tokens. */
export class LifecycleStore {
  constructor(private readonly db: Db) {}

  /**
   * The tokens issued since `since` to an agent, and to any agent working under its delegations
   * (sub-agents act through tasks of the delegation), grouped (one row per distinct client,
   * delegation, audience, scope and tools) with the latest issue time. One query, through the
   * client and task indexes of `issued_tokens` and the delegation index of `tasks`.
   */
  async usesSince(agentId: string, delegationIds: string[], since: number): Promise<IssuedUse[]> {
    const underDelegations =
      delegationIds.length > 0
        ? inArray(
            issuedTokens.taskId,
            this.db.q.select({ id: tasks.id }).from(tasks).where(inArray(tasks.delegationId, delegationIds)),
          )
        : undefined;
    return this.db.q
      .select({
        clientId: issuedTokens.clientId,
        delegationId: issuedTokens.delegationId,
        audience: issuedTokens.audience,
        scope: issuedTokens.scope,
        authorizationDetails: issuedTokens.authorizationDetails,
        lastIssuedAt: sql<number>`${max(issuedTokens.issuedAt)}`.mapWith(Number),
      })
      .from(issuedTokens)
      .where(
        and(
          gte(issuedTokens.issuedAt, since),
          underDelegations
            ? or(eq(issuedTokens.clientId, agentId), underDelegations)
            : eq(issuedTokens.clientId, agentId),
        ),
      )
      .groupBy(
        issuedTokens.clientId,
        issuedTokens.delegationId,
        issuedTokens.audience,
        issuedTokens.scope,
        issuedTokens.authorizationDetails,
      );
  }

  async lifecycleOf(ids: string[], tx?: Tx): Promise<Map<string, AgentLifecycle>> {
    if (ids.length === 0) return new Map();
    const rows = await (tx ?? this.db.q).select().from(agentLifecycle).where(inArray(agentLifecycle.clientId, ids));
    return new Map(rows.map((r) => [r.clientId, r]));
  }

  /** Records that the owner lapsed (kept if already recorded for the same owner). */
  async markLapsed(clientId: string, ownerId: string | null, at: number, tx: Tx): Promise<void> {
    await tx
      .insert(agentLifecycle)
      .values({ clientId, lapsedOwnerId: ownerId, ownerLapsedAt: at })
      .onConflictDoUpdate({
        target: agentLifecycle.clientId,
        set: { lapsedOwnerId: ownerId, ownerLapsedAt: at },
        setWhere: sql`${agentLifecycle.ownerLapsedAt} IS NULL OR ${agentLifecycle.lapsedOwnerId} IS DISTINCT FROM ${ownerId}`,
      });
  }

  /** Forgets an owner lapse (a new owner was assigned, or the owner is active again). */
  async clearLapse(clientId: string, tx: Tx): Promise<void> {
    await tx
      .update(agentLifecycle)
      .set({ lapsedOwnerId: null, ownerLapsedAt: null })
      .where(eq(agentLifecycle.clientId, clientId));
  }

  async markSuspended(clientId: string, reason: string, at: number, tx: Tx): Promise<void> {
    await tx
      .insert(agentLifecycle)
      .values({ clientId, suspendedAt: at, suspendedReason: reason })
      .onConflictDoUpdate({ target: agentLifecycle.clientId, set: { suspendedAt: at, suspendedReason: reason } });
  }

  // Certification campaigns -----------------------------------------------------------------------

  async insertCampaign(c: Campaign, items: CampaignItem[], tx: Tx): Promise<void> {
    await tx.insert(certificationCampaigns).values(c);
    for (const item of items) {
      await tx.insert(certificationItems).values({
        ...item,
        snapshot: toJson(item.snapshot),
        outcome: item.outcome ? toJson(item.outcome) : null,
      });
    }
  }

  async getCampaign(id: string, tx?: Tx): Promise<Campaign | null> {
    const [row] = await (tx ?? this.db.q)
      .select()
      .from(certificationCampaigns)
      .where(eq(certificationCampaigns.id, id));
    return row ?? null;
  }

  async listCampaigns(): Promise<Campaign[]> {
    return this.db.q.select().from(certificationCampaigns).orderBy(desc(certificationCampaigns.createdAt)).limit(200);
  }

  async latestCampaign(): Promise<Campaign | null> {
    const [row] = await this.db.q
      .select()
      .from(certificationCampaigns)
      .orderBy(desc(certificationCampaigns.createdAt))
      .limit(1);
    return row ?? null;
  }

  /** Open campaigns whose deadline has passed. */
  async dueCampaigns(now: number): Promise<Campaign[]> {
    return this.db.q
      .select()
      .from(certificationCampaigns)
      .where(and(eq(certificationCampaigns.status, 'open'), lte(certificationCampaigns.deadline, now)));
  }

  async closeCampaign(id: string, now: number, tx: Tx): Promise<boolean> {
    const res = await tx
      .update(certificationCampaigns)
      .set({ status: 'closed', closedAt: now })
      .where(and(eq(certificationCampaigns.id, id), eq(certificationCampaigns.status, 'open')));
    return affected(res) === 1;
  }

  async items(campaignId: string, tx?: Tx): Promise<CampaignItem[]> {
    const rows = await (tx ?? this.db.q)
      .select()
      .from(certificationItems)
      .where(eq(certificationItems.campaignId, campaignId))
      .orderBy(asc(certificationItems.id));
    return rows.map(toItem);
  }

  async getItem(id: string, tx?: Tx): Promise<CampaignItem | null> {
    const [row] = await (tx ?? this.db.q).select().from(certificationItems).where(eq(certificationItems.id, id));
    return row ? toItem(row) : null;
  }

  /** The items an owner still has to attest in open campaigns. */
  async openItemsOf(ownerId: string): Promise<CampaignItem[]> {
    const rows = await this.db.q
      .select({ item: certificationItems })
      .from(certificationItems)
      .innerJoin(certificationCampaigns, eq(certificationCampaigns.id, certificationItems.campaignId))
      .where(
        and(
          eq(certificationItems.ownerId, ownerId),
          eq(certificationCampaigns.status, 'open'),
          isNull(certificationItems.decision),
        ),
      );
    return rows.map((r) => toItem(r.item));
  }

  /** Records a decision on an item still undecided; false when someone decided first. */
  async decide(
    id: string,
    d: { decision: Decision; decidedBy: string | null; decidedAt: number; outcome: Record<string, unknown> | null },
    tx: Tx,
  ): Promise<boolean> {
    const res = await tx
      .update(certificationItems)
      .set({ ...d, outcome: d.outcome ? toJson(d.outcome) : null })
      .where(and(eq(certificationItems.id, id), isNull(certificationItems.decision)));
    return affected(res) === 1;
  }
}
