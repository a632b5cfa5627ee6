/**
 * Statements on the request path, built and prepared once per database handle (the reader or the
 * transaction) instead of on every call: building a drizzle query costs far more than running it.
 */
import { type Column, eq, getTableColumns, sql } from 'drizzle-orm';
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { Drizzle } from './open.js';

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

/** `SELECT * FROM table WHERE column = ? LIMIT 1`, prepared. */
export function selectOneBy<T extends SQLiteTable>(table: T, column: SQLiteColumn) {
  const on = perHandle((d) =>
    d
      .select()
      .from(table as SQLiteTable)
      .where(eq(column, sql.placeholder('key')))
      .limit(1)
      .prepare(),
  );
  return async (d: Drizzle, key: string): Promise<T['$inferSelect'] | undefined> =>
    (await on(d).get({ key })) as T['$inferSelect'] | undefined;
}

/**
 * A whole-row INSERT, prepared. A column left undefined takes its schema default (or NULL), as a
 * drizzle insert would.
 */
export function insertRow<T extends SQLiteTable>(table: T, opts: { ignoreConflict?: boolean } = {}) {
  const columns = Object.entries(getTableColumns(table)) as [string, Column][];
  const on = perHandle((d) => {
    const insert = d
      .insert(table as SQLiteTable)
      .values(Object.fromEntries(columns.map(([key]) => [key, sql.placeholder(key)])) as never);
    return (opts.ignoreConflict ? insert.onConflictDoNothing() : insert).prepare();
  });
  return async (d: Drizzle, row: T['$inferInsert']): Promise<unknown> => {
    const values: Record<string, unknown> = {};
    for (const [key, column] of columns) {
      const v = (row as Record<string, unknown>)[key];
      values[key] = v !== undefined ? v : column.defaultFn ? column.defaultFn() : (column.default ?? null);
    }
    return on(d).run(values);
  };
}
