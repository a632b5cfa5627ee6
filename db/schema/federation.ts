import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * Outside issuers of workload identity (an OpenID issuer, a SPIFFE trust domain, a Kubernetes
 * service-account issuer, a CI provider) and the rules that map their tokens' claims to an agent.
 */
export const trustedIssuers = sqliteTable('trusted_issuers', {
  id: text().primaryKey(),
  kind: text({ enum: ['oidc', 'spiffe', 'kubernetes', 'ci'] }).notNull(),
  name: text().notNull(),
  issuer: text().notNull().unique(),
  /** Where the signing keys are: discovered from the issuer's metadata when null. */
  jwksUri: text(),
  /** A static key set (a SPIFFE bundle), used instead of fetching. */
  jwks: text(),
  /** The audience its tokens must name (Errand's issuer by default). */
  audience: text().notNull(),
  /** Longest accepted token lifetime (exp − iat), seconds. */
  maxLifetime: integer().notNull(),
  /** JSON array of claim-matching rules → agent id and assurance level. */
  rules: text().notNull(),
  status: text({ enum: ['active', 'disabled'] }).notNull(),
  createdAt: integer().notNull(),
});

/** A2A peers registered from their Agent Card: each is also a resource tokens can be issued for. */
export const a2aPeers = sqliteTable('a2a_peers', {
  id: text().primaryKey(),
  cardUrl: text().notNull().unique(),
  name: text().notNull(),
  /** The peer's A2A endpoint: the `aud` of tokens issued for it. */
  endpoint: text().notNull(),
  card: text().notNull(),
  signatureVerified: integer({ mode: 'boolean' }).notNull(),
  signatureKid: text(),
  skills: text().notNull(),
  securitySchemes: text().notNull(),
  createdAt: integer().notNull(),
  updatedAt: integer().notNull(),
});
