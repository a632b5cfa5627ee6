/**
 * Prints the PostgreSQL statements that create the named tables (all when none is named), as the
 * schema (db/schema) defines them: the starting point of a PostgreSQL migration written beside a
 * SQLite one. `npm run db:pg-ddl -- maintenance_leases`
 *
 * db/migrations-pg/0000_baseline.sql was written by this for every table; db/postgres.test.ts
 * fails until the PostgreSQL migrations build what the schema says.
 */
import { schemaDdl } from '../db/postgres-ddl.js';

const wanted = process.argv.slice(2);
const statements = schemaDdl().filter(
  (s) =>
    wanted.length === 0 ||
    wanted.some((t) => s.includes(` "${t}" (`) || s.includes(`CREATE TABLE "${t}"`) || s.includes(`"${t}_`)),
);
if (statements.length === 0) {
  console.error(`no table named ${wanted.join(', ')} in db/schema`);
  process.exit(1);
}
console.log(statements.map((s) => `${s};`).join('\n--> statement-breakpoint\n'));
