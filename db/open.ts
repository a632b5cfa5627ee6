import { chmodSync, closeSync, fchmodSync, fstatSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Client, createClient, type InStatement, type Transaction } from '@libsql/client';
import { type Span, trace } from '@opentelemetry/api';
import { drizzle, type SqliteRemoteDatabase } from 'drizzle-orm/sqlite-proxy';
import Database from 'libsql';
import { failSpan, tracer } from '../broker/telemetry/tracing.js';
import { type Dialect, setDialect } from './dialect.js';
import { type PgHandle, pgConns } from './postgres.js';
import * as schema from './schema/index.js';
import { storageFailure, UnstorableTextError } from './storage-errors.js';
import { type Flush, type WalDurability, walDurability } from './wal-durability.js';

export type Schema = typeof schema;
export type Drizzle = SqliteRemoteDatabase<Schema>;
/** The handle a write transaction receives: the same query API as the database. */
export type Tx = Drizzle;

export interface Db {
  /** `sqlite` for the embedded engine and libSQL servers, `postgres` for PostgreSQL. */
  readonly dialect: Dialect;
  /**
   * Reads see committed data only. A write through this handle (a single statement) joins the
   * write queue as its own transaction; inside `write`, use the transaction handle instead.
   */
  readonly q: Drizzle;
  /**
   * Runs `fn` in a write transaction (BEGIN IMMEDIATE) and resolves once it is durable. Writes of
   * this process are queued and committed in groups: the transactions waiting together run one
   * after another, each in its own savepoint (a failing one rolls back alone), under one COMMIT,
   * so concurrent requests share one fsync. Other processes on the same file wait through
   * SQLite's busy timeout. Keep `fn` short and free of network calls.
   */
  write<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /** Runs a maintenance statement (PRAGMA, checkpoint) on the writing connection. */
  exec(sql: string): Promise<void>;
  /**
   * Closes the handle: writes already queued are committed first (later ones are refused), then
   * the WAL of a `file:` database is checkpointed into the main file, and the connections close.
   * Resolves when done; never rejects (a checkpoint that cannot run now is left to the next
   * opener, which replays the WAL). Closing again returns the same promise.
   */
  close(): Promise<void>;
  /**
   * Hears `NOTIFY` on `channel` (PostgreSQL only; undefined elsewhere) on a connection of its own,
   * so that every node learns of a commit made on another at once. Resolves to the function that
   * stops listening. A notification sent inside a write transaction is delivered at its commit.
   */
  listen?(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
}

export interface OpenOptions {
  authToken?: string;
  /**
   * `native` (default for `file:` URLs): the embedded engine with reused prepared statements.
   * `client`: `@libsql/client` (always for remote `libsql:`/`https:` servers).
   */
  driver?: 'native' | 'client';
  /**
   * Called before anything is written when the database holds no schema at all (a new, emptied or
   * replaced file); throwing refuses to set it up, and the error reaches the caller of `openDb`.
   */
  onEmpty?: () => void;
  /**
   * Runs `PRAGMA quick_check` on a `file:` database before migrating it (default true). Its cost
   * grows with the size of the file; damage refuses the open with an `UnusableDatabaseError`.
   */
  quickCheck?: boolean;
  /**
   * Told about each group commit once it is durable: how many write transactions it held and the
   * seconds from BEGIN to COMMIT (the broker's metrics).
   */
  onGroupCommit?: (size: number, seconds: number) => void;
  /**
   * Embedded file: sync the WAL inside COMMIT (`synchronous = FULL`), as SQLite does by default,
   * instead of after it on the thread pool (db/wal-durability.ts; README "Running several processes").
   */
  syncInCommit?: boolean;
  /** Embedded file: how the WAL is flushed after each commit (default `fs.fsync`); for tests. */
  walFsync?: Flush;
  /** PostgreSQL: reading connections at most (default 10; the writer has one more). */
  poolSize?: number;
  /** PostgreSQL: milliseconds before the server cancels a statement (default 10 000). */
  statementTimeoutMs?: number;
}

/** The database cannot be used as it is (damaged, or written by a newer Errand); the message says what to do. */
export class UnusableDatabaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnusableDatabaseError';
  }
}

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');
const BUSY_TIMEOUT_MS = 10_000;
/** Problems `PRAGMA quick_check` lists at most, and how many of them an error message quotes. */
const QUICK_CHECK_LIMIT = 20;
const QUICK_CHECK_QUOTED = 3;
/** Transactions committed together at most; the rest wait for the next group. */
const MAX_GROUP = 128;
/**
 * On PostgreSQL each transaction of a group is a subtransaction; past 64 with writes in one
 * transaction, every other session's snapshot overflows its cache of them and slows down.
 */
