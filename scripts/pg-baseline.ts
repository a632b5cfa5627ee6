/**
 * Writes the PostgreSQL baseline migration (db/migrations-pg/0000_baseline.sql) from the schema.
 * Later schema changes add a numbered PostgreSQL migration beside the SQLite one; the schema test
 * (db/postgres-schema.test.ts) fails until both build the same tables.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { schemaDdl } from '../db/postgres-ddl.js';

const dir = join(import.meta.dirname, '..', 'db', 'migrations-pg');
const sql = schemaDdl()
  .map((s) => `${s};`)
  .join('\n--> statement-breakpoint\n');
writeFileSync(join(dir, '0000_baseline.sql'), `${sql}\n`);
writeFileSync(
  join(dir, 'meta', '_journal.json'),
  `${JSON.stringify({ dialect: 'postgresql', entries: [{ idx: 0, tag: '0000_baseline' }] }, null, 2)}\n`,
);
console.log(`wrote ${join(dir, '0000_baseline.sql')}`);
