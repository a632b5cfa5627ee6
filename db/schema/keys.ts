import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * Signing keys. A key signs from `activatesAt` until the next key's `activatesAt`; it is published
 * from creation (before it signs) until every token it signed has expired: short-lived tokens by a
 * fixed margin after it stops signing, long-lived ones (delegation credentials) until `signedUntil`,
 * the latest `exp` recorded when one was signed. The private key is sealed with the master key
 * (AES-256-GCM) and never stored in clear.
 */
export const signingKeys = sqliteTable('signing_keys', {
  kid: text().primaryKey(),
  alg: text({ enum: ['ES256', 'EdDSA'] }).notNull(),
  publicJwk: text().notNull(),
  privateKeySealed: text().notNull(),
  createdAt: integer().notNull(),
  activatesAt: integer().notNull().unique(),
  signedUntil: integer(),
});
