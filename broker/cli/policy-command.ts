import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseParams } from '../http/params.js';
import {
  policyVersionView,
  SavePolicySchema,
  savePolicyDraft,
  setPolicyStatus,
} from '../services/policy/policy-admin.js';
import { PolicyTestsSchema, runPolicyTests } from '../services/policy/policy-tests.js';
import type { Command, CommandContext, Output } from './command.js';
import { UsageError } from './input.js';

function readText(option: string, path: unknown): string {
  if (typeof path !== 'string' || !path) throw new UsageError(`--${option} <file> is required`);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--${option}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** The tests file: a JSON array of policy tests ([] when --tests is not given and `optional`). */
function readTests(path: unknown, optional: boolean): unknown {
  if (optional && path === undefined) return [];
  try {
    return JSON.parse(readText('tests', path));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError('--tests: the file is not JSON (a JSON array of policy tests)');
  }
}

/** `policy test`: validate and run the tests offline. */
function testPolicies(ctx: CommandContext): Output {
  const text = readText('policies', ctx.values.policies);
  const tests = PolicyTestsSchema.safeParse(readTests(ctx.values.tests, false));
  if (!tests.success) {
    const lines = tests.error.issues.slice(0, 10).map((i) => `  tests[${i.path.join('.')}]: ${i.message}`);
    return {
      json: { valid: false, problems: z.treeifyError(tests.error) },
      text: ['invalid tests file:', ...lines].join('\n'),
      exitCode: 1,
    };
  }
  const run = runPolicyTests(text, tests.data, ctx.now());
  if (!run.ok) {
    const lines = run.problems.map(
      (p) => `  ${p.policy ?? '(policy set)'}: ${p.message}${p.help ? ` (${p.help})` : ''}`,
    );
    return {
      json: { valid: false, problems: run.problems },
      text: ['the policies do not validate:', ...lines].join('\n'),
      exitCode: 1,
    };
  }
  const lines = run.results.map(
    (r) =>
      `${r.passed ? 'PASS' : 'FAIL'}  ${r.name}: expected ${r.expect}, got ${r.actual}${r.policies.length ? ` (${r.policies.join(', ')})` : ''}`,
  );
  lines.push(`${run.passed} passed, ${run.failed} failed`);
  return {
    json: { valid: true, passed: run.passed, failed: run.failed, results: run.results },
    text: lines.join('\n'),
    exitCode: run.failed > 0 ? 1 : 0,
  };
}

/** `policy publish`: save as a new version and publish it, through the same services as the admin API. */
async function publishPolicies(ctx: CommandContext): Promise<Output> {
  const input = parseParams(SavePolicySchema, {
    text: readText('policies', ctx.values.policies),
    tests: readTests(ctx.values.tests, true),
    ...(typeof ctx.values.comment === 'string' ? { comment: ctx.values.comment } : {}),
  });
  const engine = await ctx.engine();
  const admin = await ctx.actingAdmin();
  const actor = { adminId: admin.id, requestId: ctx.requestId };
  const deps = {
    db: engine.db,
    policyStore: engine.policyStore,
    policy: engine.policy,
    audit: engine.audit,
    clock: engine.clock,
  };
  const saved = await savePolicyDraft(deps, input, actor);
  // Refused (exit 1, the draft kept) when a test fails: fix the file and publish again.
  const published = await setPolicyStatus(deps, saved.version, 'published', actor);
  return { json: policyVersionView(published), text: `policy version ${published.version} published` };
}

/**
 * `errand-admin policy test|publish` (README "Organisation policies"). `test` validates a Cedar file
 * against Errand's schema and runs a tests file against it offline (no database, no master key):
 * the policy tests in CI; exit 1 on a validation problem or a failing test. `publish` saves them as a
 * new version and publishes it, refused when a test fails.
 */
export const policyCommand: Command = {
  name: 'policy',
  summary: 'policy test: run policy tests offline (CI); policy publish: save and publish a version',
  usage:
    'policy (test --policies FILE.cedar --tests FILE.json | publish --policies FILE.cedar [--tests FILE.json] [--comment TEXT] [--as USERNAME])',
  help: [
    "test: validates the Cedar policies against Errand's schema and runs the tests (a JSON array of policy",
    'tests, the format of the console and of POST /api/admin/policies/check), printing each result. Needs no',
    'database. Exit code 1 when the policies do not validate or any test fails.',
    'publish: saves the policies and tests as a new version and publishes it (policy.saved, policy.published);',
    'refused, with the failing tests named, when any test fails (the version stays a draft).',
  ].join('\n'),
  options: {
    policies: { type: 'string' },
    tests: { type: 'string' },
    comment: { type: 'string' },
    as: { type: 'string' },
  },
  positionals: ['test|publish'],
  usesEngine: (positionals) => positionals[0] === 'publish',
  async run(ctx) {
    if (ctx.positionals[0] === 'test') return testPolicies(ctx);
    if (ctx.positionals[0] === 'publish') return publishPolicies(ctx);
    throw new UsageError(`unknown policy command "${ctx.positionals[0]}" (test or publish)`);
  },
};