const MAX_GROUP_PG = 60;
/** Prepared statements kept per connection (queries with IN lists vary in shape). */
const STATEMENT_CACHE = 400;

export type Method = 'run' | 'all' | 'values' | 'get';
const MIGRATIONS_PG_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations-pg');

/** Whether `url` names a PostgreSQL server. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}
type Rows = { rows: unknown[]; rowsAffected?: number };

/** One statement on a handle's connection, rows as arrays (`get`: the row itself, or undefined). */
export type RawStatement = (sql: string, params: unknown[], method: Method) => Promise<Rows>;
const rawStatements = new WeakMap<Drizzle, RawStatement>();

/**
 * The statement runner under a drizzle handle (the reader or a write transaction): the request
 * path's prepared statements (db/prepared.ts) go straight to it with SQL built once, skipping the
 * query builder's per-call parameter filling and row mapping. Undefined for a handle not made here.
 */
export function rawStatementOf(d: Drizzle): RawStatement | undefined {
  return rawStatements.get(d);
}

/** One connection as drizzle's proxy driver sees it, plus what the write queue needs. */
interface Conn {
  exec(sql: string, params: unknown[], method: Method): Rows | Promise<Rows>;
  /** Runs SQL text that may return rows or hold several statements, ignoring any result. */
  script(sql: string): void | Promise<void>;
  begin(): void | Promise<void>;
  commit(): void | Promise<void>;
  rollback(): void | Promise<void>;
  /** Copies the WAL into the database file and truncates it, without waiting for other processes. */
  checkpoint(): void | Promise<void>;
  /** Resolves once statements run outside a transaction (autocommit) are on disk, where that needs a step. */
  durable?(): void | Promise<void>;
  close(): void;
}

/** Rows changed by a `run` (insert, update, delete) through either driver. */
export function affected(res: unknown): number {
  return (res as { rowsAffected?: number }).rowsAffected ?? 0;
}

