/**
 * Statements on the request path, built and prepared once per database handle (the reader or the
 * transaction) instead of on every call: building a drizzle query costs far more than running it.
 */
import { type Column, eq, getTableColumns, Param, Placeholder, sql } from 'drizzle-orm';
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core';
import { type Drizzle, type RawStatement, rawStatementOf } from './open.js';

/** A value built on first use with each handle, then reused for that handle. */
export function perHandle<P>(build: (d: Drizzle) => P): (d: Drizzle) => P {
  const built = new WeakMap<Drizzle, P>();
  return (d) => {
    let p = built.get(d);
    if (p === undefined) {
      p = build(d);
      built.set(d, p);
    }
    return p;
  };
}

/**
 * One statement's SQL, built by drizzle once, and where each parameter comes from: a named
 * placeholder (with the column that encodes it, for inserts) or a constant of the query.
 */
interface Built {
  sql: string;
  params: ({ name: string; encoder: Column | null } | { value: unknown })[];
}

function built(query: { sql: string; params: unknown[] }): Built {
  return {
    sql: query.sql,
    params: query.params.map((p) => {
      if (p instanceof Placeholder) return { name: p.name, encoder: null };
      if (p instanceof Param && p.value instanceof Placeholder) {
        return { name: p.value.name, encoder: (p.encoder as Column | undefined) ?? null };
      }
      return { value: p };
    }),
  };
}

function runner(d: Drizzle): RawStatement {
  const raw = rawStatementOf(d);
  if (!raw) throw new Error('a prepared statement needs a database handle made by openDb');
  return raw;
}

function bind(b: Built, values: Record<string, unknown>): unknown[] {
  return b.params.map((p) => {
    if ('value' in p) return p.value;
    const v = values[p.name];
    // As drizzle fills a placeholder: NULL as is, anything else through its column's encoding.
    return v === null || v === undefined || !p.encoder ? (v ?? null) : p.encoder.mapToDriverValue(v);
  });
}

/** `SELECT * FROM table WHERE column = ? LIMIT 1`, prepared. */
export function selectOneBy<T extends SQLiteTable>(table: T, column: SQLiteColumn) {
  const columns = Object.entries(getTableColumns(table)) as [string, Column][];
  const query = (d: Drizzle) =>
    d
      .select()
      .from(table as SQLiteTable)
      .where(eq(column, sql.placeholder('key')))
      .limit(1);
  const statement = perHandle((d) => built(query(d).toSQL()));
  return async (d: Drizzle, key: string): Promise<T['$inferSelect'] | undefined> => {
    const b = statement(d);
    const { rows } = await runner(d)(b.sql, bind(b, { key }), 'get');
    const row = rows as unknown[] | undefined;
    if (!row) return undefined;
    // The columns come back in the table's order (select() names them all, in that order), each
    // decoded as drizzle's row mapping would: NULL as is, anything else through the column.
    const out: Record<string, unknown> = {};
    for (let i = 0; i < columns.length; i++) {
      const [key, col] = columns[i]!;
      const v = row[i];
      out[key] = v === null || v === undefined ? null : col.mapFromDriverValue(v);
    }
    return out as T['$inferSelect'];
  };
}

/**
 * A whole-row INSERT, prepared. A column left undefined takes its schema default (or NULL), as a
 * drizzle insert would.
 */
export function insertRow<T extends SQLiteTable>(table: T, opts: { ignoreConflict?: boolean } = {}) {
  const columns = Object.entries(getTableColumns(table)) as [string, Column][];
  const query = (d: Drizzle) => {
    const insert = d
      .insert(table as SQLiteTable)
      .values(Object.fromEntries(columns.map(([key]) => [key, sql.placeholder(key)])) as never);
    return opts.ignoreConflict ? insert.onConflictDoNothing() : insert;
  };
  const statement = perHandle((d) => built(query(d).toSQL()));
  return async (d: Drizzle, row: T['$inferInsert']): Promise<unknown> => {
    const values: Record<string, unknown> = {};
    for (const [key, column] of columns) {
      const v = (row as Record<string, unknown>)[key];
      values[key] = v !== undefined ? v : column.defaultFn ? column.defaultFn() : (column.default ?? null);
    }
    const b = statement(d);
    return runner(d)(b.sql, bind(b, values), 'run');
  };
}
