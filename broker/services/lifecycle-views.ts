import { z } from 'zod';

/**
 * What the agent lifecycle endpoints answer (README "Agent lifecycle: owners, certification and
 * right-sizing"), as zod schemas for the OpenAPI document; the views are in usage.ts and certification.ts.
 */

const Time = z.number().int().describe('epoch seconds');
const Scopes = z.array(z.string());
const SplitSchema = z.object({ granted: Scopes, used: Scopes, unused: Scopes }).strict();
const PerResource = z.record(z.string(), SplitSchema).describe('resource URL → granted, used, unused');
const Grants = z.record(z.string(), Scopes).describe('resource URL → scopes');

export const UsageViewSchema = z
  .object({
    agent_id: z.string(),
    days: z.number().int(),
    since: Time,
    observed_from: Time.describe('how far back the issued-token rows reach (ERRAND_RETENTION_TOKENS)'),
    last_used_at: Time.nullable(),
    has_unused: z.boolean(),
    client_scope: SplitSchema.nullable().describe("the client's own scope; null: no client-level limit"),
    resources: SplitSchema,
    delegations: z.array(
      z
        .object({
          delegation_id: z.string(),
          user_id: z.string(),
          resources: PerResource,
          tools: PerResource.describe('resource URL → MCP tools granted, used, unused'),
          last_used_at: Time.nullable(),
          reduce_to: Grants.describe('what a reduction to the used part keeps'),
        })
        .strict(),
    ),
  })
  .strict();

export const ClientUsageViewSchema = UsageViewSchema.extend({
  suggested_policy: z.string().describe('Cedar policy text, one forbid per unused resource; empty when none'),
}).strict();

export const ReducedDelegationViewSchema = z.object({ delegation_id: z.string(), grants: Grants }).strict();

export const CampaignViewSchema = z
  .object({
    campaign_id: z.string(),
    name: z.string(),
    status: z.enum(['open', 'closed']),
    opened_by: z.string().describe('the administrator, or "schedule"'),
    created_at: Time,
    deadline: Time,
    usage_days: z.number().int(),
    closed_at: Time.nullable(),
  })
  .strict();

export const CertificationItemViewSchema = z
  .object({
    item_id: z.string(),
    campaign_id: z.string(),
    agent_id: z.string(),
    owner_id: z.string().nullable(),
    snapshot: z
      .object({
        agent_name: z.string(),
        owner_username: z.string().nullable(),
        owner_status: z.enum(['active', 'missing', 'disabled', 'deleted']),
        credential_kind: z.string(),
        static_secret: z.boolean(),
        usage: UsageViewSchema,
      })
      .strict(),
    decision: z.enum(['keep', 'reduce', 'remove', 'lapsed']).nullable(),
    decided_by: z.string().nullable(),
    decided_at: Time.nullable(),
    outcome: z.record(z.string(), z.unknown()).nullable(),
  })
  .strict();

export const CampaignDetailViewSchema = CampaignViewSchema.extend({
  items: z.array(CertificationItemViewSchema),
}).strict();

export const ClosedCampaignViewSchema = CampaignViewSchema.extend({
  lapsed: z.number().int().describe('items that lapsed (their agents suspended)'),
}).strict();

export const CampaignExportViewSchema = CampaignViewSchema.extend({
  items: z.array(
    z
      .object({
        campaign_id: z.string(),
        campaign_name: z.string(),
        item_id: z.string(),
        agent_id: z.string(),
        agent_name: z.string(),
        owner_id: z.string().nullable(),
        owner_username: z.string().nullable(),
        credential_kind: z.string(),
        static_secret: z.boolean(),
        delegations: z.number().int(),
        granted_unused: z.array(z.string()).describe('resource#scope'),
        last_used_at: Time.nullable(),
        decision: z.enum(['keep', 'reduce', 'remove', 'lapsed']).nullable(),
        decided_by: z.string().nullable(),
        decided_at: Time.nullable(),
      })
      .strict(),
  ),
}).strict();
