import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type PostgresCluster, postgresBinDir, startPostgres } from './cluster.js';
import { createTestDatabase, dropDatabase, postgresMode, testDatabaseName } from './databases.js';

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

// Runs wherever the PostgreSQL server binaries are installed (Debian's postgresql package; .ci/run
// installs it), once: the embedded run covers it, the PostgreSQL run would only repeat it.
describe.skipIf(!postgresBinDir() || postgresMode())('a throwaway PostgreSQL cluster for the tests', () => {
  let cluster: PostgresCluster;
  beforeAll(async () => {
    cluster = await startPostgres();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  test('listens on 127.0.0.1 with the test settings', async () => {
    const url = new URL(cluster.url);
    expect(url.hostname).toBe('127.0.0.1');
    const [row] = await query<{ fsync: string; max: string; listen: string }>(
      cluster.url,
      "SELECT current_setting('fsync') AS fsync, current_setting('max_connections') AS max, current_setting('listen_addresses') AS listen",
    );
    expect(row).toEqual({ fsync: 'off', max: '300', listen: '127.0.0.1' });
  });

  test('two keys get two distinct databases with collation C; the same key gets its database back', async () => {
    const a = await createTestDatabase(cluster.url, '/tmp/errand-test-a');
    const b = await createTestDatabase(cluster.url, '/tmp/errand-test-b');
    expect(a).not.toBe(b);
    expect(new URL(a).pathname).toBe(`/${testDatabaseName('/tmp/errand-test-a')}`);
    expect(testDatabaseName('/tmp/errand-test-a')).toMatch(/^errand_t_[0-9a-f]{16}$/);

    await query(a, 'CREATE TABLE marker (v text)');
    await query(a, "INSERT INTO marker VALUES ('a')");
    // The other database does not see it: they are separate databases, not schemas of one.
    await expect(query(b, 'SELECT v FROM marker')).rejects.toMatchObject({ code: '42P01' });

    // Asked again (a broker restarted on the same data directory, or two workers at once): same data.
    const [again, raced] = await Promise.all([
      createTestDatabase(cluster.url, '/tmp/errand-test-a'),
      createTestDatabase(cluster.url, '/tmp/errand-test-a'),
    ]);
    expect(again).toBe(a);
    expect(raced).toBe(a);
    expect(await query(a, 'SELECT v FROM marker')).toEqual([{ v: 'a' }]);

    for (const url of [a, b]) {
      const [info] = await query<{ collate: string; ctype: string; encoding: string }>(
        url,
        'SELECT datcollate AS collate, datctype AS ctype, pg_encoding_to_char(encoding) AS encoding FROM pg_database WHERE datname = current_database()',
      );
      expect(info).toEqual({ collate: 'C', ctype: 'C', encoding: 'UTF8' });
      // Byte order, as the embedded file sorts: 'B' < 'a' (a language collation would put 'a' first).
      const sorted = await query<{ v: string }>(url, "SELECT v FROM (VALUES ('a'), ('B')) AS t(v) ORDER BY v");
      expect(sorted.map((r) => r.v)).toEqual(['B', 'a']);
    }
  });

  test('a dropped database is gone even with a connection still open', async () => {
    const url = await createTestDatabase(cluster.url, '/tmp/errand-test-drop');
    const open = new pg.Client({ connectionString: url });
    open.on('error', () => {});
    await open.connect();
    await dropDatabase(cluster.url, '/tmp/errand-test-drop');
    const left = await query(cluster.url, 'SELECT 1 FROM pg_database WHERE datname = $1', [
      testDatabaseName('/tmp/errand-test-drop'),
    ]);
    expect(left).toEqual([]);
    await open.end().catch(() => {});
  });
});
