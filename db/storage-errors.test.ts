import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'libsql';
import { afterEach, describe, expect, test } from 'vitest';
import { type Db, openDb } from './open.js';
import { usedAssertions } from './schema/index.js';
import { storageFailure } from './storage-errors.js';

const dirs: string[] = [];
const dbs: Db[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) db.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function fresh(): Promise<{ db: Db; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'errand-db-'));
  dirs.push(dir);
  const file = join(dir, 'errand.db');
  const db = await openDb(`file:${file}`);
  dbs.push(db);
  return { db, file };
}

/** The error a failing call rejects with. */
async function failureOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

const row = (i: number) => ({ key: `k${i}-${'x'.repeat(2000)}`, expiresAt: i });

describe('storageFailure (errors from the real engine, as callers receive them)', () => {
  test('a write refused as read-only, wrapped by drizzle, is transient with a Retry-After', async () => {
    const { db } = await fresh();
    await db.exec('PRAGMA query_only = ON');
    const err = await failureOf(db.q.insert(usedAssertions).values(row(1)));
    expect((err as Error).message).toMatch(/^Failed query: insert into "used_assertions"/);
    expect(storageFailure(err)).toEqual({ kind: 'readonly', code: 'SQLITE_READONLY', transient: true, retryAfter: 30 });
  });

  test('a full database (its page limit reached) inside a write transaction is transient', async () => {
    const { db, file } = await fresh();
    const other = new Database(file);
    const pages = Number((other.prepare('PRAGMA page_count').raw(true).get([]) as unknown[])[0]);
    other.close();
    await db.exec(`PRAGMA max_page_count = ${pages + 2}`);
    const err = await failureOf(
      db.write(async (tx) => {
        for (let i = 0; i < 50; i++) await tx.insert(usedAssertions).values(row(i));
      }),
    );
    expect(storageFailure(err)).toMatchObject({ kind: 'full', code: 'SQLITE_FULL', transient: true });
  });

  test('a write lock held by another connection past the busy timeout is transient', { timeout: 30_000 }, async () => {
    const { db, file } = await fresh();
    const other = new Database(file);
    other.exec('BEGIN IMMEDIATE');
    try {
      const err = await failureOf(db.q.insert(usedAssertions).values(row(1)));
      expect(storageFailure(err)).toMatchObject({ kind: 'busy', transient: true, retryAfter: 5 });
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
  });

  test('a constraint violation or a plain error is not a storage failure', async () => {
    const { db } = await fresh();
    await db.q.insert(usedAssertions).values(row(1));
    expect(storageFailure(await failureOf(db.q.insert(usedAssertions).values(row(1))))).toBeNull();
    expect(storageFailure(new Error('boom'))).toBeNull();
    expect(storageFailure(new Error('outer', { cause: { code: 'SQLITE_CORRUPT', rawCode: 11 } }))).toMatchObject({
      kind: 'corrupt',
      transient: false,
    });
  });
});
