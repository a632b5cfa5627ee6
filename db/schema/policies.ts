import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * The organisation's Cedar policy sets, one row per saved version (README "Organisation policies").
 * A version's text and tests never change once saved; only its status moves: `draft` (saved, not
 * applied), `shadow` (evaluated beside the enforced set, its denials logged, at most one), `published`
 * (enforced, exactly one or none: none means the built-in default), `retired` (published before).
 */
export const policyVersions = sqliteTable(
  'policy_versions',
  {
    version: integer().primaryKey(),
    /** The policies, in Cedar's text syntax. */
    text: text().notNull(),
    /** JSON array: the policy tests (requests with expected decisions) saved with this version. */
    tests: text().notNull(),
    status: text({ enum: ['draft', 'shadow', 'published', 'retired'] }).notNull(),
    comment: text(),
    createdBy: text().notNull(),
    createdAt: integer().notNull(),
    /** When the version was last moved to shadow or published, and by whom. */
    changedBy: text(),
    changedAt: integer(),
  },
  (t) => [index('policy_versions_status_idx').on(t.status)],
);

/**
 * The groups a person belongs to, for policies (`principal in Errand::Group::"finance"`): set by an
 * administrator (`local`) or copied from the upstream OpenID provider's groups claim at each
 * federated sign-in (`upstream`, replaced as a whole each time).
 */
export const userGroups = sqliteTable(
  'user_groups',
  {
    userId: text().notNull(),
    group: text().notNull(),
    source: text({ enum: ['local', 'upstream'] }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.group, t.source] })],
);
