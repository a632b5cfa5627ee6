import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/** One registry for every non-human client: agents, MCP/OAuth clients, resource servers. */
export const clients = sqliteTable(
  'clients',
  {
    id: text().primaryKey(),
    kind: text({ enum: ['agent', 'mcp_client', 'resource_server', 'admin_service'] }).notNull(),
    name: text().notNull(),
    ownerId: text(),
    source: text({ enum: ['admin', 'dcr', 'cimd'] }).notNull(),
    status: text({ enum: ['active', 'pending', 'disabled', 'expired'] }).notNull(),
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
    /** When a self-registered client (dcr, cimd) was quarantined; null once admitted, and for every other client. */
    quarantinedAt: integer(),
  },
  (t) => [index('clients_source_idx').on(t.source, t.status)],
);

/** Things tokens are issued for, identified by canonical URL (RFC 8707). */
export const resources = sqliteTable('resources', {
  id: text().primaryKey(),
  url: text().notNull().unique(),
  name: text().notNull(),
  scopes: text().notNull(),
  /** JSON object: a plain-language description per scope, shown on the approval page. */
  scopeDescriptions: text(),
  /** The lowest assurance level an agent must have to get tokens for this resource. */
  minAssurance: text(),
  createdAt: integer().notNull(),
  /** Quarantined clients may still get tokens for public resources (README "Quarantine of new registrations and findings"). */
  public: integer({ mode: 'boolean' }).notNull().default(false),
});

/** `jti`s of client assertions already used, until they expire (RFC 7523 §3 item 7). */
export const usedAssertions = sqliteTable('used_assertions', {
  key: text().primaryKey(),
  expiresAt: integer().notNull(),
});

/**
 * Initial access tokens (RFC 7591 §3) an administrator issues so that agents can register
 * themselves. Only a hash of the token is kept; the token is shown once.
 */
export const initialAccessTokens = sqliteTable('initial_access_tokens', {
  id: text().primaryKey(),
  tokenHash: text().notNull().unique(),
  name: text().notNull(),
  createdBy: text().notNull(),
  createdAt: integer().notNull(),
  expiresAt: integer().notNull(),
  /** Registrations the token may make; null = any number until it expires. */
  maxUses: integer(),
  uses: integer().notNull(),
  /** Agents registered with it are active at once instead of waiting for an administrator. */
  autoApprove: integer({ mode: 'boolean' }).notNull(),
  /** JSON array: the scopes a registered agent may hold; null = no limit beyond the resources'. */
  scopes: text(),
  /** JSON array: the grant types a registered agent may use. */
  grantTypes: text().notNull(),
  revokedAt: integer(),
});
