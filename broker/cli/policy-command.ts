import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PolicyTestsSchema, runPolicyTests } from '../services/policy/policy-tests.js';
import type { Command } from './command.js';
import { UsageError } from './input.js';

function readText(option: string, path: unknown): string {
  if (typeof path !== 'string' || !path) throw new UsageError(`--${option} <file> is required`);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--${option}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/**
 * `errand-admin policy test`: the organisation's policy tests in CI (README "Organisation
 * policies"). Validates a Cedar file against Errand's schema and runs a tests file against it,
 * offline: no database, no master key. Exit 1 on a validation problem or any failing test.
 */
export const policyCommand: Command = {
  name: 'policy',
  summary: 'policy test: validate policies and run their tests offline (for CI)',
  usage: 'policy test --policies FILE.cedar --tests FILE.json',
  help: [
    "Validates the Cedar policies against Errand's schema and runs the tests (a JSON array of policy tests,",
    'the format of the console and of POST /api/admin/policies/check), printing each result.',
    'Needs no database. Exit code 1 when the policies do not validate or any test fails.',
  ].join('\n'),
  options: { policies: { type: 'string' }, tests: { type: 'string' } },
  positionals: ['test'],
  usesEngine: false,
  async run(ctx) {
    if (ctx.positionals[0] !== 'test') throw new UsageError(`unknown policy command "${ctx.positionals[0]}"`);
    const text = readText('policies', ctx.values.policies);
    const testsText = readText('tests', ctx.values.tests);
    let raw: unknown;
    try {
      raw = JSON.parse(testsText);
    } catch {
      throw new UsageError('--tests: the file is not JSON (a JSON array of policy tests)');
    }
    const tests = PolicyTestsSchema.safeParse(raw);
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
  },
};
