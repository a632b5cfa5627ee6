import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * One row per periodic maintenance job that must run once across every broker process sharing the
 * database, not once per process (README "PostgreSQL and several nodes"). A process runs the job
 * only when it moves `nextRunAt` forward with a conditional update (`WHERE next_run_at <= now`);
 * the others see no row changed and skip it. A holder that stops mid-run holds nothing: the next
 * claim after `nextRunAt` runs the job again.
 */
export const maintenanceLeases = sqliteTable('maintenance_leases', {
  job: text().primaryKey(),
  /** Seconds: the first time another claim succeeds. */
  nextRunAt: integer().notNull(),
  /** The process that made the last claim (host, pid and a random part), for operators. */
  holder: text().notNull(),
  /** Seconds: when the last claim was made. */
  claimedAt: integer().notNull(),
});
