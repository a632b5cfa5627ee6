import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { freePort } from './fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'errand-start-err-'));
  dirs.push(dir);
  return dir;
}

/** Runs `broker/main.ts` as `npm start` would, until `until` is seen on stderr or it exits. */
function run(env: Record<string, string>, until?: RegExp) {
  const child = spawn(process.execPath, ['--conditions=@errand/source', '--import', 'tsx', 'broker/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  return new Promise<{ code: number | null; stderr: string; stdout: string; stop: () => Promise<number | null> }>(
    (resolve) => {
      const stop = () =>
        new Promise<number | null>((r) => {
          child.once('exit', (code) => r(code));
          child.kill('SIGTERM');
        });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (until?.test(stderr)) resolve({ code: null, stderr, stdout, stop });
      });
      child.on('exit', (code) => resolve({ code, stderr, stdout, stop: async () => code }));
    },
  );
}

describe('start-up errors a person can act on', () => {
  test('a port in use stops start-up with exit code 2, the port, the host and what to do, without a stack trace', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const { code, stderr } = await run({ ERRAND_PORT: String(port), ERRAND_DATA_DIR: dataDir() });
      expect(code).toBe(2);
      expect(stderr).toContain(
        `errand: port ${port} on 127.0.0.1 is already in use; set ERRAND_PORT or stop the other process`,
      );
      expect(stderr).not.toMatch(/\n\s+at /);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });

  test('a management (metrics) port in use stops start-up naming ERRAND_METRICS_PORT', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const { code, stderr } = await run({
        ERRAND_PORT: String(await freePort()),
        ERRAND_METRICS_PORT: String(port),
        ERRAND_DATA_DIR: dataDir(),
      });
      expect(code).toBe(2);
      expect(stderr).toContain(
        `errand: port ${port} on 127.0.0.1 is already in use; set ERRAND_METRICS_PORT or stop the other process`,
      );
      expect(stderr).not.toMatch(/\n\s+at /);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });

  test.each([
    ['libsql', 'libsql://127.0.0.1:PORT'],
    ['http', 'http://127.0.0.1:PORT/db?tls=0'],
  ])(
    'an unreachable %s database server stops start-up naming the URL without its query, the cause and a hint',
    async (_, template) => {
      const closed = await freePort();
      const url = template.replace('PORT', String(closed));
      const { code, stderr } = await run({
        ERRAND_PORT: String(await freePort()),
        ERRAND_DATA_DIR: dataDir(),
        ERRAND_DB_URL: url,
        ERRAND_DB_AUTH_TOKEN: 'not-a-real-token-but-secret',
        ERRAND_MASTER_KEY: 'A'.repeat(43),
      });
      expect(code).toBe(2);
      const plain = url.replace(/\?.*$/, '');
      expect(stderr).toContain(`errand: cannot reach the database server ${plain} (ECONNREFUSED`);
      expect(stderr).toContain('start the database server, or correct the host and port in ERRAND_DB_URL');
      expect(stderr).not.toContain('tls=0');
      expect(stderr).not.toContain('not-a-real-token-but-secret');
      expect(stderr).not.toMatch(/\n\s+at /);
    },
  );

  test('credentials written into the database URL are not repeated in the message', async () => {
    const closed = await freePort();
    const { code, stderr } = await run({
      ERRAND_PORT: String(await freePort()),
      ERRAND_DATA_DIR: dataDir(),
      ERRAND_DB_URL: `http://admin:hunter2@127.0.0.1:${closed}?authToken=sekrit`,
      ERRAND_MASTER_KEY: 'A'.repeat(43),
    });
    expect(code).toBe(2);
    expect(stderr).toContain(`errand: cannot reach the database server http://127.0.0.1:${closed}`);
    expect(stderr).toContain('ERRAND_DB_AUTH_TOKEN');
    expect(stderr).not.toMatch(/hunter2|sekrit|admin:/);
  });

  test('misspelt and unknown ERRAND_ variables are warned about, naming the nearest setting; others are not', async () => {
    const port = await freePort();
    const started = await run(
      {
        ERRAND_PORT: String(port),
        ERRAND_DATA_DIR: dataDir(),
        ERRAND_ACESS_TOKEN_TTL: '600',
        ERRAND_LOGLEVEL: 'debug',
        ERRAND_FROBNICATE: '1',
        NOT_ERRAND_ACESS_TOKEN_TTL: '1',
      },
      /Errand is running/,
    );
    try {
      expect(started.code).toBeNull();
      expect(started.stderr).toContain(
        'errand: warning: ERRAND_ACESS_TOKEN_TTL is not a known setting; did you mean ERRAND_ACCESS_TOKEN_TTL?',
      );
      expect(started.stderr).toContain(
        'errand: warning: ERRAND_LOGLEVEL is not a known setting; did you mean ERRAND_LOG_LEVEL?',
      );
      expect(started.stderr).toMatch(/errand: warning: ERRAND_FROBNICATE is not a known setting and is ignored/);
      expect(started.stderr).not.toContain('NOT_ERRAND');
      expect(started.stderr).not.toMatch(/warning: ERRAND_(PORT|DATA_DIR)\b/);
    } finally {
      expect(await started.stop()).toBe(0);
    }
  });
});
