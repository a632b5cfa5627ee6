import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * A2A tasks (the protocol's view; the Errand task they stand for is in `tasks`), kept here so every
 * broker process on the database, and the next one after a restart, answers GetTask and CancelTask.
 * `owner` is the caller a task belongs to (client and subject); nobody else reads or changes it.
 */
export const a2aTasks = sqliteTable(
  'a2a_tasks',
  {
    id: text().primaryKey(),
    owner: text().notNull(),
    contextId: text().notNull(),
    /** The A2A TaskState number of the current status. */
    state: integer().notNull(),
    /** The current status's timestamp (ISO 8601), the list order. */
    statusAt: text().notNull(),
    /** The task in its A2A JSON form. */
    body: text().notNull(),
    createdAt: integer().notNull(),
    updatedAt: integer().notNull(),
  },
  (t) => [index('a2a_tasks_owner_idx').on(t.owner, t.statusAt)],
);
