import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

/**
 * `errand-admin policy test` as a CI job runs it (README "Organisation policies"): the real entry
 * point in a child process, with files on disk and no database or master key at all.
 */

const ROOT = join(import.meta.dirname, '..', '..');
/** Generous: the child compiles TypeScript on a loaded two-core machine. */
const SLOW = 120_000;

const dir = mkdtempSync(join(tmpdir(), 'errand-policy-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(
  args: string[],
  env: Record<string, string> = { ERRAND_DATA_DIR: dir },
  stdin = '',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=@errand/source', '--import', 'tsx', 'broker/cli/main.ts', ...args],
      {
        cwd: ROOT,
        // By default no setting but the data directory: the temporary one, which must stay empty.
        env: { PATH: process.env.PATH, ...env },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const POLICIES = `@id("default")
permit (principal, action in Errand::Action::"delegated", resource);

@id("office-hours")
forbid (principal, action == Errand::Action::"exchange", resource == Errand::Resource::"https://payroll.example/api")
  unless { context.utc_hour >= 8 && context.utc_hour < 18 };
`;
const at = (hour: string, expect: 'allow' | 'deny', name: string) => ({
  name,
  action: 'exchange',
  agent: { id: 'agt_payroll' },
  user: { id: 'usr_ann', groups: ['finance'] },
  resource: { url: 'https://payroll.example/api' },
  context: { request_time: `2026-03-02T${hour}:00:00Z` },
  expect,
});

describe('errand-admin policy test', () => {
  test(
    'passing tests exit 0 and print each result; no database is created',
    async () => {
      const run = await cli([
        'policy',
        'test',
        '--policies',
        file('ok.cedar', POLICIES),
        '--tests',
        file(
          'ok.json',
          JSON.stringify([at('10', 'allow', 'payroll in office hours'), at('22', 'deny', 'payroll at night')]),
        ),
      ]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('PASS  payroll in office hours: expected allow, got allow (default)');
      expect(run.stdout).toContain('PASS  payroll at night: expected deny, got deny (office-hours)');
      expect(run.stdout).toContain('2 passed, 0 failed');
      expect(readdirSync(dir).filter((f) => !f.endsWith('.cedar') && !f.endsWith('.json'))).toEqual([]);
      expect(existsSync(join(dir, 'errand.db'))).toBe(false);
    },
    SLOW,
  );

  test(
    'a failing test exits 1 and says which; --json gives the results',
    async () => {
      const args = [
        'policy',
        'test',
        '--policies',
        file('fail.cedar', POLICIES),
        '--tests',
        file('fail.json', JSON.stringify([at('22', 'allow', 'payroll at night is fine')])),
      ];
      const run = await cli(args);
      expect(run.code).toBe(1);
      expect(run.stdout).toContain('FAIL  payroll at night is fine: expected allow, got deny (office-hours)');
      expect(run.stdout).toContain('0 passed, 1 failed');
      const asJson = await cli([...args, '--json']);
      expect(asJson.code).toBe(1);
      expect(JSON.parse(asJson.stdout)).toMatchObject({ valid: true, passed: 0, failed: 1 });
    },
    SLOW,
  );

  test(
    'policies that do not validate exit 1 naming the policy; a broken tests file and missing options too',
    async () => {
      const bad = await cli([
        'policy',
        'test',
        '--policies',
        file(
          'bad.cedar',
          `${POLICIES}\n@id("typo")\nforbid (principal, action, resource) when { principal.nmae == "x" };\n`,
        ),
        '--tests',
        file('empty.json', '[]'),
      ]);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toContain('the policies do not validate');
      expect(bad.stdout).toContain('typo:');
      const tests = await cli([
        'policy',
        'test',
        '--policies',
        file('p.cedar', POLICIES),
        '--tests',
        file('broken.json', JSON.stringify([{ name: 'x', action: 'fly' }])),
      ]);
      expect(tests.code).toBe(1);
      expect(tests.stdout).toContain('invalid tests file');
      const missing = await cli(['policy', 'test', '--policies', file('q.cedar', POLICIES)]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('--tests <file> is required');
      const unknown = await cli(['policy', 'lint']);
      expect(unknown.code).toBe(2);
    },
    SLOW,
  );

  test(
    'publish saves and publishes a version through the installation, refused while a test fails',
    async () => {
      const install = mkdtempSync(join(tmpdir(), 'errand-policy-install-'));
      try {
        const env = { ERRAND_DATA_DIR: install };
        const policies = file('publish.cedar', POLICIES);
        const none = await cli(['policy', 'publish', '--policies', policies], env);
        expect(none.code).toBe(1);
        expect(none.stderr).toContain('there is no installation');
        const boot = await cli(
          ['bootstrap-admin', '--username', 'root', '--password-stdin'],
          env,
          'first admin password 1\n',
        );
        expect(boot.code, boot.stderr).toBe(0);
        const failing = await cli(
          [
            'policy',
            'publish',
            '--policies',
            policies,
            '--tests',
            file('publish-fail.json', JSON.stringify([at('22', 'allow', 'payroll at night is fine')])),
          ],
          env,
        );
        expect(failing.code).toBe(1);
        expect(failing.stderr).toContain('"payroll at night is fine" (expected allow, got deny)');
        const ok = await cli(
          [
            'policy',
            'publish',
            '--policies',
            policies,
            '--tests',
            file('publish-ok.json', JSON.stringify([at('22', 'deny', 'payroll at night')])),
            '--comment',
            'office hours',
            '--json',
          ],
          env,
        );
        expect(ok.code, ok.stderr).toBe(0);
        // The refused one stays a draft (version 1); this one is version 2, published.
        expect(JSON.parse(ok.stdout)).toMatchObject({ version: 2, status: 'published', comment: 'office hours' });
        const invalid = await cli(['policy', 'publish', '--policies', file('bad.cedar', 'permit (principal')], env);
        expect(invalid.code).toBe(1);
        expect(invalid.stderr).toContain('the policies do not validate');
      } finally {
        rmSync(install, { recursive: true, force: true });
      }
    },
    SLOW * 2,
  );
});