/** Opens the database at `url`, checks it, applies pending migrations and returns the handle. */
export async function openDb(url: string, opts: OpenOptions = {}): Promise<Db> {
  const isFile = url.startsWith('file:');
  const isPostgres = isPostgresUrl(url);
  const dialect: Dialect = isPostgres ? 'postgres' : 'sqlite';
  const path = isFile ? url.slice('file:'.length) : '';
  const name = databaseName(url);
  if (path && path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    ownerOnly(path);
  }
  const driver = opts.driver ?? (isFile ? 'native' : 'client');
  let reader: Conn;
  let writer: Conn;
  let closeAll: () => void | Promise<void>;
  let pgHandle: PgHandle | null = null;
  try {
    if (isPostgres) {
      const handle = pgConns(url, {
        poolSize: opts.poolSize ?? 10,
        statementTimeoutMs: opts.statementTimeoutMs ?? 10_000,
      });
      pgHandle = handle;
      ({ reader, writer } = handle);
      closeAll = () => handle.close();
    } else if (driver === 'native') {
      if (!isFile) throw new Error('the native driver opens file: URLs only');
      // Two connections: reads never see another request's uncommitted group.
      reader = nativeConn(path, false);
      try {
        writer = nativeConn(path, true, {
          ...(opts.syncInCommit ? { syncInCommit: true } : {}),
          ...(opts.walFsync ? { fsync: opts.walFsync } : {}),
        });
      } catch (err) {
        reader.close();
        throw err;
      }
      closeAll = () => {
        reader.close();
        writer.close();
      };
    } else {
      const client = createClient({
        url,
        ...(opts.authToken ? { authToken: opts.authToken } : {}),
        timeout: BUSY_TIMEOUT_MS,
        concurrency: 4,
      });
      try {
        if (isFile) {
          await client.execute('PRAGMA journal_mode = WAL');
          await client.execute('PRAGMA synchronous = FULL');
          await client.execute('PRAGMA foreign_keys = ON');
        }
      } catch (err) {
        client.close();
        throw err;
      }
      ({ reader, writer } = clientConns(client, isFile));
      closeAll = () => client.close();
    }
  } catch (err) {
    throw damaged(name, err) ?? err;
  }
  try {
    if (isFile && opts.quickCheck !== false) await quickCheck(reader, name);
    await migrate(writer, { name, dialect, ...(opts.onEmpty ? { onEmpty: opts.onEmpty } : {}) });
  } catch (err) {
    await closeAll();
    throw damaged(name, err) ?? (isFile ? null : unreachable(url, err)) ?? err;
  }

  const queue: Job[] = [];
  const maxGroup = isPostgres ? MAX_GROUP_PG : MAX_GROUP;
  let flushing = false;
  let closing: Promise<void> | null = null;
  /** Called once the queue is empty and no group is running (what `close` waits for). */
  let onIdle: (() => void) | null = null;
  const tx: Tx = orm(dialect, (sql, params, method) => writer.exec(sql, params, method));

  /** Commits the queued transactions in groups until the queue is empty. */
  const flush = async (): Promise<void> => {
    if (flushing) return;
    flushing = true;
    try {
      while (queue.length > 0) {
        const head = queue[0]!;
        if (head.outside) {
          // A maintenance statement runs alone, outside any transaction.
          queue.shift();
          await head
            .fn(tx)
            .then(async (v) => {
              await writer.durable?.();
              return v;
            })
            .then(head.resolve, head.reject);
          continue;
        }
        const group: { job: Job; ok: boolean; value: unknown }[] = [];
        const began = performance.now();
        try {
          await writer.begin();
          // Jobs that arrive while the group runs join it, up to the cap.
          while (group.length < maxGroup && queue.length > 0 && !queue[0]!.outside) {
            const job = queue.shift()!;
            const entry = { job, ok: false, value: undefined as unknown };
            group.push(entry);
            await writer.exec('SAVEPOINT errand_w', [], 'run');
            try {
              entry.value = await job.fn(tx);
              entry.ok = true;
              // PostgreSQL keeps a savepoint of the same name nested instead of replacing it, and
              // ROLLBACK TO goes back to the newest: not releasing saves a round trip per transaction.
              if (!isPostgres) await writer.exec('RELEASE errand_w', [], 'run');
            } catch (err) {
              entry.value = err;
              try {
                await writer.exec('ROLLBACK TO errand_w', [], 'run');
                if (!isPostgres) await writer.exec('RELEASE errand_w', [], 'run');
              } catch {
                // The engine already rolled back the whole transaction (it may on SQLITE_FULL or
                // SQLITE_IOERR): nothing of the group survives, and every caller hears that cause.
                throw err;
              }
            }
          }
          await writer.commit();
        } catch (err) {
          // Nothing of this group is durable: every caller in it hears the error.
          await Promise.resolve()
            .then(() => writer.rollback())
            .catch(() => undefined);
          for (const { job } of group) job.reject(err);
          if (group.length === 0) for (const job of queue.splice(0, maxGroup)) job.reject(err);
          continue;
        }
        opts.onGroupCommit?.(group.length, (performance.now() - began) / 1000);
        for (const { job, ok, value } of group) {
          job.span?.setAttribute(GROUP_SIZE_ATTR, group.length);
          (ok ? job.resolve : job.reject)(value);
        }
      }
    } finally {
      flushing = false;
      if (queue.length === 0) onIdle?.();
    }
  };
  const write = <T>(fn: (tx: Tx) => Promise<T>, outside = false): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (closing) {
        reject(new Error('the database is closed'));
        return;
      }
      const span = outside ? undefined : writeSpan(dialect);
      queue.push({
        fn,
        resolve: span
          ? (v) => {
              span.end();
              resolve(v as T);
            }
          : (resolve as (v: unknown) => void),
        reject: span
          ? (err) => {
              failSpan(span, err);
              span.end();
              reject(err);
            }
          : reject,
        outside,
        span,
      });
      // Deferred to the end of this I/O turn, so the requests parsed together commit together.
      if (!flushing && queue.length === 1) setImmediate(() => void flush().catch(() => undefined));
    });

  const q: Drizzle = orm(dialect, (sql, params, method) =>
    isRead(sql) ? reader.exec(sql, params, method) : write(async () => writer.exec(sql, params, method)),
  );
  /**
   * A clean close checkpoints explicitly: the engine's close only releases the connection when it
   * is garbage-collected, so without this a stopped process leaves every write since the last
   * automatic checkpoint in the -wal file.
   */
  const finish = (): void | Promise<void> => {
    const done = (): void | Promise<void> => {
      try {
        const closing = closeAll();
        if (closing) return closing.catch(() => undefined);
      } catch {
        // Already closed by the engine: nothing left to release.
      }
    };
    let pending: void | Promise<void>;
    try {
      pending = writer.checkpoint();
    } catch {
      return done();
    }
    if (pending) return pending.then(done, done);
    return done();
  };
  const close = (): Promise<void> => {
    if (!closing) {
      const idle = !flushing && queue.length === 0;
      closing = idle
        ? Promise.resolve(finish())
        : new Promise<void>((resolve) => {
            onIdle = () => resolve(finish());
          });
    }
    return closing;
  };
  return {
    dialect,
    q,
    write: (fn) => write(fn),
    ...(pgHandle ? { listen: pgHandle.listen } : {}),
    exec: (sql) => write(async () => void (await writer.script(sql)), true),
    close,
  };
}

