import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { eq } from 'drizzle-orm';
import Database from 'libsql';
import { afterEach, describe, expect, test } from 'vitest';
import { type Db, openDb, UnusableDatabaseError } from './open.js';
import { selectOneBy } from './prepared.js';
import { counters, usedAssertions } from './schema/index.js';

const dirs: string[] = [];
const dbs: Db[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) db.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function fresh(driver: 'native' | 'client'): Promise<{ db: Db; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'errand-db-'));
  dirs.push(dir);
  const file = join(dir, 'errand.db');
  const db = await openDb(`file:${file}`, { driver });
  dbs.push(db);
  return { db, file };
}

/** Rows of used_assertions as another connection (another process) sees them. */
function committedKeys(file: string): string[] {
  const other = new Database(file);
  try {
    return (other.prepare('SELECT key FROM used_assertions ORDER BY key').raw(true).all([]) as string[][]).map(
      (r) => r[0]!,
    );
  } finally {
    other.close();
  }
}

const modeOf = (file: string) => (statSync(file).mode & 0o777).toString(8);

describe.each(['native', 'client'] as const)('openDb (%s driver)', (driver) => {
  test('a prepared lookup by key and the query builder on the same SQL each answer for their own key', async () => {
    // The same SELECT arrives as `get` (db/prepared.ts) and as `all` (drizzle's `.limit(1)`): with one
    // statement for both, libsql's `get` after `all` answered with the earlier key's row.
    const { db } = await fresh(driver);
    await db.write(async (tx) => {
      for (const key of ['a', 'b', 'c', 'd'])
        await tx.insert(usedAssertions).values({ key, expiresAt: key.charCodeAt(0) });
    });
    const byKey = selectOneBy(usedAssertions, usedAssertions.key);
    const viaBuilder = async (key: string) =>
      (await db.q.select().from(usedAssertions).where(eq(usedAssertions.key, key)).limit(1))[0]?.key;
    const answers: (string | undefined)[] = [];
    for (const [built, prepared] of [
      ['a', 'b'],
      ['c', 'd'],
      ['b', 'a'],
    ] as const) {
      answers.push(await viaBuilder(built), (await byKey(db.q, prepared))?.key);
    }
    expect(answers).toEqual(['a', 'b', 'c', 'd', 'b', 'a']);
  });

  test('the database, WAL and shared-memory files are created readable by the owner only', async () => {
    const { db, file } = await fresh(driver);
    await db.write(async (tx) => void (await tx.insert(usedAssertions).values({ key: 'k', expiresAt: 1 })));
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(modeOf(f), f).toBe('600');
  });

  test('an existing database file open to group or others is narrowed to the owner', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'errand-db-'));
    dirs.push(dir);
    const file = join(dir, 'errand.db');
    writeFileSync(file, '');
    chmodSync(file, 0o644);
    const db = await openDb(`file:${file}`, { driver });
    dbs.push(db);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(modeOf(f), f).toBe('600');
  });

  test('concurrent write transactions commit together; a failing one rolls back alone', async () => {
    const { db, file } = await fresh(driver);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        db.write(async (tx) => {
          await tx.insert(usedAssertions).values({ key: `k${String(i).padStart(2, '0')}`, expiresAt: i });
          if (i % 5 === 0) throw new Error(`refused ${i}`);
          return i;
        }),
      ),
    );
    expect(
      results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.message),
    ).toEqual(['refused 0', 'refused 5', 'refused 10', 'refused 15']);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(16);
    const keys = committedKeys(file);
    expect(keys).toHaveLength(16);
    expect(keys).not.toContain('k00');
    expect(keys).not.toContain('k05');
    expect(keys).toContain('k01');
  });

  test('a write resolves only once it is committed and visible to another connection', async () => {
    const { db, file } = await fresh(driver);
    await db.write(async (tx) => {
      await tx.insert(usedAssertions).values({ key: 'durable', expiresAt: 1 });
    });
    expect(committedKeys(file)).toEqual(['durable']);
  });

  test('reads outside a transaction do not see a write that has not committed', async () => {
    const { db } = await fresh(driver);
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let inserted!: () => void;
    const insertedYet = new Promise<void>((r) => {
      inserted = r;
    });
    const writing = db.write(async (tx) => {
      await tx.insert(usedAssertions).values({ key: 'pending', expiresAt: 1 });
      inserted();
      await gate;
    });
    await insertedYet;
    expect(await db.q.select().from(usedAssertions)).toEqual([]);
    release();
    await writing;
    expect(await db.q.select().from(usedAssertions)).toEqual([{ key: 'pending', expiresAt: 1 }]);
  });

  test('a write that fills the database fails its whole group with the engine’s error, and later writes go on', async () => {
    const { db, file } = await fresh(driver);
    const other = new Database(file);
    const pages = Number((other.prepare('PRAGMA page_count').raw(true).get([]) as unknown[])[0]);
    other.close();
    await db.exec(`PRAGMA max_page_count = ${pages + 2}`);
    const big = (i: number) => ({ key: `big-${i}-${'x'.repeat(3000)}`, expiresAt: i });
    const results = await Promise.allSettled([
      db.write(async (tx) => void (await tx.insert(usedAssertions).values({ key: 'small', expiresAt: 1 }))),
      db.write(async (tx) => {
        for (let i = 0; i < 20; i++) await tx.insert(usedAssertions).values(big(i));
      }),
    ]);
    // SQLite ends the whole transaction on SQLITE_FULL: the small write was in it and is gone too.
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(
        String((r as PromiseRejectedResult).reason?.cause?.message ?? (r as PromiseRejectedResult).reason?.message),
      ).toMatch(/full/);
    }
    expect(committedKeys(file)).toEqual([]);
    await db.exec(`PRAGMA max_page_count = ${pages + 1000}`);
    await db.write(async (tx) => void (await tx.insert(usedAssertions).values({ key: 'after', expiresAt: 1 })));
    expect(committedKeys(file)).toEqual(['after']);
  });

  test('a single-statement write through the read handle joins the queue and reports rows changed', async () => {
    const { db, file } = await fresh(driver);
    await db.q.insert(counters).values({ name: 'c', value: 1 });
    await db.q.update(counters).set({ value: 2 }).where(eq(counters.name, 'c'));
    expect(await db.q.select().from(counters).where(eq(counters.name, 'c'))).toEqual([{ name: 'c', value: 2 }]);
    await db.exec('PRAGMA wal_checkpoint(FULL)');
    expect(committedKeys(file)).toEqual([]);
  });

  test('close commits the writes already queued, refuses later ones and checkpoints the WAL', async () => {
    const { db, file } = await fresh(driver);
    // Enough rows that the WAL holds pages the main file does not.
    const queued = Array.from({ length: 40 }, (_, i) =>
      db.write(
        async (tx) => void (await tx.insert(usedAssertions).values({ key: `k${i}`.padEnd(200, 'x'), expiresAt: 1 })),
      ),
    );
    const closed = db.close();
    await expect(db.write(async () => undefined)).rejects.toThrow('the database is closed');
    await closed;
    await Promise.all(queued);
    expect(db.close()).toBe(closed);
    // The writes are in the main file: the WAL is empty (or gone) although no connection was collected.
    expect(existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0).toBe(0);
    expect(committedKeys(file)).toHaveLength(40);
  });
});

