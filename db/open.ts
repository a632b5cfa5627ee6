import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Client, createClient } from '@libsql/client';
import { drizzle, type LibSQLDatabase } from 'drizzle-orm/libsql';
import * as schema from './schema/index.js';

export type Schema = typeof schema;
export type Drizzle = LibSQLDatabase<Schema>;
/** The handle a write transaction receives: the same query API as the database. */
export type Tx = Parameters<Parameters<Drizzle['transaction']>[0]>[0];

export interface Db {
  /** Reads (and single-statement writes that need no transaction). */
  readonly q: Drizzle;
  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE). Write transactions of this process are
   * queued: the embedded driver blocks the event loop while it waits for a lock, so two open
   * transactions in one process would deadlock instead of waiting. Other processes on the same
   * file wait through SQLite's busy timeout. Keep `fn` short and free of network calls.
   */
  write<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  readonly client: Client;
  close(): void;
}

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');
const BUSY_TIMEOUT_MS = 10_000;

/** Opens the database at `url`, applies pending migrations and returns the handle. */
export async function openDb(url: string, opts: { authToken?: string } = {}): Promise<Db> {
  if (url.startsWith('file:')) {
    const path = url.slice('file:'.length);
    if (path && path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  }
  const client = createClient({
    url,
    ...(opts.authToken ? { authToken: opts.authToken } : {}),
    timeout: BUSY_TIMEOUT_MS,
    concurrency: 4,
  });
  if (url.startsWith('file:')) {
    // WAL lets readers run beside the writer; FULL makes each commit durable before we answer.
    await client.execute('PRAGMA journal_mode = WAL');
    await client.execute('PRAGMA synchronous = FULL');
    await client.execute('PRAGMA foreign_keys = ON');
  }
  const q = drizzle({ client, schema, casing: 'snake_case' });
  await migrate(client);

  let queue: Promise<unknown> = Promise.resolve();
  const write = <T>(fn: (tx: Tx) => Promise<T>): Promise<T> => {
    const run = queue.then(() => q.transaction(fn, { behavior: 'immediate' }));
    queue = run.catch(() => undefined);
    return run;
  };
  return { q, write, client, close: () => client.close() };
}

interface Journal {
  entries: { idx: number; tag: string }[];
}

/**
 * Applies committed migrations in order. The check and the apply happen inside one write
 * transaction, so two processes starting on a fresh file do not both try to create the schema.
 */
async function migrate(client: Client): Promise<void> {
  const journal = JSON.parse(readFileSync(join(MIGRATIONS_DIR, 'meta', '_journal.json'), 'utf8')) as Journal;
  const tx = await client.transaction('write');
  try {
    await tx.execute(
      'CREATE TABLE IF NOT EXISTS errand_migrations (tag TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)',
    );
    const applied = new Set((await tx.execute('SELECT tag FROM errand_migrations')).rows.map((r) => String(r.tag)));
    for (const entry of [...journal.entries].sort((a, b) => a.idx - b.idx)) {
      if (applied.has(entry.tag)) continue;
      const sql = readFileSync(join(MIGRATIONS_DIR, `${entry.tag}.sql`), 'utf8');
      for (const stmt of sql.split('--> statement-breakpoint')) {
        if (stmt.trim()) await tx.execute(stmt);
      }
      await tx.execute({
        sql: 'INSERT INTO errand_migrations (tag, applied_at) VALUES (?, ?)',
        args: [entry.tag, Math.floor(Date.now() / 1000)],
      });
    }
    await tx.commit();
  } finally {
    tx.close();
  }
}
