import { asc, gt, max, sql } from 'drizzle-orm';
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

/**
 * The revocation log (db/schema/revocations.ts). Sequence numbers follow commit order because the
 * embedded database has one writer at a time: a reader never sees seq n+1 committed before seq n.
 */
export class RevocationLogStore {
  constructor(private readonly db: Db) {}

  /** Records revocations inside the revoking transaction. */
  async append(entries: Omit<RevocationLogEntry, 'seq'>[], tx: Tx): Promise<void> {
    if (entries.length === 0) return;
    await tx.insert(revocationLog).values(entries);
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
