import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { postgresMode } from '../../e2e/postgres/databases.js';
import { freePort } from './fixtures.js';

/**
 * The production start: the compiled build (`npm run build`) started the two ways people start it,
 * `npm start` (README "Quick start") and `node dist/broker/main.js` (the container's entry point,
 * README "Deploying"). A SIGTERM or SIGINT sent to the process that was started reaches the broker,
 * which drains and logs `broker.stopped`; nothing keeps serving after the started process is gone.
 *
 * The build goes to a temporary package folder (package.json, node_modules linked, dist/) so the
 * test runs exactly what `npm start` runs there, with the real npm, and leaves the checkout alone.
 */

const ROOT = join(import.meta.dirname, '..', '..');
/** Generous bounds for a loaded two-core machine; the figures measured are printed. */
const READY_WITHIN_MS = 60_000;
const EXIT_WITHIN_MS = 60_000;

/**
 * The Dockerfile's instructions, continuation lines joined. No container engine runs on the CI
 * machine, so the image's entry point and health check are run here from a built tree instead.
 */
function dockerfile(): { cmd: string[]; healthcheck: string[]; stopSignal: string } {
  const lines = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => !l.startsWith('#'));
  const json = (prefix: RegExp) => {
    const line = lines.find((l) => prefix.test(l));
    if (!line) throw new Error(`Dockerfile: no ${prefix}`);
    return JSON.parse(line.slice(line.indexOf('['))) as string[];
  };
  const stop = lines.find((l) => l.startsWith('STOPSIGNAL '));
  return { cmd: json(/^CMD \[/), healthcheck: json(/^HEALTHCHECK .*CMD \[/), stopSignal: stop?.split(/\s+/)[1] ?? '' };
}

let pkg = '';
const dirs: string[] = [];
const children: ChildProcess[] = [];

beforeAll(() => {
  pkg = mkdtempSync(join(tmpdir(), 'errand-build-'));
  dirs.push(pkg);
  copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(pkg, 'node_modules'), 'dir');
  const started = Date.now();
  const build = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--out', join(pkg, 'dist')], {
    encoding: 'utf8',
  });
  if (build.status !== 0) throw new Error(`the build failed:\n${build.stdout}\n${build.stderr}`);
  console.log(`build: ${Date.now() - started} ms`);
}, 240_000);

