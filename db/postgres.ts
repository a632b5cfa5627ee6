/**
 * PostgreSQL connections in the shape the write queue of `openDb` drives (see `Conn` there).
 *
 * Queries are built by drizzle's SQLite builder over a schema that maps one to one onto the
 * PostgreSQL tables (`db/migrations-pg`, checked against the schema by a test): integers are
 * `bigint`, booleans `bigint` 0/1, JSON `text`, text `COLLATE "C"` (SQLite's byte order). So the
 * only rewriting is of placeholders (`?` → `$n`), and results come back as SQLite gives them.
 *
 * Writes keep the embedded engine's model, which every rule of the engine was written against: one
 * writer at a time. Each group of write transactions runs on this node's one writing connection
 * and first takes a transaction-scoped advisory lock that every node asks for, so write
 * transactions of all nodes are serialised as on one SQLite file (a read-then-write inside one sees
 * no other writer between its steps) and are committed before anyone hears an answer. Reads run on
 * a pool, on committed data.
 */
import pg from 'pg';

type Method = 'run' | 'all' | 'values' | 'get';
type Rows = { rows: unknown[]; rowsAffected?: number };

export interface PgConn {
  exec(sql: string, params: unknown[], method: Method): Promise<Rows>;
  script(sql: string): Promise<void>;
  begin(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  checkpoint(): void;
  close(): void;
}

export interface PgOptions {
  /** Reading connections at most (the writer has one more of its own). */
  poolSize: number;
  /** Milliseconds a statement may run before the server cancels it (`statement_timeout`). */
  statementTimeoutMs: number;
}

/** The advisory lock every write transaction of every node takes first (`Errand` in ASCII). */
export const WRITE_LOCK = 0x4572_7261_6e64;
/** Distinct statements kept prepared per connection; queries with IN lists vary in shape. */
const PREPARED_LIMIT = 500;
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Results as SQLite's driver gives them: `bigint` and `numeric` as numbers (every integer Errand
 * stores is a count, a time in seconds or milliseconds, or an index: far below 2^53), booleans
 * (from `EXISTS`, comparisons) as 1 or 0.
 */
const types = {
  getTypeParser(oid: number, format?: string) {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    if (oid === 16) return (v: string) => (v === 't' ? 1 : 0);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

/**
 * SQLite's text as PostgreSQL's: `?` placeholders (outside quoted strings and identifiers) as
 * `$1`, `$2`, …, and conflict targets without the table name. Cached per text.
 */
const translated = new Map<string, string>();
export function numberPlaceholders(text: string): string {
  let out = translated.get(text);
  if (out !== undefined) return out;
  let n = 0;
  let quote: string | null = null;
  out = '';
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = null;
      out += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else if (ch === '?') {
      n += 1;
      out += `$${n}`;
    } else out += ch;
  }
  // SQLite takes a table-qualified conflict target, PostgreSQL only column names.
  out = out.replace(
    /\bon conflict \(([^)]*)\)/gi,
    (_, cols: string) => `on conflict (${cols.replace(/"[^"]+"\.(?=")/g, '')})`,
  );
  if (translated.size < 4 * PREPARED_LIMIT) translated.set(text, out);
  return out;
}

/** SQLite binds a boolean as 1 or 0; so does this driver, since the columns are integers. */
function bindable(params: unknown[]): unknown[] {
  let copy: unknown[] | null = null;
  for (let i = 0; i < params.length; i++) {
    const v = params[i];
    if (typeof v === 'boolean' || v === undefined) {
      copy ??= [...params];
      copy[i] = v === undefined ? null : v ? 1 : 0;
    }
  }
  return copy ?? params;
}

const names = new Map<string, string>();
/** A statement name for `text`, so each connection parses and plans it once. */
function statementName(text: string): string | undefined {
  let name = names.get(text);
  if (name === undefined && names.size < PREPARED_LIMIT) {
    name = `errand_${names.size}`;
    names.set(text, name);
  }
  return name;
}

async function run(target: pg.Pool | pg.PoolClient, text: string, params: unknown[], method: Method): Promise<Rows> {
  const query = numberPlaceholders(text);
  const name = params.length > 0 ? statementName(query) : undefined;
  const res = await target.query({
    text: query,
    values: bindable(params),
    rowMode: 'array',
    ...(name ? { name } : {}),
  } as pg.QueryArrayConfig);
  if (method === 'run') return { rows: [], rowsAffected: res.rowCount ?? 0 };
  return { rows: method === 'get' ? (res.rows[0] as unknown[]) : res.rows };
}

