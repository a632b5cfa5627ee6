import { sql } from 'drizzle-orm';
import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/** A user's approval for one agent (pending until decided). */
export const delegations = sqliteTable(
  'delegations',
  {
    id: text().primaryKey(),
    userId: text().notNull(),
    agentId: text().notNull(),
    status: text({ enum: ['pending', 'active', 'denied', 'revoked'] }).notNull(),
    /** What the agent asked for (JSON DelegationRequest). */
    requested: text().notNull(),
    /** What the user granted: scopes per resource (JSON). */
    grants: text().notNull(),
    authorizationDetails: text(),
    maxTokenTtl: integer().notNull(),
    maxDepth: integer().notNull(),
    subAgents: text(),
    expiresAt: integer().notNull(),
    createdAt: integer().notNull(),
    decidedAt: integer(),
    revokedAt: integer(),
    source: text({ enum: ['consent', 'ciba', 'exchange_rule'] }).notNull(),
    bindingMessage: text(),
    credentialJti: text(),
    /** The lowest assurance level an actor must have to exchange under this delegation. */
    minAssurance: text(),
  },
  (t) => [index('delegations_user_idx').on(t.userId, t.status), index('delegations_agent_idx').on(t.agentId)],
);

/** An asynchronous approval request (OpenID CIBA, poll mode). */
export const backchannelRequests = sqliteTable('backchannel_requests', {
  authReqIdHash: text().primaryKey(),
  delegationId: text().notNull(),
  clientId: text().notNull(),
  createdAt: integer().notNull(),
  expiresAt: integer().notNull(),
  interval: integer().notNull(),
  lastPolledAt: integer(),
  /** Set once the credential has been handed out: the grant works once. */
  redeemedAt: integer(),
});

/** One unit of work under a delegation; sub-agents get child tasks. */
export const tasks = sqliteTable(
  'tasks',
  {
    id: text().primaryKey(),
    delegationId: text().notNull(),
    userId: text().notNull(),
    agentId: text().notNull(),
    actorChain: text().notNull(),
    parentTaskId: text(),
    rootTaskId: text().notNull(),
    depth: integer().notNull(),
    state: text().notNull(),
    createdAt: integer().notNull(),
    deadline: integer().notNull(),
    endedAt: integer(),
    endReason: text(),
    externalIds: text().notNull(),
    /** On-behalf-of tasks: the user's access token they were started from (revoking it ends them). */
    subjectJti: text(),
  },
  (t) => [
    index('tasks_root_idx').on(t.rootTaskId),
    // Ending a task walks its subtree by parent. Partial (as the two below): most rows hold NULL,
    // which every query here excludes, so the insert of such a row skips the index altogether.
    index('tasks_parent_idx').on(t.parentTaskId).where(sql`${t.parentTaskId} IS NOT NULL`),
    index('tasks_delegation_idx').on(t.delegationId),
    index('tasks_user_idx').on(t.userId),
    index('tasks_agent_idx').on(t.agentId),
    index('tasks_deadline_idx').on(t.state, t.deadline),
    index('tasks_subject_idx').on(t.subjectJti).where(sql`${t.subjectJti} IS NOT NULL`),
  ],
);

/** Monotonic counters (status list index allocation), incremented inside write transactions. */
export const counters = sqliteTable('counters', {
  name: text().primaryKey(),
  value: integer().notNull(),
});
