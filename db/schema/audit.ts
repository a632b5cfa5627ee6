import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/** Append-only audit trail: never updated, deleted only by the documented retention policy. */
export const auditEvents = sqliteTable(
  'audit_events',
  {
    id: text().primaryKey(),
    at: integer().notNull(),
    type: text().notNull(),
    result: text({ enum: ['allowed', 'denied'] }).notNull(),
    userId: text(),
    clientId: text(),
    actorChain: text(),
    taskId: text(),
    delegationId: text(),
    audience: text(),
    scope: text(),
    reason: text(),
    requestId: text(),
    details: text(),
  },
  (t) => [
    index('audit_at_idx').on(t.at),
    index('audit_client_idx').on(t.clientId),
    index('audit_user_idx').on(t.userId),
  ],
);
