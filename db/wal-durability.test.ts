import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'libsql';
import { afterEach, describe, expect, test } from 'vitest';
import { type Db, openDb } from './open.js';
import { usedAssertions } from './schema/index.js';

/**
 * The embedded engine's commits are synced after COMMIT on the thread pool (db/wal-durability.ts):
 * a caller is answered only once its group's sync returned. Linux only, like the mechanism itself.
 */
const dirs: string[] = [];
const dbs: Db[] = [];
afterEach(async () => {
  for (const db of dbs.splice(0)) await db.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function fresh(opts: Parameters<typeof openDb>[1] = {}): Promise<{ db: Db; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'errand-wal-'));
  dirs.push(dir);
  const file = join(dir, 'errand.db');
  const db = await openDb(`file:${file}`, opts);
  dbs.push(db);
  return { db, file };
}

const insert = (db: Db, key: string) =>
  db.write(async (tx) => {
    await tx.insert(usedAssertions).values({ key, expiresAt: 4_000_000_000 });
    return key;
  });

/** Rows as another connection (another process) sees them. */
function keysSeenElsewhere(file: string): string[] {
  const other = new Database(file, { timeout: 5000 });
  try {
    return (other.prepare('SELECT key FROM used_assertions ORDER BY key').raw(true).all() as string[][]).map(
      (r) => r[0]!,
    );
  } finally {
    other.close();
  }
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

describe.runIf(process.platform === 'linux')('commits synced after COMMIT, on the thread pool', () => {
  test('a caller is answered only after its group was synced, once per group', async () => {
    const syncs: { release: () => void }[] = [];
    let hold = false;
    const { db, file } = await fresh({
      walFsync: () => (hold ? new Promise<void>((release) => syncs.push({ release })) : Promise.resolve()),
    });
    hold = true;
    let answered = 0;
    const writes = ['a', 'b', 'c'].map((k) => insert(db, k).then(() => (answered += 1)));
    expect(await until(() => syncs.length === 1, 5000)).toBe(true);
    // Committed (another connection sees the rows), but not yet on disk: nobody is answered.
    expect(keysSeenElsewhere(file)).toEqual(['a', 'b', 'c']);
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(0);
    expect(syncs).toHaveLength(1);
    syncs[0]!.release();
    await Promise.all(writes);
    expect(answered).toBe(3);
  });

  test('a sync that fails is every caller of the group hearing the error', async () => {
    let fail = false;
    const { db } = await fresh({
      walFsync: async () => {
        if (fail) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      },
    });
    fail = true;
    const results = await Promise.allSettled([insert(db, 'x'), insert(db, 'y')]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    await expect(insert(db, 'z')).resolves.toBe('z');
  });

  test('with ERRAND_DB_SYNC_IN_COMMIT the engine syncs inside COMMIT and the flush after it is never asked for', async () => {
    let flushes = 0;
    const { db, file } = await fresh({
      syncInCommit: true,
      walFsync: async () => {
        flushes += 1;
      },
    });
    await Promise.all(['p', 'q'].map((k) => insert(db, k)));
    expect(flushes).toBe(0);
    expect(keysSeenElsewhere(file)).toEqual(['p', 'q']);
  });

  test('a clean close leaves the WAL empty and the rows in the database file', async () => {
    const { db, file } = await fresh();
    await Promise.all(Array.from({ length: 50 }, (_, i) => insert(db, `k${String(i).padStart(2, '0')}`)));
    await db.close();
    dbs.splice(0);
    expect(statSync(`${file}-wal`).size).toBe(0);
    expect(keysSeenElsewhere(file)).toHaveLength(50);
  });
});
