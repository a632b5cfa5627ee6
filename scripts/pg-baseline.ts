/**
 * Writes the PostgreSQL baseline migration (db/migrations-pg/0000_baseline.sql) from the schema.
 * Later schema changes add a numbered PostgreSQL migration beside the SQLite one; the schema test
 * (db/postgres-schema.test.ts) fails until both build the same tables.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { schemaDdl } from '../db/postgres-ddl.js';

const dir = join(import.meta.dirname, '..', 'db', 'migrations-pg');
// Once a numbered migration follows the baseline, rewriting the baseline would create its tables
// twice on a new database and never on an existing one: add a numbered migration instead.
const journal = JSON.parse(readFileSync(join(dir, 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] };
if (journal.entries.length > 1) {
  console.error(
    'db/migrations-pg has migrations after the baseline: write the next numbered migration by hand (see db/postgres-ddl.ts for the statements)',
  );
  process.exit(1);
}
const sql = schemaDdl()
  .map((s) => `${s};`)
  .join('\n--> statement-breakpoint\n');
writeFileSync(join(dir, '0000_baseline.sql'), `${sql}\n`);
writeFileSync(
  join(dir, 'meta', '_journal.json'),
  `${JSON.stringify({ dialect: 'postgresql', entries: [{ idx: 0, tag: '0000_baseline' }] }, null, 2)}\n`,
);
console.log(`wrote ${join(dir, '0000_baseline.sql')}`);
