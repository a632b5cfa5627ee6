import { and, desc, eq, gte, lte, type SQL } from 'drizzle-orm';
import { newId } from '../../broker/tokens/random.js';
import { insertionOrder, jsonArrayHas } from '../dialect.js';
import type { Db, Tx } from '../open.js';
import { insertRow } from '../prepared.js';
import { auditEvents } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

const insertEvent = insertRow(auditEvents);

export interface AuditEventInput {
  type: string;
  result: 'allowed' | 'denied';
  userId?: string | null;
  clientId?: string | null;
  actorChain?: string[];
  taskId?: string | null;
  delegationId?: string | null;
  audience?: string | null;
  scope?: string | null;
  reason?: string | null;
  requestId?: string | null;
  details?: Record<string, unknown>;
}

export interface AuditEvent extends Required<Omit<AuditEventInput, 'details' | 'actorChain'>> {
  id: string;
  at: number;
  actorChain: string[];
  details: Record<string, unknown>;
}

export interface AuditFilter {
  type?: string;
  userId?: string;
  clientId?: string;
  /** An agent anywhere in the actor chain. */
  agentId?: string;
  taskId?: string;
  result?: 'allowed' | 'denied';
  from?: number;
  to?: number;
  limit?: number;
}

export class AuditStore {
  /**
   * `origin`: details every event this store writes carries, saying where a change came from when
   * it was not a web request (the admin CLI: `{ via: 'cli', os_user }`); an event's own details win.
   */
  constructor(
    private readonly db: Db,
    private readonly origin: Record<string, unknown> | null = null,
  ) {}

  /** Appends an event; pass the transaction of the state change it records. */
  async append(event: AuditEventInput, at: number, tx: Tx): Promise<void> {
    const details = this.origin ? { ...this.origin, ...event.details } : event.details;
    await insertEvent(tx, {
      id: newId('evt'),
      at,
      type: event.type,
      result: event.result,
      userId: event.userId ?? null,
      clientId: event.clientId ?? null,
      actorChain: event.actorChain ? toJson(event.actorChain) : null,
      taskId: event.taskId ?? null,
      delegationId: event.delegationId ?? null,
      audience: event.audience ?? null,
      scope: event.scope ?? null,
      reason: event.reason ?? null,
      requestId: event.requestId ?? null,
      details: details ? toJson(details) : null,
    });
  }

  async query(f: AuditFilter): Promise<AuditEvent[]> {
    const where: SQL[] = [];
    if (f.type) where.push(eq(auditEvents.type, f.type));
    if (f.userId) where.push(eq(auditEvents.userId, f.userId));
    if (f.clientId) where.push(eq(auditEvents.clientId, f.clientId));
    if (f.agentId) where.push(jsonArrayHas(this.db.q, auditEvents.actorChain, f.agentId));
    if (f.taskId) where.push(eq(auditEvents.taskId, f.taskId));
    if (f.result) where.push(eq(auditEvents.result, f.result));
    if (f.from !== undefined) where.push(gte(auditEvents.at, f.from));
    if (f.to !== undefined) where.push(lte(auditEvents.at, f.to));
    const rows = await this.db.q
      .select()
      .from(auditEvents)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(auditEvents.at), desc(insertionOrder(this.db.q)))
      .limit(f.limit ?? 100);
    return rows.map((r) => ({
      ...r,
      actorChain: parseJson<string[]>(r.actorChain, []),
      details: parseJson<Record<string, unknown>>(r.details, {}),
    }));
  }
}
