import { and, count, desc, eq, gt, gte, inArray, isNotNull, isNull, lt, notInArray, type SQL, sql } from 'drizzle-orm';
import { type EndReason, TASK_STATES, type Task, type TaskState, type TerminalState } from '../../broker/core/task.js';
import { jsonArrayHas } from '../dialect.js';
import { affected, type Db, type Tx } from '../open.js';
import { insertRow, perHandle, selectOneBy } from '../prepared.js';
import { counters, issuedTokens, tasks } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

const taskById = selectOneBy(tasks, tasks.id);
const insertTask = insertRow(tasks);
/** Moves the status index counter `n` ahead; its new value (the end of the indexes now allocated). */
const allocateStatus = perHandle((d) =>
  d
    .insert(counters)
    .values({ name: 'status_idx', value: sql.placeholder('n') })
    .onConflictDoUpdate({ target: counters.name, set: { value: sql`${counters.value} + ${sql.placeholder('n')}` } })
    .returning({ value: counters.value })
    .prepare(),
);
/** Status indexes a process reserves at a time, so that an exchange does not write the counter. */
const STATUS_BLOCK = 128;

const TERMINAL: TaskState[] = ['completed', 'canceled', 'failed', 'rejected'];
const LIVE: TaskState[] = TASK_STATES.filter((s) => !TERMINAL.includes(s));

function toTask(row: typeof tasks.$inferSelect): Task {
  return {
    ...row,
    state: row.state as TaskState,
    endReason: row.endReason as EndReason | null,
    actorChain: parseJson<string[]>(row.actorChain, []),
    externalIds: parseJson<Record<string, string>>(row.externalIds, {}),
  };
}

export interface TasksWhere {
  delegationId?: string;
  agentId?: string;
  subjectJti?: string;
  subjectGrantId?: string;
}

/** An administrator's filter over every task: whose, which agent (anywhere in the actor chain), which state. */
export interface TaskFilter {
  userId?: string;
  agentId?: string;
  /** A state, or `live` / `ended` for any non-terminal / terminal one. */
  state?: TaskState | 'live' | 'ended';
  limit: number;
}

export interface EndResult {
  /** Tasks this call ended (the task and every live descendant). */
  endedTaskIds: string[];
  /** Access tokens revoked with them. */
  revoked: { jti: string; audience: string; statusIdx: number | null }[];
}

export class TaskStore {
  /** Status indexes reserved by committed transactions and not handed out yet. */
  private readonly reserved: { next: number; end: number }[] = [];
  private reserving = false;

  constructor(private readonly db: Db) {}

  async get(id: string, tx?: Tx): Promise<Task | null> {
    const row = await taskById(tx ?? this.db.q, id);
    return row ? toTask(row) : null;
  }

  async insert(task: Task, tx: Tx): Promise<void> {
    await insertTask(tx, { ...task, actorChain: toJson(task.actorChain), externalIds: toJson(task.externalIds) });
  }

  async listForUser(userId: string, limit = 200): Promise<Task[]> {
    const rows = await this.db.q
      .select()
      .from(tasks)
      .where(eq(tasks.userId, userId))
      .orderBy(desc(tasks.createdAt))
      .limit(limit);
    return rows.map(toTask);
  }

