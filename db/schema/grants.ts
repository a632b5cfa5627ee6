import { sql } from 'drizzle-orm';
import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/** A validated authorization request waiting for sign-in and consent. */
export const authorizationRequests = sqliteTable('authorization_requests', {
  id: text().primaryKey(),
  clientId: text().notNull(),
  redirectUri: text().notNull(),
  redirectUriSent: integer({ mode: 'boolean' }).notNull(),
  state: text(),
  codeChallenge: text().notNull(),
  scope: text().notNull(),
  resources: text().notNull(),
  /** For agents: the delegation they ask for (JSON DelegationRequest), decided on the consent page. */
  delegation: text(),
  /** An OpenID request (`openid` scope): the code also redeems to an ID token carrying `nonce`. */
  openid: integer({ mode: 'boolean' }).notNull().default(false),
  nonce: text(),
  createdAt: integer().notNull(),
  expiresAt: integer().notNull(),
});

export const authorizationCodes = sqliteTable('authorization_codes', {
  codeHash: text().primaryKey(),
  grantId: text().notNull(),
  clientId: text().notNull(),
  userId: text().notNull(),
  redirectUri: text().notNull(),
  redirectUriSent: integer({ mode: 'boolean' }).notNull(),
  codeChallenge: text().notNull(),
  scope: text().notNull(),
  resources: text().notNull(),
  createdAt: integer().notNull(),
  expiresAt: integer().notNull(),
  usedAt: integer(),
  /** Set when the code redeems to a delegation credential rather than tokens. */
  delegationId: text(),
  /** An OpenID request: an ID token with `nonce` and `auth_time` (the consent) goes with the tokens. */
  openid: integer({ mode: 'boolean' }).notNull().default(false),
  nonce: text(),
});

/**
 * Refresh tokens, one row per token in a rotation family (the family id is the grant id). Only a
 * hash of the token is stored. `graceResponse` holds the sealed successor response for the
 * concurrent-refresh grace window and is cleared once that window has passed.
 */
export const refreshTokens = sqliteTable(
  'refresh_tokens',
  {
    tokenHash: text().primaryKey(),
    familyId: text().notNull(),
    clientId: text().notNull(),
    userId: text().notNull(),
    scope: text().notNull(),
    resources: text().notNull(),
    createdAt: integer().notNull(),
    expiresAt: integer().notNull(),
    familyExpiresAt: integer().notNull(),
    usedAt: integer(),
    graceResponse: text(),
    revokedAt: integer(),
    /** RFC 9449 §5: a public client's refresh token is bound to its DPoP key (JWK thumbprint). */
    dpopJkt: text(),
  },
  (t) => [index('refresh_tokens_family_idx').on(t.familyId)],
);

/** One row per access token: what revocation, introspection and audit act on. */
export const issuedTokens = sqliteTable(
  'issued_tokens',
  {
    jti: text().primaryKey(),
    grantId: text(),
    clientId: text().notNull(),
    subject: text().notNull(),
    audience: text().notNull(),
    scope: text().notNull(),
    kid: text().notNull(),
    issuedAt: integer().notNull(),
    expiresAt: integer().notNull(),
    revokedAt: integer(),
    /** Task tokens: the task, its delegation, the actor chain and the token's status list index. */
    taskId: text(),
    delegationId: text(),
    actorChain: text(),
    statusIdx: integer(),
    /** RFC 9396 `mcp_tool` details the token carries (JSON), so what a task holds can be read back. */
    authorizationDetails: text(),
  },
  (t) => [
    // Partial: only tokens of a grant (a refresh family) are looked up by it.
    index('issued_tokens_grant_idx').on(t.grantId).where(sql`${t.grantId} IS NOT NULL`),
    index('issued_tokens_exp_idx').on(t.expiresAt),
    index('issued_tokens_task_idx').on(t.taskId),
    index('issued_tokens_client_idx').on(t.clientId),
    // The status list reads only revoked tokens: this index holds just those.
    index('issued_tokens_revoked_status_idx').on(t.statusIdx).where(sql`${t.revokedAt} IS NOT NULL`),
  ],
);
