/**
 * The few statements whose SQL differs between the embedded engine (SQLite) and PostgreSQL. Every
 * store builds its queries with drizzle's SQLite builder; the PostgreSQL driver rewrites only the
 * placeholders, so a query that needs a function the two spell differently asks here.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { SQLiteColumn } from 'drizzle-orm/sqlite-core';

export type Dialect = 'sqlite' | 'postgres';

const dialects = new WeakMap<object, Dialect>();

/** Records the dialect of a drizzle handle (the database's, and its transaction's). */
export function setDialect(handle: object, dialect: Dialect): void {
  dialects.set(handle, dialect);
}

export function dialectOf(handle: object): Dialect {
  return dialects.get(handle) ?? 'sqlite';
}

/** `value` is one of the strings of the JSON array held as text in `column`. */
export function jsonArrayHas(handle: object, column: SQLiteColumn, value: string): SQL {
  return dialectOf(handle) === 'postgres'
    ? sql`${column}::jsonb @> jsonb_build_array(${value}::text)`
    : sql`EXISTS (SELECT 1 FROM json_each(${column}) WHERE value = ${value})`;
}

/** The text at `path` (keys from the root) of the JSON object held as text in `column`. */
export function jsonText(handle: object, column: SQLiteColumn | SQL, path: readonly string[]): SQL {
  if (dialectOf(handle) === 'postgres') {
    return sql`(${column}::jsonb #>> ${`{${path.join(',')}}`})`;
  }
  return sql`json_extract(${column}, ${`$.${path.join('.')}`})`;
}

/** The larger of two values (SQLite's two-argument `max`, PostgreSQL's `greatest`). */
export function greater(handle: object, a: SQL | SQLiteColumn, b: SQL | SQLiteColumn | number): SQL {
  return dialectOf(handle) === 'postgres' ? sql`greatest(${a}, ${b})` : sql`max(${a}, ${b})`;
}

/**
 * A column that orders rows of one table by insertion where timestamps tie: SQLite's `rowid`;
 * PostgreSQL has no such column, so the tie breaks on the physical position of an append-only
 * table's rows (`ctid`), which follows insertion until deletes leave space to reuse.
 */
export function insertionOrder(handle: object): SQL {
  return dialectOf(handle) === 'postgres' ? sql.raw('ctid') : sql.raw('rowid');
}