afterAll(() => {
  for (const c of children) {
    if (c.pid === undefined) continue;
    try {
      process.kill(-c.pid, 'SIGKILL'); // the whole group: npm, and a broker npm may have left behind
    } catch {
      // already gone
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Started {
  child: ChildProcess;
  port: number;
  logs: { event?: string; [k: string]: unknown }[];
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `command` in the built package folder on a free port with a fresh data dir; waits for /readyz. */
async function start(command: string, args: string[]): Promise<Started> {
  const data = mkdtempSync(join(tmpdir(), 'errand-prod-data-'));
  dirs.push(data);
  const port = await freePort();
  const child = spawn(command, args, {
    cwd: pkg,
    // Its own process group, so that cleanup can reach whatever it started; signals in the test
    // go to the started process alone, as a container runtime or `kill PID` would send them.
    detached: true,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? pkg,
      ERRAND_PORT: String(port),
      ERRAND_ISSUER: `http://127.0.0.1:${port}`,
      ERRAND_DATA_DIR: data,
      ERRAND_LOG_LEVEL: 'info',
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const logs: Started['logs'] = [];
  let text = '';
  let partial = '';
  child.stdout?.on('data', (d: Buffer) => {
    text += d.toString();
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line));
  });
  child.stderr?.on('data', (d: Buffer) => {
    text += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const began = Date.now();
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`${command} exited before the broker was ready:\n${text}`);
    if (Date.now() - began > READY_WITHIN_MS) throw new Error(`the broker did not become ready:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`${command} ${args.join(' ')}: ready in ${Date.now() - began} ms`);
  return { child, port, logs, output: () => text, exited };
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Sends `signal` to the started process only; resolves with its exit and whether the port closed. */
async function stop(s: Started, signal: NodeJS.Signals) {
  const sent = Date.now();
  s.child.kill(signal);
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), EXIT_WITHIN_MS).unref());
  const exit = await Promise.race([s.exited, timeout]);
  const exitMs = Date.now() - sent;
  // The started process is gone; whatever it ran must be gone too. A broker left behind keeps
  // listening, so give the port a few seconds to close before calling it left open.
  let open = await listening(s.port);
  for (let i = 0; open && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    open = await listening(s.port);
  }
  console.log(`${signal}: started process exited in ${exitMs} ms with ${JSON.stringify(exit)}`);
  return { exit, open };
}

// The compiled build's start and signals: the database behind it changes nothing, the embedded run covers it.
describe.skipIf(postgresMode())('production start from the compiled build', () => {
  test('the build holds the entry point and the migrations next to the compiled database module', () => {
    expect(existsSync(join(pkg, 'dist', 'broker', 'main.js'))).toBe(true);
    expect(existsSync(join(pkg, 'dist', 'db', 'migrations', 'meta', '_journal.json'))).toBe(true);
    expect(existsSync(join(pkg, 'dist', 'db', 'migrations-pg', 'meta', '_journal.json'))).toBe(true);
    expect(existsSync(join(pkg, 'dist', 'broker', 'test'))).toBe(false);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal} to the npm start process reaches the broker, which drains and stops; npm exits 0`, async () => {
      const s = await start('npm', ['start']);
      const { exit, open } = await stop(s, signal);
      expect(exit, s.output()).toEqual({ code: 0, signal: null });
      expect(open, `port ${s.port} still accepts connections after npm exited:\n${s.output()}`).toBe(false);
      expect(s.logs.find((l) => l.event === 'broker.stopping')).toMatchObject({ signal });
      expect(s.logs.find((l) => l.event === 'broker.stopped')).toMatchObject({ signal, clean: true });
    }, 150_000);
  }

  test('the Dockerfile entry point (exec form, run from the built tree) drains on its stop signal and exits 0', async () => {
    const image = dockerfile();
    expect(image.cmd).toEqual(['node', 'dist/broker/main.js']);
    expect(image.stopSignal).toBe('SIGTERM');
    const [command, ...args] = image.cmd;
    const s = await start(command === 'node' ? process.execPath : String(command), args);
    // The image's HEALTHCHECK command, as the container runtime would run it inside the container.
    const health = (env: Record<string, string>) =>
      spawnSync(
        image.healthcheck[0] === 'node' ? process.execPath : String(image.healthcheck[0]),
        image.healthcheck.slice(1),
        {
          env: { PATH: process.env.PATH, ...env },
          timeout: 30_000,
        },
      ).status;
    expect(health({ ERRAND_PORT: String(s.port) })).toBe(0);
    const { exit, open } = await stop(s, 'SIGTERM');
    expect(exit, s.output()).toEqual({ code: 0, signal: null });
    expect(open).toBe(false);
    expect(s.logs.find((l) => l.event === 'broker.stopped')).toMatchObject({ signal: 'SIGTERM', clean: true });
    expect(health({ ERRAND_PORT: String(s.port) })).not.toBe(0);
  }, 150_000);

  test("the package's bin, errand-admin, runs from the build: bootstrap an administrator, then list as JSON", () => {
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const bin = String(manifest.bin['errand-admin']);
    expect(bin).toBe('dist/broker/cli/main.js');
    expect(readFileSync(join(pkg, bin), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const dataDir = mkdtempSync(join(tmpdir(), 'errand-cli-build-'));
    dirs.push(dataDir);
    const run = (args: string[], input = '') =>
      spawnSync(process.execPath, [join(pkg, bin), ...args], {
        cwd: pkg,
        input,
        encoding: 'utf8',
        env: { PATH: process.env.PATH, ERRAND_DATA_DIR: dataDir },
        timeout: 60_000,
      });
    const boot = run(
      ['bootstrap-admin', '--username', 'root', '--password-stdin', '--json'],
      'a long enough password\n',
    );
    expect(boot.status, boot.stderr).toBe(0);
    expect(JSON.parse(boot.stdout)).toMatchObject({ username: 'root', role: 'admin' });
    const again = run(
      ['bootstrap-admin', '--username', 'other', '--password-stdin', '--json'],
      'another long password\n',
    );
    expect(again.status).toBe(1);
    expect(JSON.parse(again.stderr)).toMatchObject({ error: 'conflict' });
    const list = run(['list-agents', '--json']);
    expect(list.status, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual({ agents: [] });
  }, 120_000);
});
