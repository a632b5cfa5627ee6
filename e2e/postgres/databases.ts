import { createHash } from 'node:crypto';
import pg from 'pg';

/**
 * One PostgreSQL database per test broker. `npm run test:postgres` sets ERRAND_TEST_DB=postgres;
 * the global setup (global-setup.ts) then starts a server, or uses the one ERRAND_TEST_POSTGRES_URL
 * names, and hands its admin URL to the test workers in ERRAND_TEST_POSTGRES_URL.
 */
export function postgresMode(): boolean {
  return process.env.ERRAND_TEST_DB === 'postgres';
}

/** The database name for a key: `errand_t_` and 16 hex digits of its SHA-256. */
export function testDatabaseName(key: string): string {
  return `errand_t_${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
}

function adminUrl(): string {
  const url = process.env.ERRAND_TEST_POSTGRES_URL;
  if (!url) {
    throw new Error(
      'ERRAND_TEST_DB=postgres but ERRAND_TEST_POSTGRES_URL is not set: run the tests through vitest (its global setup starts the server), or set it to an admin URL of a PostgreSQL server',
    );
  }
  return url;
}

async function withAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates the database for `key` on the server `admin` names unless it exists, and returns its URL.
 * Two workers may ask for the same key at once: the loser's duplicate_database (42P04) is success.
 * template0 with collation C: the same ordering of text as the embedded file (SQLite's BINARY).
 */
export async function createTestDatabase(admin: string, key: string): Promise<string> {
  const name = testDatabaseName(key);
  await withAdmin(admin, async (client) => {
    try {
      await client.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`);
    } catch (err) {
      // 23505: the other CREATE DATABASE inserted the name between this one's check and its insert.
      const code = (err as { code?: string }).code;
      if (code !== '42P04' && code !== '23505') throw err;
    }
  });
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops the database for `key` (WITH (FORCE): connections a broker left open are ended). */
export async function dropDatabase(admin: string, key: string): Promise<void> {
  await withAdmin(admin, (client) => client.query(`DROP DATABASE IF EXISTS ${testDatabaseName(key)} WITH (FORCE)`));
}

/**
 * The ERRAND_DB_URL a test broker keyed by `key` (its data directory) uses: in postgres mode the
 * URL of its own database, created on first use, so a broker restarted on the same directory gets
 * the same database back; undefined in embedded mode (the broker keeps its file in the directory).
 */
export async function testDatabaseUrl(key: string): Promise<string | undefined> {
  if (!postgresMode()) return undefined;
  return createTestDatabase(adminUrl(), key);
}

/** Drops the database `testDatabaseUrl(key)` created; nothing in embedded mode. */
export async function dropTestDatabase(key: string): Promise<void> {
  if (!postgresMode()) return;
  await dropDatabase(adminUrl(), key);
}
