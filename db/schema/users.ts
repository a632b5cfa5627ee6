import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

export const users = sqliteTable('users', {
  id: text().primaryKey(),
  username: text().notNull().unique(),
  displayName: text(),
  passwordHash: text(),
  role: text({ enum: ['user', 'admin'] }).notNull(),
  createdAt: integer().notNull(),
  disabledAt: integer(),
  // Unused: sign-in failures and locks are counted in signin_failures (per typed username).
  failedSignins: integer().notNull().default(0),
  lockedUntil: integer(),
});

/** One-time links that let the first administrator choose a username and password. */
export const bootstrapTokens = sqliteTable('bootstrap_tokens', {
  tokenHash: text().primaryKey(),
  createdAt: integer().notNull(),
  expiresAt: integer().notNull(),
  usedAt: integer(),
});

export const sessions = sqliteTable(
  'sessions',
  {
    idHash: text().primaryKey(),
    userId: text()
      .notNull()
      .references(() => users.id),
    csrfToken: text().notNull(),
    createdAt: integer().notNull(),
    expiresAt: integer().notNull(),
  },
  (t) => [index('sessions_user_idx').on(t.userId)],
);

/** Accounts at an upstream OpenID Connect provider linked to a local user (federated sign-in). */
export const userIdentities = sqliteTable(
  'user_identities',
  {
    issuer: text().notNull(),
    subject: text().notNull(),
    userId: text()
      .notNull()
      .references(() => users.id),
    createdAt: integer().notNull(),
  },
  (t) => [primaryKey({ columns: [t.issuer, t.subject] }), index('user_identities_user_idx').on(t.userId)],
);

/** Small process-wide facts kept in the database (for example the master key's fingerprint). */
export const settings = sqliteTable('settings', {
  key: text().primaryKey(),
  value: text().notNull(),
});

/**
 * Failed sign-ins, counted per submitted username whether or not an account has it, so that the
 * answers never tell which names exist. `key` is a SHA-256 of the counted scope (the username, or
 * the username and the client address), never the name itself. A row means nothing after `expiresAt`.
 */
export const signinFailures = sqliteTable(
  'signin_failures',
  {
    key: text().primaryKey(),
    failures: integer().notNull(),
    lockedUntil: integer(),
    expiresAt: integer().notNull(),
  },
  (t) => [index('signin_failures_expires_idx').on(t.expiresAt)],
);