/** The migration tags this build knows, oldest first. */
function knownTags(): string[] {
  const journal = JSON.parse(readFileSync(join(import.meta.dirname, 'migrations', 'meta', '_journal.json'), 'utf8'));
  return (journal.entries as { idx: number; tag: string }[]).sort((a, b) => a.idx - b.idx).map((e) => e.tag);
}

/** A database with a few thousand rows in `used_assertions`, checkpointed into the main file and closed. */
async function populated(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'errand-db-'));
  dirs.push(dir);
  const file = join(dir, 'errand.db');
  const db = await openDb(`file:${file}`);
  await db.write(async (tx) => {
    for (let i = 0; i < 40; i++) {
      await tx
        .insert(usedAssertions)
        .values(Array.from({ length: 100 }, (_, j) => ({ key: `jti-${i}-${j}-${'x'.repeat(40)}`, expiresAt: i })));
    }
  });
  await db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  db.close();
  return file;
}

describe('openDb start-up checks', () => {
  test('a database written by a newer Errand is refused, naming its schema version and the newest this build knows', async () => {
    const file = await populated();
    const other = new Database(file);
    other.prepare('INSERT INTO errand_migrations (tag, applied_at) VALUES (?, ?)').run(['9999_from_the_future', 1]);
    other.close();
    const opening = openDb(`file:${file}`);
    await expect(opening).rejects.toBeInstanceOf(UnusableDatabaseError);
    await expect(opening).rejects.toThrow(
      new RegExp(`${file}.*9999_from_the_future.*${knownTags().at(-1)}.*run the newer Errand`),
    );
  });

  test('a database with damaged pages is refused by quick_check before anything runs on it', async () => {
    const file = await populated();
    const other = new Database(file);
    const { rootpage } = other.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'used_assertions'").get([]) as {
      rootpage: number;
    };
    const pageSize = Number((other.prepare('PRAGMA page_size').raw(true).get([]) as unknown[])[0]);
    other.close();
    // Garbage over the table's root page: the file still opens, and nothing read at start touches it.
    const fd = openSync(file, 'r+');
    writeSync(fd, randomBytes(pageSize), 0, pageSize, (rootpage - 1) * pageSize);
    closeSync(fd);

    const opening = openDb(`file:${file}`);
    await expect(opening).rejects.toBeInstanceOf(UnusableDatabaseError);
    await expect(opening).rejects.toThrow(new RegExp(`the database ${file} is damaged: PRAGMA quick_check reports`));
    // The check, and nothing else, is what refused it: skipping it opens the same file.
    const db = await openDb(`file:${file}`, { quickCheck: false });
    dbs.push(db);
  });

  test('a file that is not a database is refused, naming the file', async () => {
    const file = await populated();
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(100, 0x5a), 0, 100, 0);
    closeSync(fd);
    await expect(openDb(`file:${file}`)).rejects.toThrow(
      new RegExp(`the database ${file} is damaged or is not a database \\(SQLITE_NOTADB`),
    );
  });

  test('an empty database is reported through onEmpty before anything is written; throwing refuses it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'errand-db-'));
    dirs.push(dir);
    const file = join(dir, 'errand.db');
    writeFileSync(file, '');
    await expect(
      openDb(`file:${file}`, {
        onEmpty: () => {
          throw new Error('refused');
        },
      }),
    ).rejects.toThrow('refused');
    const other = new Database(file);
    expect(other.prepare('SELECT count(*) AS n FROM sqlite_master').get([])).toMatchObject({ n: 0 });
    other.close();
    // A database that has its schema is not reported.
    let reported = 0;
    dbs.push(await openDb(`file:${file}`, { onEmpty: () => void reported++ }));
    dbs.push(await openDb(`file:${file}`, { onEmpty: () => void reported++ }));
    expect(reported).toBe(1);
  });
});

