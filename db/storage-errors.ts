/**
 * What a failed database call says about the storage, in one place: the HTTP error handler, the MCP
 * tools, the A2A skills and readiness all read the same answer.
 *
 * The engine's error rarely arrives alone: drizzle wraps it (`Failed query: …`, with the engine's
 * error as `cause`), and a group commit hands the same error to every caller in the group. So the
 * cause chain is searched for the first error carrying a SQLite result code.
 */

/**
 * SQLite result codes and PostgreSQL SQLSTATE codes (Appendix A of the PostgreSQL manual) both map
 * to these kinds:
 * - `busy`: another connection holds the lock (SQLITE_BUSY, SQLITE_LOCKED) past the busy timeout;
 *   on PostgreSQL also a cancelled statement (statement timeout), a lock not available, a
 *   serialisation failure or deadlock, or too many connections.
 * - `unavailable`: the database server cannot be reached or is shutting down (connection errors,
 *   server restarts): transient, another node or a restarted server will answer.
 * - `full`: the disk or the database's size limit is full (SQLITE_FULL).
 * - `readonly`: the database cannot be written (SQLITE_READONLY: file mode, read-only mount).
 * - `corrupt`: the file is damaged or not a database (SQLITE_CORRUPT, SQLITE_NOTADB).
 * - `io`: the operating system failed a read or write (SQLITE_IOERR, SQLITE_CANTOPEN).
 */
export type StorageFailureKind = 'busy' | 'unavailable' | 'full' | 'readonly' | 'corrupt' | 'io';

export interface StorageFailure {
  kind: StorageFailureKind;
  /** The engine's code as it reported it, e.g. `SQLITE_BUSY` or `SQLITE_READONLY_DBMOVED`. */
  code: string;
  /**
   * Whether the same request may succeed later without anyone changing it: a lock is released, space
   * is freed, the file is made writable again. Damage and I/O errors are not retried.
   */
  transient: boolean;
  /** Seconds a caller should wait before trying again (the `Retry-After` value), when transient. */
  retryAfter: number;
}

/** Primary result codes (the low byte of an extended code) and what they mean here. */
const PRIMARY: Record<number, StorageFailureKind> = {
  5: 'busy', // SQLITE_BUSY
  6: 'busy', // SQLITE_LOCKED
  8: 'readonly', // SQLITE_READONLY
  10: 'io', // SQLITE_IOERR
  11: 'corrupt', // SQLITE_CORRUPT
  13: 'full', // SQLITE_FULL
  14: 'io', // SQLITE_CANTOPEN
  26: 'corrupt', // SQLITE_NOTADB
};
const BY_NAME: Record<string, StorageFailureKind> = {
  SQLITE_BUSY: 'busy',
  SQLITE_LOCKED: 'busy',
  SQLITE_READONLY: 'readonly',
  SQLITE_IOERR: 'io',
  SQLITE_CORRUPT: 'corrupt',
  SQLITE_FULL: 'full',
  SQLITE_CANTOPEN: 'io',
  SQLITE_NOTADB: 'corrupt',
};

/**
 * A lock has usually gone by the time a caller retries (each write has already waited the busy
 * timeout); a full disk or a read-only file waits for an operator.
 */
const RETRY_AFTER: Record<StorageFailureKind, number> = {
  busy: 5,
  unavailable: 5,
  full: 30,
  readonly: 30,
  corrupt: 0,
  io: 0,
};
const TRANSIENT: Record<StorageFailureKind, boolean> = {
  busy: true,
  unavailable: true,
  full: true,
  readonly: true,
  corrupt: false,
  io: false,
};
const MAX_DEPTH = 8;

/** The storage failure behind `err` (searching its cause chain), or null when it is not one. */
export function storageFailure(err: unknown): StorageFailure | null {
  let e: unknown = err;
  for (let depth = 0; depth < MAX_DEPTH && typeof e === 'object' && e !== null; depth++) {
    const kind = kindOf(e as { code?: unknown; rawCode?: unknown; extendedCode?: unknown });
    if (kind) {
      const { code, rawCode } = e as { code?: unknown; rawCode?: unknown };
      return {
        kind,
        code: typeof code === 'string' ? code : `SQLITE_${String(rawCode)}`,
        transient: TRANSIENT[kind],
        retryAfter: RETRY_AFTER[kind],
      };
    }
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

function kindOf(e: { code?: unknown; rawCode?: unknown; extendedCode?: unknown }): StorageFailureKind | null {
  // libsql (native) and @libsql/client: code `SQLITE_BUSY_RECOVERY`, rawCode 261 (extended).
  if (typeof e.rawCode === 'number') {
    const kind = PRIMARY[e.rawCode & 0xff];
    if (kind) return kind;
  }
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && 'severity' in e) return pgKind(e.code);
  if (typeof e.code === 'string' && e.code in NETWORK && 'syscall' in e) return 'unavailable';
  if (e instanceof Error && /^Connection terminated|^timeout exceeded when trying to connect/.test(e.message)) {
    return 'unavailable';
  }
  if (typeof e.code === 'string' && e.code.startsWith('SQLITE_')) {
    const base = /^SQLITE_[A-Z]+/.exec(e.code)?.[0] ?? '';
    const kind = BY_NAME[base];
    if (kind) return kind;
  }
  return null;
}

/** Socket errors met talking to a database server. */
const NETWORK: Record<string, true> = {
  ECONNREFUSED: true,
  ECONNRESET: true,
  EPIPE: true,
  ETIMEDOUT: true,
  EHOSTUNREACH: true,
  ENETUNREACH: true,
  ENOTFOUND: true,
  EAI_AGAIN: true,
};

/** A PostgreSQL SQLSTATE as a kind, or null for errors about the statement itself (constraints, syntax). */
function pgKind(code: string): StorageFailureKind | null {
  switch (code) {
    case '57014': // query_canceled (statement_timeout)
    case '55P03': // lock_not_available
    case '40001': // serialization_failure
    case '40P01': // deadlock_detected
    case '53300': // too_many_connections
      return 'busy';
    case '53100': // disk_full
    case '53200': // out_of_memory
      return 'full';
    case '25006': // read_only_sql_transaction (a standby)
      return 'readonly';
    case 'XX001': // data_corrupted
    case 'XX002': // index_corrupted
      return 'corrupt';
  }
  if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return 'unavailable';
  if (code.startsWith('58')) return 'io';
  return null;
}

/**
 * A text value holding U+0000, which PostgreSQL's `text` cannot store or compare (SQLite can): no
 * field of Errand has a use for it, so every statement on either database refuses it, and every
 * door answers `invalid_request` (`storageRefusal` in broker/http/on-error.ts).
 */
export class UnstorableTextError extends Error {
  constructor() {
    super('a text value contains the NUL character (U+0000)');
    this.name = 'UnstorableTextError';
  }
}

/** Whether `err` (or an error in its cause chain) is an `UnstorableTextError`. */
export function isUnstorableText(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < MAX_DEPTH && typeof e === 'object' && e !== null; depth++) {
    if (e instanceof UnstorableTextError) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