/** Connection settings shared by the pools; TLS and credentials come from the URL (`sslmode`, `sslrootcert`). */
function poolConfig(url: string, max: number, opts: PgOptions): pg.PoolConfig {
  return {
    connectionString: url,
    max,
    types,
    application_name: 'errand',
    statement_timeout: opts.statementTimeoutMs,
    // A transaction left open by a stalled node must not hold the write lock for ever.
    idle_in_transaction_session_timeout: Math.max(opts.statementTimeoutMs * 2, 10_000),
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // A node cut off by the network must not hold the write lock until the kernel gives up.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    idleTimeoutMillis: 30_000,
  };
}

export interface PgHandle {
  reader: PgConn;
  writer: PgConn;
  /** Opens a dedicated connection that hears `NOTIFY` on `channel`; see `listen`. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export function pgConns(url: string, opts: PgOptions): PgHandle {
  const readers = new pg.Pool(poolConfig(url, opts.poolSize, opts));
  const writers = new pg.Pool(poolConfig(url, 1, opts));
  // An idle connection the server dropped (restart, failover) is replaced on next use; without a
  // listener the pool's error event would end the process.
  readers.on('error', () => undefined);
  writers.on('error', () => undefined);
  let open: pg.PoolClient | null = null;
  const listeners = new Set<pg.Client>();

  const end = async (how: 'COMMIT' | 'ROLLBACK') => {
    const client = open;
    open = null;
    if (!client) return;
    try {
      await client.query(how);
      client.release();
    } catch (err) {
      // The connection is in an unknown state: drop it rather than give it back to the pool.
      client.release(err as Error);
      throw err;
    }
  };

  return {
    reader: {
      exec: (sql, params, method) => run(readers, sql, params, method),
      script: async () => undefined,
      begin: async () => undefined,
      commit: async () => undefined,
      rollback: async () => undefined,
      checkpoint: () => undefined,
      close: () => undefined,
    },
    writer: {
      exec: (sql, params, method) => run(open ?? writers, sql, params, method),
      script: async (sql) => void (await writers.query(sql)),
      begin: async () => {
        const client = await writers.connect();
        try {
          // One round trip: both statements in one simple query.
          await client.query(`BEGIN; SELECT pg_advisory_xact_lock(${WRITE_LOCK})`);
        } catch (err) {
          client.release(err as Error);
          throw err;
        }
        open = client;
      },
      commit: () => end('COMMIT'),
      rollback: () => end('ROLLBACK').catch(() => undefined),
      checkpoint: () => undefined,
      close: () => undefined,
    },
    async listen(channel, onNotify) {
      let client: pg.Client | null = null;
      let stopped = false;
      let retry: NodeJS.Timeout | null = null;
      const connect = async (): Promise<void> => {
        const c = new pg.Client({ ...poolConfig(url, 1, opts), statement_timeout: 0 });
        c.on('error', () => undefined);
        c.on('notification', (n) => {
          if (n.channel === channel) onNotify(n.payload ?? '');
        });
        // A dropped connection misses notifications: reconnect, then let the caller catch up.
        c.on('end', () => {
          listeners.delete(c);
          if (stopped || client !== c) return;
          client = null;
          const again = () => {
            retry = null;
            if (stopped) return;
            connect().then(
              () => onNotify(''),
              () => {
                retry = setTimeout(again, 1000);
                retry.unref();
              },
            );
          };
          retry = setTimeout(again, 100);
          retry.unref();
        });
        await c.connect();
        try {
          await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
        } catch (err) {
          await c.end().catch(() => undefined);
          throw err;
        }
        if (stopped) {
          await c.end().catch(() => undefined);
          return;
        }
        client = c;
        listeners.add(c);
      };
      await connect();
      return async () => {
        stopped = true;
        if (retry) clearTimeout(retry);
        const c = client;
        client = null;
        if (c) {
          listeners.delete(c);
          await c.end().catch(() => undefined);
        }
      };
    },
    async close() {
      await Promise.all([...listeners].map((c) => c.end().catch(() => undefined)));
      await Promise.all([readers.end(), writers.end()]);
    },
  };
}
