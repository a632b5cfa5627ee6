import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/** One registry for every non-human client: agents, MCP/OAuth clients, resource servers. */
export const clients = sqliteTable(
  'clients',
  {
    id: text().primaryKey(),
    kind: text({ enum: ['agent', 'mcp_client', 'resource_server'] }).notNull(),
    name: text().notNull(),
    ownerId: text(),
    source: text({ enum: ['admin', 'dcr', 'cimd'] }).notNull(),
    status: text({ enum: ['active', 'disabled', 'expired'] }).notNull(),
    tokenEndpointAuthMethod: text().notNull(),
    secretHash: text(),
    jwks: text(),
    jwksUri: text(),
    redirectUris: text().notNull(),
    grantTypes: text().notNull(),
    scope: text(),
    resources: text(),
    applicationType: text(),
    metadata: text().notNull(),
    createdAt: integer().notNull(),
    lastUsedAt: integer(),
    expiresAt: integer(),
    cachedUntil: integer(),
    /** The assurance level the agent last authenticated at (NHI-AAL1..3), recorded by Errand. */
    assuranceLevel: text(),
    /** For workload identities: the trusted issuer that vouches for this agent. */
    trustedIssuerId: text(),
  },
  (t) => [index('clients_source_idx').on(t.source, t.status)],
);

/** Things tokens are issued for, identified by canonical URL (RFC 8707). */
export const resources = sqliteTable('resources', {
  id: text().primaryKey(),
  url: text().notNull().unique(),
  name: text().notNull(),
  scopes: text().notNull(),
  /** The lowest assurance level an agent must have to get tokens for this resource. */
  minAssurance: text(),
  createdAt: integer().notNull(),
});

/** `jti`s of client assertions already used, until they expire (RFC 7523 §3 item 7). */
export const usedAssertions = sqliteTable('used_assertions', {
  key: text().primaryKey(),
  expiresAt: integer().notNull(),
});
