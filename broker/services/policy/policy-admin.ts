import { z } from 'zod';
import type { Db } from '../../../db/open.js';
import type { AuditStore } from '../../../db/stores/audit-store.js';
import type { PolicyStatus, PolicyStore, PolicyVersion } from '../../../db/stores/policy-store.js';
import { OAuthError } from '../../core/errors.js';
import type { Clock } from '../../core/ports.js';
import type { PolicyEngine } from './policy-engine.js';
import type { PolicyProblem } from './policy-set.js';
import { compilePolicies } from './policy-set.js';
import { type PolicyTestRun, PolicyTestsSchema, runPolicyTests } from './policy-tests.js';

export interface PolicyAdminDeps {
  db: Db;
  policyStore: PolicyStore;
  policy: PolicyEngine;
  audit: AuditStore;
  clock: Clock;
}

/** Who changes policies, and from where (audit events). */
export interface PolicyActor {
  adminId: string;
  requestId: string;
  address?: string;
}

const MAX_TEXT = 200_000;

/** A new version: its policies (Cedar text), its tests and a note. */
export const SavePolicySchema = z
  .object({
    text: z.string().max(MAX_TEXT),
    tests: PolicyTestsSchema.default([]),
    comment: z.string().max(500).optional(),
  })
  .strict();

/** Checks a text and runs tests against it without saving anything (the console's "Check" button). */
export const CheckPolicySchema = SavePolicySchema.omit({ comment: true });

/** What to do with a saved version. */
export const PolicyStatusSchema = z.object({ status: z.enum(['draft', 'shadow', 'published']) }).strict();

/** The error a version that does not validate is refused with, listing what Cedar said. */
function invalid(what: string, problems: PolicyProblem[]): OAuthError {
  const listed = problems
    .slice(0, 5)
    .map((p) => `${p.policy ? `${p.policy}: ` : ''}${p.message}`)
    .join('; ');
  return new OAuthError(
    'invalid_request',
    `${what}: ${listed}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}`,
  );
}

/** The wire view of a version. */
export function policyVersionView(v: PolicyVersion) {
  return {
    version: v.version,
    status: v.status,
    text: v.text,
    tests: v.tests,
    comment: v.comment,
    created_by: v.createdBy,
    created_at: v.createdAt,
    changed_by: v.changedBy,
    changed_at: v.changedAt,
  };
}

/** Validates a text and runs the tests (nothing is saved): what the console shows before saving. */
export function checkPolicies(
  deps: Pick<PolicyAdminDeps, 'clock'>,
  input: z.output<typeof CheckPolicySchema>,
): PolicyTestRun {
  return runPolicyTests(input.text, input.tests, deps.clock.now());
}

/** Saves a new draft version; a text that does not validate against the schema is refused. */
export async function savePolicyDraft(
  deps: PolicyAdminDeps,
  input: z.output<typeof SavePolicySchema>,
  actor: PolicyActor,
): Promise<PolicyVersion> {
  const compiled = compilePolicies(input.text);
  if (!compiled.ok) throw invalid('the policies do not validate', compiled.problems);
  const version = await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    const v = await deps.policyStore.insertDraft(
      {
        text: input.text,
        tests: input.tests,
        comment: input.comment ?? null,
        createdBy: actor.adminId,
        createdAt: now,
      },
      tx,
    );
    await deps.audit.append(
      {
        type: 'policy.saved',
        result: 'allowed',
        userId: actor.adminId,
        requestId: actor.requestId,
        details: {
          version: v,
          policies: compiled.set.policies.length,
          tests: input.tests.length,
          ...(actor.address ? { address: actor.address } : {}),
        },
      },
      now,
      tx,
    );
    return v;
  });
  return (await deps.policyStore.get(version)) as PolicyVersion;
}

/**
 * Moves a version: `published` enforces it (the one published before is retired) once it validates
 * and every one of its tests passes; `shadow` evaluates it beside the enforced one (replacing any
 * other shadow); `draft` takes it out of shadow. Every process picks the change up within
 * ERRAND_POLICY_REFRESH; this one at once.
 */
export async function setPolicyStatus(
  deps: PolicyAdminDeps,
  version: number,
  status: Exclude<PolicyStatus, 'retired'>,
  actor: PolicyActor,
): Promise<PolicyVersion> {
  const row = await deps.policyStore.get(version);
  if (!row) throw new OAuthError('not_found', `no policy version ${version}`);
  if (status === 'draft' && row.status !== 'shadow') {
    throw new OAuthError(
      'conflict',
      `version ${version} is ${row.status}: only a version in shadow goes back to draft`,
    );
  }
  if (status === row.status) return row;
  if (status !== 'draft') {
    const tests = PolicyTestsSchema.safeParse(row.tests);
    const run = runPolicyTests(row.text, tests.success ? tests.data : [], deps.clock.now());
    if (!run.ok) throw invalid(`version ${version} does not validate against this release's schema`, run.problems);
    if (status === 'published' && run.failed > 0) {
      const names = run.results
        .filter((r) => !r.passed)
        .map((r) => `"${r.name}" (expected ${r.expect}, got ${r.actual})`);
      throw new OAuthError(
        'invalid_request',
        `version ${version} fails ${run.failed} of its tests: ${names.slice(0, 5).join(', ')}; fix them or the policies before publishing`,
      );
    }
  }
  await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    const current = await deps.policyStore.get(version, tx);
    if (!current) throw new OAuthError('not_found', `no policy version ${version}`);
    if (status === 'published') await deps.policyStore.demote('published', 'retired', tx);
    if (status === 'shadow') await deps.policyStore.demote('shadow', 'draft', tx);
    await deps.policyStore.setStatus(version, status, actor.adminId, now, tx);
    await deps.audit.append(
      {
        type:
          status === 'published' ? 'policy.published' : status === 'shadow' ? 'policy.shadowed' : 'policy.unshadowed',
        result: 'allowed',
        userId: actor.adminId,
        requestId: actor.requestId,
        details: { version, previous_status: current.status, ...(actor.address ? { address: actor.address } : {}) },
      },
      now,
      tx,
    );
  });
  await deps.policy.refresh();
  return (await deps.policyStore.get(version)) as PolicyVersion;
}
