import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'libsql';
import { afterAll, describe, expect, test } from 'vitest';
import { dropTestDatabase, postgresMode } from '../../e2e/postgres/databases.js';
import { dbEnv, freePort } from './fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) {
    rmSync(d, { recursive: true, force: true });
    await dropTestDatabase(d);
  }
});

/** Runs `broker/main.ts` as `npm start` would, until `until` is seen on stderr or it exits. */
function run(env: Record<string, string>, until?: RegExp, as?: { uid: number; gid: number }) {
  const child = spawn(process.execPath, ['--conditions=@errand/source', '--import', 'tsx', 'broker/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(as ?? {}),
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
    const db = await dbEnv(dir);
    const first = await run(
      { ERRAND_PORT: String(port), ERRAND_DATA_DIR: dir, ERRAND_MASTER_KEY: key, ...db },
      /Errand is running/,
    );
    await first.kill();
    const other = Buffer.alloc(32, 2).toString('base64url');
    const second = await run({ ERRAND_PORT: String(port), ERRAND_DATA_DIR: dir, ERRAND_MASTER_KEY: other, ...db });
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/master key does not match/);
  });
});

/** An installation made by a first start of the broker, then stopped: its data directory. */
async function installed(env: Record<string, string> = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'errand-inst-'));
  dirs.push(dir);
  const first = await run({ ERRAND_PORT: String(await freePort()), ERRAND_DATA_DIR: dir, ...env }, /Errand is running/);
  if (first.code !== null) throw new Error(`the first start failed: ${first.stderr}`);
  expect(await first.kill()).toBe(0);
  return dir;
}

/** A start expected to be refused; one that starts serving instead is stopped and reported as such. */
async function refusedStart(env: Record<string, string>, as?: { uid: number; gid: number }) {
  const started = await run({ ERRAND_PORT: String(await freePort()), ...env }, /Errand is running/, as);
  if (started.code === null) await started.kill();
  return { code: started.code, stderr: started.stderr, stdout: started.stdout };
}

