import { z } from 'zod';
import type { AuditStore } from '../../../db/stores/audit-store.js';
import type { PolicyStore, PolicyVersion } from '../../../db/stores/policy-store.js';
import { OAuthError } from '../../core/errors.js';
import { policyVersionView } from './policy-admin.js';
import type { PolicyTestRun } from './policy-tests.js';
import { DEFAULT_POLICIES } from './schema.js';

/**
 * What the admin API and the console show of policies (README "Organisation policies"): the
 * versions with the built-in default, check results, and what a version in shadow would decide
 * differently. Both doors call these, so they never disagree.
 */

const ProblemViewSchema = z
  .object({ policy: z.string().nullable(), message: z.string(), help: z.string().optional() })
  .strict();

export const PolicyVersionViewSchema = z
  .object({
    version: z.number().int(),
    status: z.enum(['draft', 'shadow', 'published', 'retired', 'built_in']),
    text: z.string(),
    tests: z.array(z.unknown()),
    comment: z.string().nullable(),
    created_by: z.string().nullable(),
    created_at: z.number().int().nullable(),
    changed_by: z.string().nullable(),
    changed_at: z.number().int().nullable(),
  })
  .strict();
export type PolicyVersionView = z.infer<typeof PolicyVersionViewSchema>;

export const PolicyVersionListViewSchema = z
  .object({
    /** The enforced version (0: the built-in default) and the one in shadow. */
    published: z.number().int(),
    shadow: z.number().int().nullable(),
    versions: z.array(PolicyVersionViewSchema),
  })
  .strict();

export const PolicyCheckViewSchema = z
  .object({
    valid: z.boolean(),
    problems: z.array(ProblemViewSchema),
    passed: z.number().int(),
    failed: z.number().int(),
    results: z.array(
      z
        .object({
          name: z.string(),
          expect: z.enum(['allow', 'deny']),
          actual: z.enum(['allow', 'deny']),
          passed: z.boolean(),
          policies: z.array(z.string()),
          errors: z.array(ProblemViewSchema),
        })
        .strict(),
    ),
  })
  .strict();
export type PolicyCheckView = z.infer<typeof PolicyCheckViewSchema>;

/** The built-in default, shown as version 0 while nothing is published. */
export function builtInVersionView(): PolicyVersionView {
  return {
    version: 0,
    status: 'built_in',
    text: DEFAULT_POLICIES,
    tests: [],
    comment: 'Built-in default: everything the delegation rules allow',
    created_by: null,
    created_at: null,
    changed_by: null,
    changed_at: null,
  };
}

/** Saved versions newest first, with the built-in default last while no version is published. */
export async function listPolicyVersions(deps: { policyStore: PolicyStore }) {
  const [rows, heads] = await Promise.all([deps.policyStore.list(500), deps.policyStore.heads()]);
  const versions: PolicyVersionView[] = rows.map(policyVersionView);
  if (heads.published === null) versions.push(builtInVersionView());
  return { published: heads.published ?? 0, shadow: heads.shadow, versions };
}

/** One version, or the built-in default for 0. */
export async function getPolicyVersion(deps: { policyStore: PolicyStore }, version: number) {
  if (version === 0) return builtInVersionView();
  const row: PolicyVersion | null = await deps.policyStore.get(version);
  if (!row) throw new OAuthError('not_found', `no policy version ${version}`);
  return policyVersionView(row);
}

/** A check's outcome as the wire shows it (problems when the text does not validate, else the test results). */
export function checkView(run: PolicyTestRun): PolicyCheckView {
  if (!run.ok) return { valid: false, problems: run.problems, passed: 0, failed: 0, results: [] };
  return { valid: true, problems: [], passed: run.passed, failed: run.failed, results: run.results };
}

/** A version number in a path (`/api/admin/policies/:version`). */
export const PolicyVersionParamSchema = z.coerce.number().int().min(0).max(1_000_000_000);

export const ShadowDecisionsQuerySchema = z
  .object({
    /** The shadow version to show; default: the one in shadow now. */
    version: z.coerce.number().int().min(1).max(1_000_000_000).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
  })
  .strict();

const ShadowDecisionViewSchema = z
  .object({
    id: z.string(),
    at: z.number().int(),
    request_id: z.string().nullable(),
    action: z.string(),
    principal: z.string(),
    resource: z.string(),
    user_id: z.string().nullable(),
    enforced_version: z.number().int(),
    enforced: z.enum(['allow', 'deny']),
    shadow_version: z.number().int(),
    /** What the shadow version would have decided: `deny` where the enforced one allowed, or the reverse. */
    shadow: z.enum(['allow', 'deny']),
    shadow_policies: z.array(z.string()),
  })
  .strict();
export type ShadowDecisionView = z.infer<typeof ShadowDecisionViewSchema>;

export const ShadowDecisionsViewSchema = z
  .object({ version: z.number().int().nullable(), decisions: z.array(ShadowDecisionViewSchema) })
  .strict();

/**
 * The `policy.shadow_decision` audit events of a shadow version, newest first: the live requests
 * where it would have decided differently from the enforced version.
 */
export async function listShadowDecisions(
  deps: { audit: AuditStore; policyStore: PolicyStore },
  q: z.output<typeof ShadowDecisionsQuerySchema>,
): Promise<z.infer<typeof ShadowDecisionsViewSchema>> {
  const version = q.version ?? (await deps.policyStore.heads()).shadow;
  if (version === null) return { version: null, decisions: [] };
  // The version is in the event's details; the newest events are read and filtered (bounded).
  const events = await deps.audit.query({ type: 'policy.shadow_decision', limit: 5000 });
  const decisions: ShadowDecisionView[] = [];
  for (const e of events) {
    const d = e.details as Record<string, unknown>;
    if (d.shadow_version !== version) continue;
    decisions.push({
      id: e.id,
      at: e.at,
      request_id: e.requestId,
      action: String(d.action ?? ''),
      principal: String(d.principal ?? ''),
      resource: String(d.resource ?? ''),
      user_id: e.userId,
      enforced_version: Number(d.enforced_version ?? 0),
      enforced: d.enforced === 'allow' ? 'allow' : 'deny',
      shadow_version: version,
      shadow: d.shadow === 'allow' ? 'allow' : 'deny',
      shadow_policies: Array.isArray(d.shadow_policies) ? d.shadow_policies.map(String) : [],
    });
    if (decisions.length >= q.limit) break;
  }
  return { version, decisions };
}
