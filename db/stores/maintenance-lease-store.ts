import { and, eq, gt, inArray, lte, or } from 'drizzle-orm';
import { affected, type Db } from '../open.js';
import { maintenanceLeases } from '../schema/index.js';

/** A periodic job and the least time, in seconds, between two runs of it across all processes. */
export interface LeasedJob {
  job: string;
  period: number;
}

/**
 * A stored run time further ahead than its period plus this many seconds was written by a clock
 * that ran ahead (or this clock stepped back): it is claimed anyway, so that one wrong clock cannot
 * stop a job on every process until the wrong time comes round.
 */
export const LEASE_CLOCK_LEEWAY = 60;

/**
 * Decides which process runs a periodic job: the one whose conditional update moves the job's
 * `next_run_at` forward. Every claim runs in a write transaction, which the embedded file and
 * PostgreSQL (the cluster-wide write lock) both serialise, so of the processes asking in one
 * period exactly one sees its update change the row.
 */
export class MaintenanceLeaseStore {
  constructor(private readonly db: Db) {}

  /** Claims every job of `jobs` that is due at `now` for `holder`; returns the names of those claimed. */
  async claimDue(jobs: readonly LeasedJob[], now: number, holder: string): Promise<Set<string>> {
    if (jobs.length === 0) return new Set();
    return this.db.write(async (tx) => {
      // A job never claimed has no row yet: it is due at once.
      await tx
        .insert(maintenanceLeases)
        .values(jobs.map(({ job }) => ({ job, nextRunAt: 0, holder: '', claimedAt: 0 })))
        .onConflictDoNothing();
      const won = new Set<string>();
      for (const { job, period } of jobs) {
        const res = await tx
          .update(maintenanceLeases)
          .set({ nextRunAt: now + period, holder, claimedAt: now })
          .where(
            and(
              eq(maintenanceLeases.job, job),
              or(
                lte(maintenanceLeases.nextRunAt, now),
                gt(maintenanceLeases.nextRunAt, now + period + LEASE_CLOCK_LEEWAY),
              ),
            ),
          );
        if (affected(res) === 1) won.add(job);
      }
      return won;
    });
  }

  /** Who claimed each job last and when it is next due (operators, tests). */
  async list(jobs?: readonly string[]) {
    const q = this.db.q.select().from(maintenanceLeases);
    return jobs ? q.where(inArray(maintenanceLeases.job, [...jobs])) : q;
  }
}
