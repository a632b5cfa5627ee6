import { asc, gt, max, sql } from 'drizzle-orm';
import { dialectOf } from '../dialect.js';
import type { Db, Tx } from '../open.js';
import { perHandle } from '../prepared.js';
import { revocationLog } from '../schema/index.js';

export interface RevocationLogEntry {
  seq: number;
  jti: string;
  audience: string;
  taskId: string | null;
  statusIdx: number | null;
  at: number;
  writtenMs: number;
}

const after = perHandle((d) =>
  d
    .select()
    .from(revocationLog)
    .where(gt(revocationLog.seq, sql.placeholder('seq')))
    .orderBy(asc(revocationLog.seq))
    .limit(sql.placeholder('limit'))
    .prepare(),
);

/** The PostgreSQL channel a revoking transaction notifies at commit, so every node reads the log at once. */
export const REVOCATION_CHANNEL = 'errand_revocations';

/**
 * The revocation log (db/schema/revocations.ts). Sequence numbers follow commit order because write
 * transactions run one at a time (SQLite's write lock; on PostgreSQL the write lock every node
 * takes): a reader never sees seq n+1 committed before seq n.
 */
export class RevocationLogStore {
  constructor(private readonly db: Db) {}

  /** Records revocations inside the revoking transaction. */
  async append(entries: Omit<RevocationLogEntry, 'seq'>[], tx: Tx): Promise<void> {
    if (entries.length === 0) return;
    await tx.insert(revocationLog).values(entries);
    // Delivered to every listening node when this transaction commits, never before.
    if (dialectOf(tx) === 'postgres') await tx.run(sql`SELECT pg_notify(${REVOCATION_CHANNEL}, '')`);
  }

  /** The highest sequence number committed so far (0 on an empty log). */
  async latest(): Promise<number> {
    const [row] = await this.db.q.select({ seq: max(revocationLog.seq) }).from(revocationLog);
    return row?.seq ?? 0;
  }

  /** Entries committed after `seq`, oldest first, at most `limit` (one indexed range read on the primary key). */
  async after(seq: number, limit: number): Promise<RevocationLogEntry[]> {
    return after(this.db.q).all({ seq, limit });
  }
}