/** The database as messages name it: a file path, or a server URL without credentials or query. */
export function databaseName(url: string): string {
  if (url.startsWith('file:')) return url.slice('file:'.length);
  return url.replace(/[?#].*$/, '').replace(/\/\/[^/@]*@/, '//');
}

/**
 * Creates the database file, or narrows an existing one, to mode 0600 before the engine opens it:
 * it holds sealed keys and hashed secrets. SQLite gives the `-wal` and `-shm` files it creates the
 * mode of the database file; ones left by an earlier run are narrowed here too.
 */
function ownerOnly(path: string): void {
  if (process.platform === 'win32') return;
  let fd: number;
  try {
    fd = openSync(path, 'a', 0o600);
  } catch (err) {
    throw unwritable(path, path, err);
  }
  try {
    if ((fstatSync(fd).mode & 0o077) !== 0) fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
  for (const extra of [`${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    try {
      chmodSync(extra, 0o600);
    } catch (err) {
      // Not there yet: it will be created with the database file's mode.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw unwritable(path, extra, err);
    }
  }
}

/** A refusal naming the file the broker's user cannot write, for the errors that say so. */
function unwritable(path: string, file: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') return err;
  return new UnusableDatabaseError(
    `cannot write the database file ${file} (${code}): the user running Errand must be able to write ${path}, its -wal and -shm files (which it must own) and the directory ${dirname(path)}${code === 'EROFS' ? ', on a file system mounted read-write' : ''}`,
  );
}

interface Job {
  fn: (tx: Tx) => Promise<unknown>;
  /** Runs without a transaction (maintenance statements). */
  outside: boolean;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  /** The `db.write` span of a write made while a traced request runs: from queueing to commit. */
  span: Span | undefined;
}

const GROUP_SIZE_ATTR = 'errand.group_commit.size';

/**
 * A span for one write transaction, a child of the span that asked for it; none when that span is
 * not recorded (tracing off, or a write outside any request), so the write path pays nothing then.
 */
function writeSpan(dialect: Dialect): Span | undefined {
  if (!trace.getActiveSpan()?.isRecording()) return undefined;
  return tracer.startSpan('db.write', {
    attributes: { 'db.system.name': dialect === 'postgres' ? 'postgresql' : 'sqlite' },
  });
}

/** Drizzle over one connection (the batch form is passed so that the config's casing applies). */
function orm(
  dialect: Dialect,
  exec: (sql: string, params: unknown[], method: Method) => Rows | Promise<Rows>,
): Drizzle {
  const one = async (sql: string, params: unknown[], method: Method) => {
    // PostgreSQL's text cannot hold U+0000 and SQLite's can: refused on both, before it is sent
    // (on PostgreSQL the error would abort the whole group's transaction).
    for (const p of params) if (typeof p === 'string' && p.includes('\u0000')) throw new UnstorableTextError();
    return (await exec(sql, params, method)) as { rows: [] };
  };
  const batch = async (queries: { sql: string; params: unknown[]; method: Method }[]) => {
    const out: { rows: [] }[] = [];
    for (const b of queries) out.push(await one(b.sql, b.params, b.method));
    return out;
  };
  const d = drizzle(one, batch, { schema, casing: 'snake_case' });
  setDialect(d, dialect);
  rawStatements.set(d, one);
  return d;
}

function isRead(sql: string): boolean {
  return /^\s*select\b/i.test(sql);
}

/** SQLITE_BUSY (and its extended codes): another connection holds a lock SQLite needs. */
function isBusy(err: unknown): boolean {
  return storageFailure(err)?.kind === 'busy';
}

/**
 * Runs `step` until it does not meet another process's lock, waiting without blocking the event
 * loop (the engine's own busy wait would stall every request of this process), for at most the
 * busy timeout.
 */
async function whenUnlocked<T>(step: () => T): Promise<T> {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
    try {
      return step();
    } catch (err) {
      if (!isBusy(err) || Date.now() >= deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, wait));
  }
}

/** A native connection with a bounded cache of prepared statements. */
function nativeConn(path: string, writes: boolean, opts: NativeOptions = {}): Conn {
  // Neither connection busy-waits inside the engine once serving: that wait is synchronous and
  // would stall the event loop. `begin` waits for the write lock asynchronously, and so does a read
  // that meets a lock (in WAL mode only while another process recovers the log after a crash).
  const db = new Database(path, { timeout: writes ? 0 : BUSY_TIMEOUT_MS });
  let wal: WalDurability | null = null;
  try {
    // WAL lets readers run beside the writer (set once per file, by the reading connection, which
    // may wait for the lock: nothing is served yet). Each commit is durable before we answer: the
    // writer syncs the WAL on the thread pool after COMMIT (db/wal-durability.ts), or, where it
    // cannot, inside COMMIT (FULL).
    if (!writes) db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    if (!writes) db.pragma('busy_timeout = 0');
    if (writes && path !== ':memory:' && !opts.syncInCommit) {
      wal = walDurability(path, opts.fsync);
      if (wal) db.pragma('synchronous = NORMAL');
    }
  } catch (err) {
    wal?.close();
    db.close();
    throw err;
  }
  const cache = new Map<string, ReturnType<typeof db.prepare>>();
  // Statements already switched to rows-as-arrays (a native call each time otherwise).
  const raw = new WeakSet<object>();
  // A statement is only ever used for `get` or only for the other methods: libsql's `get` on a
  // statement whose last use was `all` answers with that earlier execution's first row, whatever
  // the new parameters (db/open.test.ts shows it), and the same SQL arrives both ways (a prepared
  // lookup by key uses `get`, the query builder's `.limit(1)` uses `all`).
  const statement = (sql: string, method: Method) => {
    const key = method === 'get' ? `get\u0000${sql}` : sql;
    let stmt = cache.get(key);
    if (!stmt) {
      stmt = db.prepare(sql);
      if (cache.size >= STATEMENT_CACHE) cache.delete(cache.keys().next().value as string);
      cache.set(key, stmt);
    }
    return stmt;
  };
  const run = (sql: string, params: unknown[], method: Method): Rows => {
    const stmt = statement(sql, method);
    if (method === 'run') return { rows: [], rowsAffected: stmt.run(params).changes };
    if (!raw.has(stmt)) {
      stmt.raw(true);
      raw.add(stmt);
    }
    if (method === 'get') return { rows: stmt.get(params) as unknown[] };
    return { rows: stmt.all(params) };
  };
  return {
    exec(sql, params, method) {
      // The writer runs inside the transaction `begin` opened under the write lock.
      if (writes) return run(sql, params, method);
      try {
        return run(sql, params, method);
      } catch (err) {
        if (!isBusy(err)) throw err;
        return whenUnlocked(() => run(sql, params, method));
      }
    },
    script: (sql) => whenUnlocked(() => void db.exec(sql)),
    begin: () => whenUnlocked(() => void db.exec('BEGIN IMMEDIATE')),
    commit: () => {
      db.exec('COMMIT');
      return wal?.sync();
    },
    durable: () => wal?.sync(),
    rollback: () => {
      if (db.inTransaction) db.exec('ROLLBACK');
    },
    // TRUNCATE leaves an empty -wal file; with this connection's zero busy timeout it gives up at
    // once when another process is reading, rather than holding up the stop.
    checkpoint: () => void db.exec('PRAGMA wal_checkpoint(TRUNCATE)'),
    close: () => {
      wal?.close();
      cache.clear();
      db.close();
    },
  };
}

interface NativeOptions {
  syncInCommit?: boolean;
  fsync?: Flush;
}

/** Reader and writer over `@libsql/client`; the writer runs in the transaction `begin` opened. */
function clientConns(client: Client, isFile: boolean): { reader: Conn; writer: Conn } {
  const run = async (target: Client | Transaction, sql: string, params: unknown[], method: Method): Promise<Rows> => {
    const rs = await target.execute({ sql, args: params } as InStatement);
    if (method === 'run') return { rows: [], rowsAffected: rs.rowsAffected };
    const arrays = rs.rows.map((row) => rs.columns.map((_, i) => row[i]));
    return { rows: method === 'get' ? (arrays[0] as unknown[]) : arrays };
  };
  let open: Transaction | null = null;
  const none = () => undefined;
  /** Ends the open transaction either way and gives its connection back. */
  const settle = async (how: 'commit' | 'rollback') => {
    const t = open;
    open = null;
    try {
      await t?.[how]();
    } finally {
      t?.close();
    }
  };
  return {
    reader: {
      exec: (sql, p, m) => run(client, sql, p, m),
      script: none,
      begin: none,
      commit: none,
      rollback: none,
      checkpoint: none,
      close: none,
    },
    writer: {
      exec: (sql, p, m) => run(open ?? client, sql, p, m),
      script: async (sql) => void (await client.executeMultiple(sql)),
      begin: async () => {
        open = await client.transaction('write');
      },
      commit: () => settle('commit'),
      rollback: () => settle('rollback'),
      // A libSQL server manages its own WAL.
      checkpoint: async () => {
        if (isFile) await client.execute('PRAGMA wal_checkpoint(TRUNCATE)');
      },
      close: none,
    },
  };
}

interface Journal {
  entries: { idx: number; tag: string }[];
}

/**
 * Runs `PRAGMA quick_check` (every page and index entry, without comparing indexes to their tables;
 * time grows with the file's size) and refuses a database that reports problems.
 */
async function quickCheck(reader: Conn, name: string): Promise<void> {
  const { rows } = await reader.exec(`PRAGMA quick_check(${QUICK_CHECK_LIMIT})`, [], 'all');
  const problems = (rows as unknown[][]).map((r) => String(r[0]));
  if (problems.length === 1 && problems[0] === 'ok') return;
  const quoted = problems.slice(0, QUICK_CHECK_QUOTED).join('; ');
  const more = problems.length > QUICK_CHECK_QUOTED ? ` (and ${problems.length - QUICK_CHECK_QUOTED} more)` : '';
  throw new UnusableDatabaseError(
    `the database ${name} is damaged: PRAGMA quick_check reports ${quoted}${more}. Stop every process using it and restore it from a backup`,
  );
}

/** Network error codes that mean the database server was not reached, and what to check for each. */
const NETWORK_HINTS: Record<string, string> = {
  ECONNREFUSED: 'nothing listens there: start the database server, or correct the host and port in ERRAND_DB_URL',
  ENOTFOUND: 'the host name does not resolve: correct the host in ERRAND_DB_URL',
  EAI_AGAIN: 'the host name could not be resolved now: check DNS, or the host in ERRAND_DB_URL',
  ETIMEDOUT: 'the server did not answer: check the host, the port and any firewall between Errand and it',
  UND_ERR_CONNECT_TIMEOUT: 'the server did not answer: check the host, the port and any firewall between Errand and it',
  ECONNRESET:
    'the server closed the connection: check that ERRAND_DB_URL names a libSQL server and the right scheme (http/https, ws/wss)',
  EHOSTUNREACH: 'no route to the host: check the host in ERRAND_DB_URL and the network',
  ENETUNREACH: 'no route to the network: check the host in ERRAND_DB_URL and the network',
};

/** PostgreSQL SQLSTATE classes met on the first contact, and what to check for each. */
const PG_HINTS: Record<string, string> = {
  '28': "check the user name and password in ERRAND_DB_URL (or the server's pg_hba.conf rules for this host)",
  '3D': 'the database does not exist: create it (createdb, or CREATE DATABASE) and give the user in ERRAND_DB_URL rights on it',
  '42': 'the user in ERRAND_DB_URL lacks a right Errand needs: it must own the database (or its schema) to create the tables',
  '53': 'the server is out of connections or resources: lower ERRAND_DB_POOL_SIZE on each node or raise max_connections',
  '57': 'the server is starting up or shutting down: wait for it, then start Errand again',
  '08': 'the connection failed: check the host, the port and the TLS settings (sslmode, sslrootcert) in ERRAND_DB_URL',
};

/**
 * A refusal naming the server (without credentials or query), the cause and what to check, for an
 * error met on the first contact with a remote database; null for errors of another kind. The
 * client's own messages may quote the full URL, so only the cause's code and a scrubbed message
 * are kept.
 */
function unreachable(url: string, err: unknown): UnusableDatabaseError | null {
  if (err instanceof UnusableDatabaseError) return null;
  const name = databaseName(url);
  const chain: { code?: unknown; message?: unknown }[] = [];
  for (let e: unknown = err, i = 0; e instanceof Error && i < 6; e = e.cause, i++) chain.push(e as never);
  const scrub = (m: unknown) => String(m ?? '').replace(/\/\/[^/@\s]*@/g, '//');
  const texts = chain.map((e) => scrub(e.message)).join(': ');
  const network = chain.find((e) => typeof e.code === 'string' && e.code in NETWORK_HINTS);
  const code = (network?.code as string | undefined) ?? Object.keys(NETWORK_HINTS).find((c) => texts.includes(c));
  if (code) {
    const cause = network ? `${code}: ${scrub(network.message)}` : texts;
    return new UnusableDatabaseError(`cannot reach the database server ${name} (${cause}): ${NETWORK_HINTS[code]}`);
  }
  const sqlstate = chain.map((e) => e.code).find((c): c is string => typeof c === 'string' && /^[0-9A-Z]{5}$/.test(c));
  if (sqlstate && PG_HINTS[sqlstate.slice(0, 2)] !== undefined) {
    return new UnusableDatabaseError(
      `the database server ${name} refused Errand (${sqlstate}: ${texts}): ${PG_HINTS[sqlstate.slice(0, 2)]}`,
    );
  }
  if (/\b401\b|unauthori[sz]ed|\b403\b|forbidden/i.test(texts)) {
    return new UnusableDatabaseError(
      `the database server ${name} refused the credentials (${texts}): set ERRAND_DB_AUTH_TOKEN to a valid token for it`,
    );
  }
  if (/fetch failed|credentials|websocket|socket|connect|URL_INVALID|URL_SCHEME/i.test(texts)) {
    return new UnusableDatabaseError(
      `cannot reach the database server ${name} (${texts}): check that the server runs and that ERRAND_DB_URL names it (libsql://, https:// or wss://; put a token in ERRAND_DB_AUTH_TOKEN, not in the URL)`,
    );
  }
  return null;
}

/** A clear refusal for an engine error that says the file is damaged or not a database, else null. */
function damaged(name: string, err: unknown): UnusableDatabaseError | null {
  if (err instanceof UnusableDatabaseError) return null;
  const failure = storageFailure(err);
  if (failure?.kind !== 'corrupt') return null;
  return new UnusableDatabaseError(
    `the database ${name} is damaged or is not a database (${failure.code}: ${(err as Error).message}). Stop every process using it and restore it from a backup`,
  );
}

interface Journal {
  entries: { idx: number; tag: string }[];
}

/**
 * Applies committed migrations in order. The check and the apply happen inside one write
 * transaction, so two processes starting on a fresh file do not both try to create the schema.
 * A database that has migrations this build does not know was written by a newer Errand: it is
 * refused, since this code would misread or damage the newer schema.
 */
async function migrate(conn: Conn, opts: { name: string; dialect: Dialect; onEmpty?: () => void }): Promise<void> {
  const dir = opts.dialect === 'postgres' ? MIGRATIONS_PG_DIR : MIGRATIONS_DIR;
  const journal = JSON.parse(readFileSync(join(dir, 'meta', '_journal.json'), 'utf8')) as Journal;
  const known = [...journal.entries].sort((a, b) => a.idx - b.idx);
  // On PostgreSQL `begin` takes the write lock every node takes: nodes starting together migrate once.
  await conn.begin();
  try {
    const { rows: objects } = await conn.exec(
      opts.dialect === 'postgres'
        ? 'SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()'
        : 'SELECT count(*) FROM sqlite_master',
      [],
      'all',
    );
    if (Number((objects as unknown[][])[0]?.[0]) === 0) opts.onEmpty?.();
    await conn.exec(
      'CREATE TABLE IF NOT EXISTS errand_migrations (tag TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)',
      [],
      'run',
    );
    const { rows } = await conn.exec('SELECT tag FROM errand_migrations', [], 'all');
    const applied = new Set((rows as unknown[][]).map((r) => String(r[0])));
    const knownTags = new Set(known.map((e) => e.tag));
    const unknown = [...applied].filter((tag) => !knownTags.has(tag)).sort();
    if (unknown.length > 0) {
      // Tags start with the migration's zero-padded index, so the last one in order is the newest.
      throw new UnusableDatabaseError(
        `the database ${opts.name} has schema version ${unknown.at(-1)}, newer than this version of Errand knows (${known.at(-1)?.tag ?? 'none'}): run the newer Errand that upgraded it, or restore a backup taken before the upgrade`,
      );
    }
    for (const entry of known) {
      if (applied.has(entry.tag)) continue;
      const sql = readFileSync(join(dir, `${entry.tag}.sql`), 'utf8');
      for (const stmt of sql.split('--> statement-breakpoint')) {
        if (stmt.trim()) await conn.exec(stmt, [], 'run');
      }
      await conn.exec(
        'INSERT INTO errand_migrations (tag, applied_at) VALUES (?, ?)',
        [entry.tag, Math.floor(Date.now() / 1000)],
        'run',
      );
    }
    await conn.commit();
  } catch (err) {
    await conn.rollback();
    throw err;
  }
}
