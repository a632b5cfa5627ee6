import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { freePort } from './fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs `broker/main.ts` as `npm start` would, until `until` is seen on stderr or it exits. */
function run(env: Record<string, string>, until?: RegExp) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'broker/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  return new Promise<{ code: number | null; stderr: string; stdout: string; kill: () => Promise<number | null> }>(
    (resolve) => {
      const kill = () =>
        new Promise<number | null>((r) => {
          child.once('exit', (code) => r(code));
          child.kill('SIGTERM');
        });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (until?.test(stderr)) resolve({ code: null, stderr, stdout, kill });
      });
      child.on('exit', (code) => resolve({ code, stderr, stdout, kill: async () => code }));
    },
  );
}

describe('start-up', () => {
  test('a bad setting stops start-up with a message naming the variable', async () => {
    const { code, stderr } = await run({ ERRAND_ACCESS_TOKEN_TTL: 'soon', ERRAND_DATA_DIR: '/nonexistent-errand' });
    expect(code).toBe(2);
    expect(stderr).toContain('ERRAND_ACCESS_TOKEN_TTL: must be a whole number of seconds');
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  test('it prints the issuer, the admin URL and a one-time setup link, then shuts down gracefully', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'errand-start-'));
    dirs.push(dir);
    const port = await freePort();
    const started = await run({ ERRAND_PORT: String(port), ERRAND_DATA_DIR: dir }, /setup\?token=\S+/);
    expect(started.stderr).toContain(`Issuer:    http://127.0.0.1:${port}`);
    expect(started.stderr).toContain(`Admin:     http://127.0.0.1:${port}/admin`);
    const link = /(http:\/\/\S+\/setup\?token=\S+)/.exec(started.stderr)?.[1];
    expect(link).toBeDefined();
    const meta = await fetch(`http://127.0.0.1:${port}/.well-known/oauth-authorization-server`);
    expect(meta.status).toBe(200);
    expect(((await meta.json()) as { issuer: string }).issuer).toBe(`http://127.0.0.1:${port}`);
    expect((await fetch(link!)).status).toBe(200);
    // No secret material in the logs.
    expect(started.stdout).not.toContain(new URL(link!).searchParams.get('token')!);
    // The database and its WAL and shared-memory files hold sealed keys and hashes: owner only.
    for (const file of ['errand.db', 'errand.db-wal', 'errand.db-shm', 'master.key']) {
      expect((statSync(join(dir, file)).mode & 0o777).toString(8), file).toBe('600');
    }
    expect(await started.kill()).toBe(0);
  });

  test('a wrong master key for an existing database stops start-up with a clear message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'errand-mk-'));
    dirs.push(dir);
    const port = await freePort();
    const key = Buffer.alloc(32, 1).toString('base64url');
    const first = await run(
      { ERRAND_PORT: String(port), ERRAND_DATA_DIR: dir, ERRAND_MASTER_KEY: key },
      /Errand is running/,
    );
    await first.kill();
    const other = Buffer.alloc(32, 2).toString('base64url');
    const second = await run({ ERRAND_PORT: String(port), ERRAND_DATA_DIR: dir, ERRAND_MASTER_KEY: other });
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/master key does not match/);
  });
});