// Modes, ownership and damage of the embedded file in the data directory.
describe.skipIf(postgresMode())('start-up checks of the data directory and the database', () => {
  test('an emptied database beside an earlier installation’s master key is refused, naming the file and the setting; the setting allows a deliberate reset', async () => {
    const dir = await installed();
    const db = join(dir, 'errand.db');
    const key = readFileSync(join(dir, 'master.key'), 'utf8');
    truncateSync(db, 0);
    for (const f of [`${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });

    const port = await freePort();
    const refused = await refusedStart({ ERRAND_PORT: String(port), ERRAND_DATA_DIR: dir });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`the database ${db} is empty`);
    expect(refused.stderr).toContain(join(dir, 'master.key'));
    expect(refused.stderr).toContain('ERRAND_ALLOW_EMPTY_DATABASE=true');
    expect(refused.stderr).not.toMatch(/setup\?token=/);
    // Refused before SQLite opened it: the file is as it was.
    expect(statSync(db).size).toBe(0);
    expect(existsSync(`${db}-wal`)).toBe(false);

    const reset = await run(
      { ERRAND_PORT: String(port), ERRAND_DATA_DIR: dir, ERRAND_ALLOW_EMPTY_DATABASE: 'true' },
      /setup\?token=\S+/,
    );
    expect(reset.code).toBeNull();
    expect(reset.stdout).toContain('"database.reset"');
    expect(await reset.kill()).toBe(0);
    // The deliberate reset keeps the installation's master key.
    expect(readFileSync(join(dir, 'master.key'), 'utf8')).toBe(key);
  });

  test('a zero-length database file beside a -wal file holding data is refused before SQLite can discard that data', async () => {
    // The key comes from the environment: the -wal file is the only trace of the installation.
    const masterKey = Buffer.alloc(32, 5).toString('base64url');
    const dir = await installed({ ERRAND_MASTER_KEY: masterKey });
    const db = join(dir, 'errand.db');
    expect(existsSync(join(dir, 'master.key'))).toBe(false);
    // A process that wrote and died without checkpointing leaves its transactions in the -wal file.
    const crashed = spawnSync(
      process.execPath,
      [
        '-e',
        `const D = require('libsql'); const db = new D(process.argv[1]);
         db.prepare('INSERT INTO used_assertions (key, expires_at) VALUES (?, ?)').run(['k', 1]); process.exit(0);`,
        db,
      ],
      { cwd: ROOT },
    );
    expect(crashed.status).toBe(0);
    const walSize = statSync(`${db}-wal`).size;
    expect(walSize).toBeGreaterThan(0);
    truncateSync(db, 0);

    const refused = await refusedStart({ ERRAND_DATA_DIR: dir, ERRAND_MASTER_KEY: masterKey });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      `the database ${db} is empty, but files of an earlier installation are present (${db}-wal)`,
    );
    expect(statSync(`${db}-wal`).size).toBe(walSize);
    expect(statSync(db).size).toBe(0);
  });

  test('a missing master key file for an existing database is reported as missing, and no key file is written', async () => {
    const dir = await installed();
    rmSync(join(dir, 'master.key'));
    const { code, stderr } = await refusedStart({ ERRAND_DATA_DIR: dir });
    expect(code).toBe(2);
    expect(stderr).toContain(`the master key file ${join(dir, 'master.key')} is missing`);
    expect(stderr).not.toMatch(/does not match/);
    expect(readdirSync(dir).filter((f) => f.includes('master.key'))).toEqual([]);
  });

  test('a database written by a newer Errand is refused, naming its schema version and this build’s', async () => {
    const dir = await installed();
    const db = new Database(join(dir, 'errand.db'));
    const [newest] = db.prepare('SELECT max(tag) FROM errand_migrations').raw(true).get([]) as string[];
    db.prepare('INSERT INTO errand_migrations (tag, applied_at) VALUES (?, ?)').run(['9999_later_feature', 1]);
    db.close();
    const { code, stderr } = await refusedStart({ ERRAND_DATA_DIR: dir });
    expect(code).toBe(2);
    expect(stderr).toContain('schema version 9999_later_feature');
    expect(stderr).toContain(`(${newest})`);
  });

  test('a database with damaged pages is refused at start by quick_check', async () => {
    const dir = await installed();
    const file = join(dir, 'errand.db');
    const db = new Database(file);
    const insert = db.prepare('INSERT INTO used_assertions (key, expires_at) VALUES (?, ?)');
    db.exec('BEGIN');
    for (let i = 0; i < 3000; i++) insert.run([`agt_x:jti-${i}-${'x'.repeat(40)}`, 2_000_000_000]);
    db.exec('COMMIT');
    db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    const { rootpage } = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'used_assertions'").get([]) as {
      rootpage: number;
    };
    db.close();
    // Garbage over one table's root page: nothing read at start touches it, so only a check sees it.
    const fd = openSync(file, 'r+');
    writeSync(fd, randomBytes(4096), 0, 4096, (rootpage - 1) * 4096);
    closeSync(fd);

    const refused = await refusedStart({ ERRAND_DATA_DIR: dir });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`the database ${file} is damaged: PRAGMA quick_check reports`);
    expect(refused.stderr).toContain('restore it from a backup');
  });

  test('a database file the broker’s user cannot write is refused at start, naming the file', async () => {
    // The same test as root and as another user: root ignores file modes, so as root the broker runs
    // as "nobody" over a root-owned file; otherwise the file is made read-only.
    const masterKey = Buffer.alloc(32, 9).toString('base64url');
    const dir = await installed({ ERRAND_MASTER_KEY: masterKey });
    const file = join(dir, 'errand.db');
    const root = process.getuid?.() === 0;
    if (root) {
      chmodSync(dir, 0o755);
      chmodSync(file, 0o644);
    } else {
      chmodSync(file, 0o444);
    }
    const { code, stderr } = await refusedStart(
      { ERRAND_DATA_DIR: dir, ERRAND_MASTER_KEY: masterKey },
      root ? { uid: 65534, gid: 65534 } : undefined,
    );
    chmodSync(file, 0o600);
    expect(code).toBe(2);
    expect(stderr).toContain(`cannot write the database file ${file} (EACCES)`);
    expect(existsSync(file)).toBe(true);
  });
});
