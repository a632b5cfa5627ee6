import { and, count, desc, eq, gt, inArray, type SQL } from 'drizzle-orm';
import type { Delegation, DelegationRequest, DelegationStatus } from '../../broker/core/delegation.js';
import { affected, type Db, type Tx } from '../open.js';
import { selectOneBy } from '../prepared.js';
import { backchannelRequests, delegations } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

const delegationById = selectOneBy(delegations, delegations.id);

type Row = typeof delegations.$inferSelect;

export interface StoredDelegation extends Delegation {
  requested: DelegationRequest;
}

function toDelegation(row: Row): StoredDelegation {
  return {
    id: row.id,
    userId: row.userId,
    agentId: row.agentId,
    status: row.status,
    requested: parseJson<DelegationRequest>(row.requested, {} as DelegationRequest),
    grants: parseJson<Record<string, string[]>>(row.grants, {}),
    authorizationDetails: parseJson(row.authorizationDetails, null),
    maxTokenTtl: row.maxTokenTtl,
    maxDepth: row.maxDepth,
    subAgents: parseJson<string[] | null>(row.subAgents, null),
    expiresAt: row.expiresAt,
    createdAt: row.createdAt,
    decidedAt: row.decidedAt,
    revokedAt: row.revokedAt,
    source: row.source,
    bindingMessage: row.bindingMessage,
    credentialJti: row.credentialJti,
    minAssurance: (row.minAssurance as Delegation['minAssurance']) ?? null,
  };
}

function toRow(d: StoredDelegation): Row {
  return {
    ...d,
    requested: toJson(d.requested),
    grants: toJson(d.grants),
    authorizationDetails: d.authorizationDetails ? toJson(d.authorizationDetails) : null,
    subAgents: d.subAgents ? toJson(d.subAgents) : null,
    minAssurance: d.minAssurance ?? null,
  };
}

export interface BackchannelRequest {
  authReqIdHash: string;
  delegationId: string;
  clientId: string;
  createdAt: number;
  expiresAt: number;
  interval: number;
  lastPolledAt: number | null;
  redeemedAt: number | null;
}

/** An administrator's filter over every delegation. */
export interface DelegationFilter {
  userId?: string;
  agentId?: string;
  status?: DelegationStatus;
  limit: number;
}

export class DelegationStore {
  constructor(private readonly db: Db) {}

  async get(id: string, tx?: Tx): Promise<StoredDelegation | null> {
    const row = await delegationById(tx ?? this.db.q, id);
    return row ? toDelegation(row) : null;
  }

  async insert(d: StoredDelegation, tx: Tx): Promise<void> {
    await tx.insert(delegations).values(toRow(d));
  }

  async listForUser(userId: string, status?: DelegationStatus): Promise<StoredDelegation[]> {
    const rows = await this.db.q
      .select()
      .from(delegations)
      .where(
        status ? and(eq(delegations.userId, userId), eq(delegations.status, status)) : eq(delegations.userId, userId),
      )
      .orderBy(desc(delegations.createdAt));
    return rows.map(toDelegation);
  }