  /** Every task matching the filter, newest first (the administrator's view across people). */
  async list(f: TaskFilter): Promise<Task[]> {
    const where: SQL[] = [];
    if (f.userId) where.push(eq(tasks.userId, f.userId));
    if (f.agentId) where.push(jsonArrayHas(this.db.q, tasks.actorChain, f.agentId));
    if (f.state === 'live') where.push(notInArray(tasks.state, TERMINAL));
    else if (f.state === 'ended') where.push(inArray(tasks.state, TERMINAL));
    else if (f.state) where.push(eq(tasks.state, f.state));
    const rows = await this.db.q
      .select()
      .from(tasks)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(tasks.createdAt))
      .limit(f.limit);
    return rows.map(toTask);
  }

  /** Tasks an agent acts in (as the task's agent). */
  async listForAgent(agentId: string, limit = 200): Promise<Task[]> {
    const rows = await this.db.q
      .select()
      .from(tasks)
      .where(eq(tasks.agentId, agentId))
      .orderBy(desc(tasks.createdAt))
      .limit(limit);
    return rows.map(toTask);
  }

  /** Every task of one tree (a root and its descendants). */
  async tree(rootTaskId: string): Promise<Task[]> {
    const rows = await this.db.q
      .select()
      .from(tasks)
      .where(eq(tasks.rootTaskId, rootTaskId))
      .orderBy(tasks.depth, tasks.createdAt);
    return rows.map(toTask);
  }

  async setState(id: string, state: TaskState, tx: Tx): Promise<boolean> {
    const res = await tx
      .update(tasks)
      .set({ state })
      .where(and(eq(tasks.id, id), notInArray(tasks.state, TERMINAL)));
    return affected(res) === 1;
  }

  async setExternalIds(id: string, externalIds: Record<string, string>, tx: Tx): Promise<void> {
    await tx
      .update(tasks)
      .set({ externalIds: toJson(externalIds) })
      .where(eq(tasks.id, id));
  }

  /**
   * Ends a task and every live descendant, and revokes every token issued for them, in the caller's
   * transaction: from its commit on, none of those tokens is active (README "Invariants", 3).
   */
  async endTree(
    taskId: string,
    end: { state: TerminalState; reason: EndReason; at: number },
    tx: Tx,
  ): Promise<EndResult> {
    const subtree = await tx.values<[string]>(sql`
      WITH RECURSIVE sub(id) AS (
        SELECT id FROM tasks WHERE id = ${taskId}
        UNION ALL SELECT t.id FROM tasks t JOIN sub ON t.parent_task_id = sub.id
      ) SELECT id FROM sub`);
    const ids = subtree.map((r) => r[0]);
    if (ids.length === 0) return { endedTaskIds: [], revoked: [] };
    const live = await tx
      .select({ id: tasks.id })
      .from(tasks)
      .where(and(inArray(tasks.id, ids), notInArray(tasks.state, TERMINAL)));
    const liveIds = live.map((r) => r.id);
    if (liveIds.length > 0) {
      // The named task takes the given state; its descendants end because their parent did.
      await tx
        .update(tasks)
        .set({ state: end.state, endedAt: end.at, endReason: end.reason })
        .where(and(eq(tasks.id, taskId), inArray(tasks.id, liveIds)));
      const others = liveIds.filter((id) => id !== taskId);
      if (others.length > 0) {
        await tx
          .update(tasks)
          .set({ state: 'canceled', endedAt: end.at, endReason: 'parent_ended' })
          .where(inArray(tasks.id, others));
      }
    }
    const revoked = await tx
      .update(issuedTokens)
      .set({ revokedAt: end.at })
      .where(and(inArray(issuedTokens.taskId, ids), isNull(issuedTokens.revokedAt)))
      .returning({ jti: issuedTokens.jti, audience: issuedTokens.audience, statusIdx: issuedTokens.statusIdx });
    return { endedTaskIds: liveIds, revoked };
  }

  /**
   * How many tasks are live now (not ended, deadline not passed): a count over the `(state, deadline)`
   * index, for the metrics scrape.
   */
  async countLive(now: number): Promise<number> {
    const [row] = await this.db.q
      .select({ n: count() })
      .from(tasks)
      .where(and(inArray(tasks.state, LIVE), gt(tasks.deadline, now)));
    return row?.n ?? 0;
  }

  /** Live tasks whose deadline has passed. */
  async overdue(now: number, limit = 500): Promise<Task[]> {
    const rows = await this.db.q
      .select()
      .from(tasks)
      .where(and(notInArray(tasks.state, TERMINAL), lt(tasks.deadline, now + 1)))
      .limit(limit);
    return rows.map(toTask);
  }

  /**
   * Live tasks under a delegation, acted by an agent, or started on behalf of a user from one access
   * token (`subjectJti`) or from any token of one grant (`subjectGrantId`, a refresh family).
   */
  async liveTasksWhere(by: TasksWhere, tx: Tx): Promise<Task[]> {
    const cond = by.delegationId
      ? eq(tasks.delegationId, by.delegationId)
      : by.subjectJti
        ? eq(tasks.subjectJti, by.subjectJti)
        : by.subjectGrantId
          ? inArray(
              tasks.subjectJti,
              tx
                .select({ jti: issuedTokens.jti })
                .from(issuedTokens)
                .where(eq(issuedTokens.grantId, by.subjectGrantId)),
            )
          : eq(tasks.agentId, by.agentId ?? '');
    const rows = await tx
      .select()
      .from(tasks)
      .where(and(cond, notInArray(tasks.state, TERMINAL)));
    return rows.map(toTask);
  }

  /**
   * Allocates the next status list index, unique across processes and nodes. Indexes come from
   * blocks this process reserved in transactions of their own, used only once such a transaction
   * is durable; until one is (the first exchanges, or a burst) each index is allocated inside `tx`.
   * Indexes of a block left unused when the process stops are never handed out: their bits stay 0.
   */
  async nextStatusIndex(tx: Tx): Promise<number> {
    const block = this.reserved[0];
    if (block) {
      const idx = block.next++;
      if (block.next === block.end) this.reserved.shift();
      if (this.left() < STATUS_BLOCK / 2) this.reserveAhead();
      return idx;
    }
    this.reserveAhead();
    const row = await allocateStatus(tx).get({ n: 1 });
    return (row?.value ?? 1) - 1;
  }

  private left(): number {
    return this.reserved.reduce((n, b) => n + b.end - b.next, 0);
  }

  /** Reserves the next block in a write of its own (queued; a failed one is simply tried again later). */
  private reserveAhead(): void {
    if (this.reserving) return;
    this.reserving = true;
    this.db
      .write(async (tx) => (await allocateStatus(tx).get({ n: STATUS_BLOCK }))?.value ?? STATUS_BLOCK)
      .then((end) => {
        this.reserved.push({ next: end - STATUS_BLOCK, end });
      })
      .catch(() => undefined)
      .finally(() => {
        this.reserving = false;
      });
  }

  /** Revoked status indexes within [from, to): the set bits of one status list. */
  async revokedIndexes(from: number, to: number): Promise<number[]> {
    const rows = await this.db.q
      .select({ idx: issuedTokens.statusIdx })
      .from(issuedTokens)
      .where(and(gte(issuedTokens.statusIdx, from), lt(issuedTokens.statusIdx, to), isNotNull(issuedTokens.revokedAt)));
    return rows.map((r) => r.idx!).filter((n) => n !== null);
  }

  /** The highest allocated status index + 1 (the size of the lists so far). */
  async allocatedIndexes(): Promise<number> {
    const [row] = await this.db.q.select().from(counters).where(eq(counters.name, 'status_idx'));
    return row?.value ?? 0;
  }
}
