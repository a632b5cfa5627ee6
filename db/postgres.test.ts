import { eq, getTableColumns, sql } from 'drizzle-orm';
import { getTableConfig, type SQLiteColumn } from 'drizzle-orm/sqlite-core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dropTestDatabase, postgresMode, testDatabaseUrl } from '../e2e/postgres/databases.js';
import { type Db, openDb } from './open.js';
import { numberPlaceholders } from './postgres.js';
import { columnName, pgType, tables } from './postgres-ddl.js';
import { counters } from './schema/index.js';

test('placeholders are numbered outside quoted text and conflict targets lose the table name', () => {
  expect(numberPlaceholders(`select "a" from "t" where "b" = ? and "c" = '?' and "d" in (?, ?)`)).toBe(
    `select "a" from "t" where "b" = $1 and "c" = '?' and "d" in ($2, $3)`,
  );
  expect(
    numberPlaceholders(`insert into "t" ("k") values (?) on conflict ("t"."k") do update set "n" = "t"."n" + 1`),
  ).toBe(`insert into "t" ("k") values ($1) on conflict ("k") do update set "n" = "t"."n" + 1`);
});

// What the PostgreSQL migrations build must be what the schema (written for both dialects) says.
describe.skipIf(!postgresMode())('PostgreSQL migrations match the schema', () => {
  const key = 'postgres-schema-test';
  let db: Db;
  let client: pg.Client;

  beforeAll(async () => {
    const url = (await testDatabaseUrl(key))!;
    db = await openDb(url);
    client = new pg.Client(url);
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await db?.close();
    await dropTestDatabase(key);
  });

  test('every table and column, with its type, nullability and byte-order collation', async () => {
    const { rows } = await client.query<{ t: string; c: string; type: string; nullable: string; coll: string | null }>(
      `SELECT table_name AS t, column_name AS c, data_type AS type, is_nullable AS nullable, collation_name AS coll
         FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> 'errand_migrations'`,
    );
    const actual = rows.map(
      (r) => `${r.t}.${r.c} ${r.type}${r.nullable === 'NO' ? ' not null' : ''}${r.coll ? ` ${r.coll}` : ''}`,
    );
    const expected = tables().flatMap((table) => {
      const { name, primaryKeys } = getTableConfig(table);
      const inPk = new Set(primaryKeys.flatMap((pk) => pk.columns.map((c) => c.name)));
      return (Object.values(getTableColumns(table)) as SQLiteColumn[]).map((c) => {
        const type = pgType(c);
        const notNull = c.notNull || c.primary || inPk.has(c.name);
        return `${name}.${columnName(c)} ${type}${notNull ? ' not null' : ''}${type === 'text' ? ' C' : ''}`;
      });
    });
    expect(actual.sort()).toEqual(expected.sort());
  });

  test('every index of the schema exists with its columns', async () => {
    const { rows } = await client.query<{ name: string; def: string }>(
      `SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE schemaname = current_schema()`,
    );
    const defs = new Map(rows.map((r) => [r.name, r.def]));
    for (const table of tables()) {
      for (const index of getTableConfig(table).indexes) {
        const c = index.config;
        const def = defs.get(c.name);
        expect(def, `index ${c.name}`).toBeDefined();
        const cols = c.columns.map((col) => columnName(col as SQLiteColumn)).join(', ');
        expect(def).toContain(`(${cols})`);
        if (c.where) expect(def).toContain('WHERE');
      }
    }
  });

  test('an auto-increment key takes the next value when the insert leaves it NULL, in commit order', async () => {
    await client.query(
      `INSERT INTO revocation_log (seq, jti, audience, at, written_ms) VALUES (NULL, 'a', 'x', 1, 1), (NULL, 'b', 'x', 1, 1)`,
    );
    const { rows } = await client.query<{ seq: string; jti: string }>(
      'SELECT seq, jti FROM revocation_log ORDER BY seq',
    );
    expect(rows.map((r) => r.jti)).toEqual(['a', 'b']);
    expect(Number(rows[1]!.seq)).toBe(Number(rows[0]!.seq) + 1);
  });
});

describe.skipIf(!postgresMode())('PostgreSQL writes', () => {
  const key = 'postgres-writes-test';
  let a: Db;
  let b: Db;

  beforeAll(async () => {
    const url = (await testDatabaseUrl(key))!;
    // Two handles: two nodes' connections to one database.
    a = await openDb(url);
    b = await openDb(url);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await dropTestDatabase(key);
  });

  test('a failing transaction of a group rolls back alone; the others commit', async () => {
    const names = ['ok-1', 'dup', 'ok-2'];
    await a.write((tx) => tx.insert(counters).values({ name: 'dup', value: 1 }));
    const results = await Promise.allSettled(
      names.map((name) =>
        a.write(async (tx) => {
          await tx.insert(counters).values({ name: `${name}-side`, value: 1 });
          await tx.insert(counters).values({ name, value: 1 });
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const rows = await b.q.select().from(counters);
    expect(rows.map((r) => r.name).sort()).toEqual(['dup', 'ok-1', 'ok-1-side', 'ok-2', 'ok-2-side']);
  });

  test('read-then-write transactions of two nodes never interleave (no lost update)', async () => {
    await a.write((tx) => tx.insert(counters).values({ name: 'race', value: 0 }));
    const bump = (db: Db) =>
      db.write(async (tx) => {
        const [row] = await tx.select().from(counters).where(eq(counters.name, 'race'));
        await tx
          .update(counters)
          .set({ value: row!.value + 1 })
          .where(eq(counters.name, 'race'));
      });
    await Promise.all(Array.from({ length: 200 }, (_, i) => bump(i % 2 ? a : b)));
    const [row] = await a.q.select().from(counters).where(eq(counters.name, 'race'));
    expect(row!.value).toBe(200);
  });

  test('booleans and JSON text read back as on the embedded engine', async () => {
    const [row] = await a.q.select({ n: sql<number>`count(*)`, t: sql<number>`1 = 1` }).from(counters);
    expect(row).toEqual({ n: 6, t: 1 });
  });
});