  /** Every delegation matching the filter, newest first (the administrator's view across people). */
  async list(f: DelegationFilter): Promise<StoredDelegation[]> {
    const where: SQL[] = [];
    if (f.userId) where.push(eq(delegations.userId, f.userId));
    if (f.agentId) where.push(eq(delegations.agentId, f.agentId));
    if (f.status) where.push(eq(delegations.status, f.status));
    const rows = await this.db.q
      .select()
      .from(delegations)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(delegations.createdAt))
      .limit(f.limit);
    return rows.map(toDelegation);
  }

  async listForAgent(agentId: string, tx?: Tx): Promise<StoredDelegation[]> {
    const rows = await (tx ?? this.db.q).select().from(delegations).where(eq(delegations.agentId, agentId));
    return rows.map(toDelegation);
  }

  /** Every pending or active delegation, of one person when `userId` is given. */
  async listLive(tx?: Tx, userId?: string): Promise<StoredDelegation[]> {
    const live = inArray(delegations.status, ['pending', 'active']);
    const rows = await (tx ?? this.db.q)
      .select()
      .from(delegations)
      .where(userId ? and(live, eq(delegations.userId, userId)) : live);
    return rows.map(toDelegation);
  }

  /** A user's active delegations to one agent (on-behalf-of exchange picks the one that covers a resource). */
  async activeFor(agentId: string, userId: string, tx?: Tx): Promise<StoredDelegation[]> {
    const rows = await (tx ?? this.db.q)
      .select()
      .from(delegations)
      .where(and(eq(delegations.userId, userId), eq(delegations.status, 'active'), eq(delegations.agentId, agentId)))
      .orderBy(desc(delegations.createdAt));
    return rows.map(toDelegation);
  }

  /** Writes a decision on a pending delegation; false when it was no longer pending. */
  async decide(
    id: string,
    patch: Pick<
      Delegation,
      | 'status'
      | 'grants'
      | 'authorizationDetails'
      | 'maxTokenTtl'
      | 'maxDepth'
      | 'subAgents'
      | 'expiresAt'
      | 'decidedAt'
      | 'credentialJti'
    > &
      Partial<Pick<Delegation, 'minAssurance'>>,
    tx: Tx,
  ): Promise<boolean> {
    const res = await tx
      .update(delegations)
      .set({
        status: patch.status,
        maxTokenTtl: patch.maxTokenTtl,
        maxDepth: patch.maxDepth,
        expiresAt: patch.expiresAt,
        decidedAt: patch.decidedAt,
        credentialJti: patch.credentialJti,
        grants: toJson(patch.grants),
        authorizationDetails: patch.authorizationDetails ? toJson(patch.authorizationDetails) : null,
        subAgents: patch.subAgents ? toJson(patch.subAgents) : null,
        ...(patch.minAssurance !== undefined ? { minAssurance: patch.minAssurance } : {}),
      })
      .where(and(eq(delegations.id, id), eq(delegations.status, 'pending')));
    return affected(res) === 1;
  }

  /** How many delegations are approved, unrevoked and unexpired now (for the metrics scrape). */
  async countActive(now: number): Promise<number> {
    const [row] = await this.db.q
      .select({ n: count() })
      .from(delegations)
      .where(and(eq(delegations.status, 'active'), gt(delegations.expiresAt, now)));
    return row?.n ?? 0;
  }

  /** Narrows an active delegation's grants and tools (right-sizing); false when it is no longer active. */
  async narrow(
    id: string,
    grants: Record<string, string[]>,
    details: Delegation['authorizationDetails'],
    tx: Tx,
  ): Promise<boolean> {
    const res = await tx
      .update(delegations)
      .set({ grants: toJson(grants), authorizationDetails: details && details.length > 0 ? toJson(details) : null })
      .where(and(eq(delegations.id, id), eq(delegations.status, 'active')));
    return affected(res) === 1;
  }

  async revoke(id: string, now: number, tx: Tx): Promise<boolean> {
    const res = await tx
      .update(delegations)
      .set({ status: 'revoked', revokedAt: now })
      .where(and(eq(delegations.id, id), inArray(delegations.status, ['active', 'pending'])));
    return affected(res) === 1;
  }

  // Backchannel (CIBA) requests -------------------------------------------------------------------

  async insertBackchannel(req: BackchannelRequest, tx: Tx): Promise<void> {
    await tx.insert(backchannelRequests).values(req);
  }

  async getBackchannel(hash: string, tx?: Tx): Promise<BackchannelRequest | null> {
    const [row] = await (tx ?? this.db.q)
      .select()
      .from(backchannelRequests)
      .where(eq(backchannelRequests.authReqIdHash, hash))
      .limit(1);
    return row ?? null;
  }

  async backchannelForDelegation(delegationId: string): Promise<BackchannelRequest | null> {
    const [row] = await this.db.q
      .select()
      .from(backchannelRequests)
      .where(eq(backchannelRequests.delegationId, delegationId))
      .limit(1);
    return row ?? null;
  }

  async pollBackchannel(
    hash: string,
    patch: Partial<Pick<BackchannelRequest, 'lastPolledAt' | 'interval' | 'redeemedAt'>>,
    tx: Tx,
  ) {
    await tx.update(backchannelRequests).set(patch).where(eq(backchannelRequests.authReqIdHash, hash));
  }
}
