import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import Database from 'libsql';
import { afterEach, describe, expect, test } from 'vitest';
import { type Db, openDb } from './open.js';
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
