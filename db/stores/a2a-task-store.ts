import { and, desc, eq, gt, lt, or, type SQL, sql } from 'drizzle-orm';
import type { Db } from '../open.js';
import { a2aTasks } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

/** One A2A task as stored: its owner and the fields lists filter on, beside the task's JSON form. */
export interface StoredA2aTask {
  id: string;
  owner: string;
  contextId: string;
  state: number;
  statusAt: string;
  body: Record<string, unknown>;
}

export interface A2aTaskQuery {
  contextId?: string;
  state?: number;
  statusAfter?: string;
  /** The (statusAt, id) of the last task of the previous page. */
  after?: { statusAt: string; id: string };
  limit: number;
}

/**
 * A2A tasks by owner. Every read and write names the owner: a task id alone finds nothing, so a
 * caller never reaches a task it does not own, and a write never takes over another owner's id.
 */
export class A2aTaskStore {
  constructor(private readonly db: Db) {}

  async get(owner: string, id: string): Promise<StoredA2aTask | null> {
    const [row] = await this.db.q
      .select()
      .from(a2aTasks)
      .where(and(eq(a2aTasks.id, id), eq(a2aTasks.owner, owner)))
      .limit(1);
    return row ? toStored(row) : null;
  }

  /** Creates or replaces the owner's task; returns false when the id belongs to another owner. */
  async put(task: StoredA2aTask, now: number): Promise<boolean> {
    return this.db.write(async (tx) => {
      const rows = await tx
        .insert(a2aTasks)
        .values({ ...task, body: toJson(task.body), createdAt: now, updatedAt: now })
        .onConflictDoUpdate({
          target: a2aTasks.id,
          set: {
            contextId: task.contextId,
            state: task.state,
            statusAt: task.statusAt,
            body: toJson(task.body),
            updatedAt: now,
          },
          setWhere: eq(a2aTasks.owner, task.owner),
        })
        .returning({ id: a2aTasks.id });
      return rows.length === 1;
    });
  }

  /** The owner's tasks, newest status first, and how many match in all. */
  async list(owner: string, q: A2aTaskQuery): Promise<{ tasks: StoredA2aTask[]; total: number }> {
    const where: SQL[] = [eq(a2aTasks.owner, owner)];
    if (q.contextId) where.push(eq(a2aTasks.contextId, q.contextId));
    if (q.state !== undefined) where.push(eq(a2aTasks.state, q.state));
    if (q.statusAfter) where.push(gt(a2aTasks.statusAt, q.statusAfter));
    const [count] = await this.db.q
      .select({ n: sql<number>`count(*)` })
      .from(a2aTasks)
      .where(and(...where));
    if (q.after) {
      const { statusAt, id } = q.after;
      where.push(or(lt(a2aTasks.statusAt, statusAt), and(eq(a2aTasks.statusAt, statusAt), lt(a2aTasks.id, id))) as SQL);
    }
    const rows = await this.db.q
      .select()
      .from(a2aTasks)
      .where(and(...where))
      .orderBy(desc(a2aTasks.statusAt), desc(a2aTasks.id))
      .limit(q.limit);
    return { tasks: rows.map(toStored), total: Number(count?.n ?? 0) };
  }
}

function toStored(row: typeof a2aTasks.$inferSelect): StoredA2aTask {
  return {
    id: row.id,
    owner: row.owner,
    contextId: row.contextId,
    state: row.state,
    statusAt: row.statusAt,
    body: parseJson<Record<string, unknown>>(row.body, {}),
  };
}
