import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * Lifecycle facts about an agent that are not part of its registration (README "Agent lifecycle:
 * owners, certification and right-sizing"): when Errand first saw its owner lapse, and why it was
 * suspended. One row per agent, written only when there is something to say.
 */
export const agentLifecycle = sqliteTable('agent_lifecycle', {
  clientId: text().primaryKey(),
  /** The owner id the lapse was noticed for (null: the agent had none); a new owner clears the row. */
  lapsedOwnerId: text(),
  /** Seconds: when maintenance first saw the owner missing, disabled or deleted. */
  ownerLapsedAt: integer(),
  /** Seconds: when Errand suspended (disabled) the agent itself, and why. */
  suspendedAt: integer(),
  suspendedReason: text(),
});

/** A certification campaign: every agent's owner attests keep / reduce / remove before the deadline. */
export const certificationCampaigns = sqliteTable('certification_campaigns', {
  id: text().primaryKey(),
  name: text().notNull(),
  status: text({ enum: ['open', 'closed'] }).notNull(),
  /** The administrator (or `schedule`) that opened it. */
  openedBy: text().notNull(),
  createdAt: integer().notNull(),
  deadline: integer().notNull(),
  usageDays: integer().notNull(),
  closedAt: integer(),
});

/** One agent in a campaign: its owner, a snapshot of what it held and used, and the attestation. */
export const certificationItems = sqliteTable(
  'certification_items',
  {
    id: text().primaryKey(),
    campaignId: text().notNull(),
    agentId: text().notNull(),
    ownerId: text(),
    /** JSON: credential kind, delegations, granted vs used, last use, at the campaign's opening. */
    snapshot: text().notNull(),
    /** keep / reduce / remove by the owner (or an administrator); lapsed when the deadline passed. */
    decision: text({ enum: ['keep', 'reduce', 'remove', 'lapsed'] }),
    decidedBy: text(),
    decidedAt: integer(),
    /** JSON: what the decision changed (the scopes kept on reduce). */
    outcome: text(),
  },
  (t) => [
    index('certification_items_campaign_idx').on(t.campaignId),
    index('certification_items_owner_idx').on(t.ownerId),
  ],
);
