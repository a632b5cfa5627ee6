/**
 * The PostgreSQL tables that mirror the schema (db/schema), derived from it: the baseline migration
 * of `db/migrations-pg` was written from this (`npm run db:pg-ddl` prints a table's statements), and a test compares what
 * the PostgreSQL migrations build with what this derives, so the two dialects cannot drift apart.
 *
 * Mapping: `integer` → `bigint` (booleans too, as 0/1, so that drizzle's SQLite mapping reads them
 * unchanged), `text` → `text COLLATE "C"` (SQLite compares text byte by byte), `real` → `double
 * precision`, `blob` → `bytea`. An auto-increment key takes its value from a sequence when the
 * insert gives NULL, as SQLite's does.
 */
import { getTableColumns, getTableName, is, SQL, Table } from 'drizzle-orm';
import { getTableConfig, type SQLiteColumn, SQLiteSyncDialect, type SQLiteTable } from 'drizzle-orm/sqlite-core';
import * as schema from './schema/index.js';

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The PostgreSQL type of a column of the schema. */
export function pgType(column: SQLiteColumn): string {
  const t = column.getSQLType().toLowerCase();
  if (t.startsWith('integer')) return 'bigint';
  if (t.startsWith('real')) return 'double precision';
  if (t.startsWith('blob')) return 'bytea';
  return 'text';
}

/** A column's name in the database (the schema names columns in camelCase, stored snake_case). */
export function columnName(column: SQLiteColumn): string {
  return column.keyAsName ? snake(column.name) : column.name;
}

function literal(value: unknown): string {
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (typeof value === 'number') return String(value);
  return `'${String(value).replaceAll("'", "''")}'`;
}

/** A WHERE clause of a partial index, with bare column names as PostgreSQL's catalog prints them. */
function predicate(where: SQL): string {
  const { sql, params } = new SQLiteSyncDialect({ casing: 'snake_case' }).sqlToQuery(where);
  if (params.length > 0) throw new Error('partial index predicates must not take parameters');
  return sql.replace(/"[^"]+"\.("[^"]+")/g, '$1');
}

export function tables(): SQLiteTable[] {
  return Object.values(schema).filter((v) => is(v, Table)) as unknown as SQLiteTable[];
}

/** CREATE statements for every table of the schema, in an order foreign keys allow. */
export function schemaDdl(): string[] {
  const out: string[] = [];
  const done = new Set<string>();
  const pending = tables();
  while (pending.length > 0) {
    const i = pending.findIndex((t) =>
      getTableConfig(t).foreignKeys.every((fk) => {
        const target = getTableName(fk.reference().foreignTable);
        return target === getTableName(t) || done.has(target);
      }),
    );
    if (i < 0) throw new Error('foreign keys form a cycle');
    const table = pending.splice(i, 1)[0]!;
    out.push(...tableDdl(table));
    done.add(getTableName(table));
  }
  return out;
}

function tableDdl(table: SQLiteTable): string[] {
  const config = getTableConfig(table);
  const name = config.name;
  const lines: string[] = [];
  const after: string[] = [];
  for (const column of Object.values(getTableColumns(table)) as SQLiteColumn[]) {
    const col = columnName(column);
    const type = pgType(column);
    let line = `${quote(col)} ${type}${type === 'text' ? ' COLLATE "C"' : ''}`;
    if (column.primary) line += ' PRIMARY KEY';
    if (column.notNull && !column.primary) line += ' NOT NULL';
    if (column.hasDefault && column.default !== undefined && !is(column.default, SQL)) {
      line += ` DEFAULT ${literal(column.default)}`;
    }
    if (column.isUnique) line += ` CONSTRAINT ${quote(`${name}_${col}_unique`)} UNIQUE`;
    lines.push(line);
    if ((column as { autoIncrement?: boolean }).autoIncrement) after.push(...sequenceDdl(name, col));
  }
  for (const pk of config.primaryKeys) {
    lines.push(`PRIMARY KEY (${pk.columns.map((c) => quote(columnName(c))).join(', ')})`);
  }
  for (const fk of config.foreignKeys) {
    const ref = fk.reference();
    const onDelete = fk.onDelete && fk.onDelete !== 'no action' ? ` ON DELETE ${fk.onDelete.toUpperCase()}` : '';
    lines.push(
      `FOREIGN KEY (${ref.columns.map((c) => quote(columnName(c as SQLiteColumn))).join(', ')}) REFERENCES ${quote(getTableName(ref.foreignTable))} (${ref.foreignColumns.map((c) => quote(columnName(c as SQLiteColumn))).join(', ')})${onDelete}`,
    );
  }
  for (const u of config.uniqueConstraints) {
    lines.push(
      `CONSTRAINT ${quote(u.getName() ?? `${name}_unique`)} UNIQUE (${u.columns.map((c) => quote(columnName(c))).join(', ')})`,
    );
  }
  const statements = [`CREATE TABLE ${quote(name)} (\n  ${lines.join(',\n  ')}\n)`];
  for (const index of config.indexes) {
    const c = index.config;
    const cols = c.columns.map((col) => quote(columnName(col as SQLiteColumn))).join(', ');
    const where = c.where ? ` WHERE ${predicate(c.where)}` : '';
    statements.push(`CREATE ${c.unique ? 'UNIQUE ' : ''}INDEX ${quote(c.name)} ON ${quote(name)} (${cols})${where}`);
  }
  return [...statements, ...after];
}

/** A sequence and a trigger that give an auto-increment key its next value when an insert leaves it NULL. */
function sequenceDdl(table: string, column: string): string[] {
  const seq = `${table}_${column}_seq`;
  const fn = `${table}_${column}_next`;
  return [
    `CREATE SEQUENCE ${quote(seq)} OWNED BY ${quote(table)}.${quote(column)}`,
    `CREATE FUNCTION ${quote(fn)}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.${quote(column)} IS NULL THEN NEW.${quote(column)} := nextval('${seq}'); END IF; RETURN NEW; END $$`,
    `CREATE TRIGGER ${quote(fn)} BEFORE INSERT ON ${quote(table)} FOR EACH ROW EXECUTE FUNCTION ${quote(fn)}()`,
  ];
}
