import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'libsql';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Db, openDb } from './open.js';

/**
 * The request path writes a task and a token row per exchange, so their indexes are few: three are
 * partial (most rows hold NULL there) and none is kept that no query reads. These plans show that
 * the queries reading them still find them (a partial index is used only when the query implies
 * its condition), on the embedded engine as built by the migrations.
 */
let dir: string;
let db: Db;
let plain: InstanceType<typeof Database>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'errand-idx-'));
  db = await openDb(`file:${join(dir, 'errand.db')}`);
  plain = new Database(join(dir, 'errand.db'));
});
afterAll(async () => {
  plain.close();
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

const plan = (sql: string, ...params: unknown[]) =>
  (plain.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[]).map((r) => r.detail).join('\n');

describe('indexes of the request path', () => {
  test('ending a task walks its subtree through the partial parent index', () => {
    expect(
      plan(
        `WITH RECURSIVE sub(id) AS (SELECT id FROM tasks WHERE id = ?
         UNION ALL SELECT t.id FROM tasks t JOIN sub ON t.parent_task_id = sub.id) SELECT id FROM sub`,
        'tsk_1',
      ),
    ).toMatch(/tasks_parent_idx/);
  });

  test('retention asks for child tasks through it too', () => {
    expect(
      plan(
        'SELECT id FROM tasks WHERE ended_at < ? AND NOT EXISTS (SELECT 1 FROM tasks c WHERE c.parent_task_id = tasks.id)',
        1,
      ),
    ).toMatch(/tasks_parent_idx/);
  });

  test('tasks started from a user token, and the tokens of a refresh family, by their partial indexes', () => {
    expect(plan('SELECT id FROM tasks WHERE subject_jti = ?', 'j')).toMatch(/tasks_subject_idx/);
    expect(plan('SELECT jti FROM issued_tokens WHERE grant_id = ? AND revoked_at IS NULL', 'g')).toMatch(
      /issued_tokens_grant_idx/,
    );
  });

  test('the status list reads revoked tokens only; no index of every status index is kept', () => {
    expect(
      plan(
        'SELECT status_idx FROM issued_tokens WHERE status_idx >= ? AND status_idx < ? AND revoked_at IS NOT NULL',
        0,
        10,
      ),
    ).toMatch(/issued_tokens_revoked_status_idx/);
    const names = (
      plain.prepare(`SELECT name FROM sqlite_master WHERE type = 'index'`).all() as { name: string }[]
    ).map((r) => r.name);
    expect(names).not.toContain('issued_tokens_status_idx');
  });
});