/**
 * Another process in the middle of WAL recovery (after a crash elsewhere): it holds the write and
 * recovery locks of the -shm file and the wal-index header is torn, which is the one state in WAL
 * mode where a plain read meets a lock. The holder flips one header byte, keeps the two byte locks
 * for the given seconds, then restores the byte and unlocks.
 */
const RECOVERING_PROCESS = `
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
while True:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 3, 120, 0)
        break
    except OSError:
        time.sleep(0.01)
orig = os.pread(fd, 1, 56)
os.pwrite(fd, bytes([orig[0] ^ 0xFF]), 56)
print('held', flush=True)
time.sleep(float(sys.argv[2]))
os.pwrite(fd, orig, 56)
fcntl.lockf(fd, fcntl.LOCK_UN, 3, 120, 0)
print('released', flush=True)
`;
const hasPython = spawnSync('python3', ['--version']).status === 0;

describe('reads that meet a lock', () => {
  test.skipIf(!hasPython)(
    'a read that meets another process’s lock waits for it without blocking the event loop',
    { timeout: 30_000 },
    async () => {
      const { db, file } = await fresh('native');
      await db.write(async (tx) => void (await tx.insert(usedAssertions).values({ key: 'k', expiresAt: 1 })));
      expect(await db.q.select().from(usedAssertions)).toHaveLength(1);

      const HOLD_SECONDS = 1.5;
      const holder = spawn('python3', ['-c', RECOVERING_PROCESS, `${file}-shm`, String(HOLD_SECONDS)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise((r) => holder.once('exit', r));
      await new Promise<void>((resolve) => holder.stdout.on('data', (d: Buffer) => d.includes('held') && resolve()));

      let ticks = 0;
      let maxGap = 0;
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
        ticks++;
      }, 10);
      const started = performance.now();
      const rows = await db.q.select().from(usedAssertions);
      const took = performance.now() - started;
      clearInterval(timer);
      await exited;

      process.stdout.write(
        `read waited ${took.toFixed(0)} ms for the lock; timer ticks meanwhile: ${ticks}, longest gap ${maxGap.toFixed(0)} ms\n`,
      );
      expect(rows).toEqual([{ key: 'k', expiresAt: 1 }]);
      // The read did meet the lock: it could not finish before the holder let go.
      expect(took).toBeGreaterThan(HOLD_SECONDS * 1000 * 0.6);
      // The engine's busy wait would have frozen the timer for the whole hold (0 ticks).
      expect(ticks).toBeGreaterThan(10);
    },
  );
});
