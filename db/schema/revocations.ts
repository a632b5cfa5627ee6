import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * Every access token a task end revoked, in commit order: each broker process on the database tails
 * it (`seq > last seen`) to push revocations to its subscribers, whichever process committed them.
 * Written in the revoking transaction; deleted by retention.
 */
export const revocationLog = sqliteTable(
  'revocation_log',
  {
    seq: integer().primaryKey({ autoIncrement: true }),
    jti: text().notNull(),
    audience: text().notNull(),
    taskId: text(),
    statusIdx: integer(),
    at: integer().notNull(),
    /** Wall-clock milliseconds when written (just before commit): push delivery is timed from here. */
    writtenMs: integer().notNull(),
  },
  (t) => [index('revocation_log_at_idx').on(t.at)],
);
