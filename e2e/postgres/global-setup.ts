import type { TestProject } from 'vitest/node';
import { startPostgres } from './cluster.js';

/**
 * Vitest global setup (vitest.config.ts). With ERRAND_TEST_DB=postgres it starts one PostgreSQL
 * server for the whole run, unless ERRAND_TEST_POSTGRES_URL already names one (an external server),
 * and puts its admin URL in ERRAND_TEST_POSTGRES_URL, which the test workers inherit (they are
 * forked after this runs). Each test broker then gets its own database (databases.ts). An embedded
 * run (no ERRAND_TEST_DB) starts nothing.
 */
export default async function setup(_project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const mode = process.env.ERRAND_TEST_DB;
  if (mode !== undefined && mode !== '' && mode !== 'postgres' && mode !== 'embedded') {
    throw new Error(`ERRAND_TEST_DB=${mode}: must be postgres, embedded or unset (embedded)`);
  }
  if (mode !== 'postgres' || process.env.ERRAND_TEST_POSTGRES_URL) return undefined;
  const cluster = await startPostgres();
  process.env.ERRAND_TEST_POSTGRES_URL = cluster.url;
  return async () => {
    delete process.env.ERRAND_TEST_POSTGRES_URL;
    await cluster.stop();
  };
}
