/**
 * Backup and restore of an installation (README "Backup and restore"). A backup is one SQLite file:
 * a consistent copy of the database taken with `VACUUM INTO` (it reads one snapshot, so writers of a
 * running broker go on and none of their transactions is half in the copy), plus an `errand_backup`
 * table saying when and from where it was taken, the master key's fingerprint and whether the
 * master key itself is inside. By default it is not: signing keys and other secrets in the copy are
 * sealed with the master key, and a restore needs that same key.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'libsql';
import { databaseName, isPostgresUrl } from '../../db/open.js';
import type { Config } from '../config.js';
import { CryptoBox, readMasterKey } from '../tokens/crypto-box.js';

/** A refusal the operator can act on; the message says what to do. */
export class BackupError extends Error {}

const INFO_TABLE = 'errand_backup';
const FORMAT = '1';
const BUSY_TIMEOUT_MS = 10_000;

export interface BackupInfo {
  file: string;
  format: number;
  created_at: number;
  source: string;
  schema_version: string | null;
  master_key_fingerprint: string | null;
  includes_master_key: boolean;
  signing_keys: number;
}

type Conn = InstanceType<typeof Database>;

/** The database file behind ERRAND_DB_URL; backups and restores work on files only. */
function databaseFile(config: Config, action: 'backup' | 'restore'): string {
  const name = databaseName(config.db.url);
  if (isPostgresUrl(config.db.url)) {
    throw new BackupError(
      action === 'backup'
        ? `ERRAND_DB_URL names the PostgreSQL database ${name}: errand-admin backup copies the embedded file database only. Back PostgreSQL up with pg_dump -Fc (README "PostgreSQL and several nodes") and keep the master key apart from the dump`
        : `ERRAND_DB_URL names the PostgreSQL database ${name}: errand-admin restore writes the embedded file database only. Restore a pg_dump -Fc dump with pg_restore into an empty database (README "PostgreSQL and several nodes"), with the master key it was taken under`,
    );
  }
  if (!config.db.url.startsWith('file:')) {
    throw new BackupError(
      `${name} is a database server: back it up with the server's own tools (errand-admin ${action} works on the embedded file database only)`,
    );
  }
  const path = databaseName(config.db.url);
  if (path === ':memory:') throw new BackupError('an in-memory database cannot be backed up');
  return resolve(path);
}

function one<T>(db: Conn, sql: string, params: unknown[] = []): T | undefined {
  const stmt = db.prepare(sql);
  stmt.raw(true);
  return stmt.get(params) as T | undefined;
}

function quickCheck(db: Conn): string {
  const row = one<[string]>(db, 'PRAGMA quick_check(1)');
  return row?.[0] ?? 'no answer';
}

function setting(db: Conn, key: string): string | null {
  const table = one<[number]>(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'settings'");
  if (!table?.[0]) return null;
  return one<[string]>(db, 'SELECT value FROM settings WHERE key = ?', [key])?.[0] ?? null;
}

function schemaVersion(db: Conn): string | null {
  const table = one<[number]>(
    db,
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'errand_migrations'",
  );
  if (!table?.[0]) return null;
  return one<[string]>(db, 'SELECT tag FROM errand_migrations ORDER BY tag DESC LIMIT 1')?.[0] ?? null;
}

/** The master key of this configuration (ERRAND_MASTER_KEY or the key file), or null when none is there. */
function configuredKey(config: Config): { key: Buffer; where: string } | null {
  const found = readMasterKey({
    ...(config.masterKey.value ? { envValue: config.masterKey.value } : {}),
    filePath: config.masterKey.file,
  });
  if (!found) return null;
  return {
    key: found.key,
    where: found.source === 'env' ? 'ERRAND_MASTER_KEY' : `the key file ${config.masterKey.file}`,
  };
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies the database into `file` while the broker may be running. The copy is written beside the
 * target and renamed into place once it is checked, so a failed backup never leaves a file that
 * looks complete.
 */
export function takeBackup(
  config: Config,
  file: string,
  opts: { includeMasterKey: boolean; force: boolean; now: number },
): BackupInfo {
  const source = databaseFile(config, 'backup');
  if (!existsSync(source) || statSync(source).size === 0) {
    throw new BackupError(`there is no database at ${source} to back up (check ERRAND_DATA_DIR or ERRAND_DB_URL)`);
  }
  const target = resolve(file);
  if (existsSync(target) && !opts.force) throw new BackupError(`${target} exists: choose a new file or pass --force`);
  const key = opts.includeMasterKey ? configuredKey(config) : null;
  if (opts.includeMasterKey && !key) {
    throw new BackupError(
      `--include-master-key: no master key is set (neither ERRAND_MASTER_KEY nor ${config.masterKey.file})`,
    );
  }
  const partial = `${target}.partial-${process.pid}`;
  rmSync(partial, { force: true });
  // Created empty and owner-only first: VACUUM INTO fills an empty file and keeps its mode.
  writeFileSync(partial, '', { mode: 0o600, flag: 'wx' });
  let src: Conn | null = null;
  let copy: Conn | null = null;
  try {
    src = new Database(source, { timeout: BUSY_TIMEOUT_MS });
    const fingerprint = setting(src, 'master_key_fingerprint');
    if (key && fingerprint && new CryptoBox(key.key).fingerprint !== fingerprint) {
      throw new BackupError(`--include-master-key: the master key from ${key.where} is not the one this database uses`);
    }
    src.exec(`VACUUM INTO '${partial.replaceAll("'", "''")}'`);
    src.close();
    src = null;

    copy = new Database(partial, { timeout: BUSY_TIMEOUT_MS });
    const check = quickCheck(copy);
    if (check !== 'ok') throw new BackupError(`the copy failed its integrity check (${check}); nothing was written`);
    const info: BackupInfo = {
      file: target,
      format: Number(FORMAT),
      created_at: opts.now,
      source,
      schema_version: schemaVersion(copy),
      master_key_fingerprint: setting(copy, 'master_key_fingerprint'),
      includes_master_key: key !== null,
      signing_keys: one<[number]>(copy, 'SELECT count(*) FROM signing_keys')?.[0] ?? 0,
    };
    copy.exec(`CREATE TABLE ${INFO_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    const insert = copy.prepare(`INSERT INTO ${INFO_TABLE} (key, value) VALUES (?, ?)`);
    insert.run(['format', FORMAT]);
    insert.run(['created_at', String(info.created_at)]);
    insert.run(['source', source]);
    insert.run(['schema_version', info.schema_version ?? '']);
    insert.run(['includes_master_key', String(info.includes_master_key)]);
    if (key) insert.run(['master_key', key.key.toString('base64url')]);
    copy.close();
    copy = null;
    fsyncPath(partial);
    renameSync(partial, target);
    fsyncPath(dirname(target));
    return info;
  } catch (err) {
    src?.close();
    copy?.close();
    rmSync(partial, { force: true });
    throw err;
  }
}

/** Reads and checks a backup file; the master key inside it, when it holds one. */
function readBackup(file: string): { info: BackupInfo; masterKey: Buffer | null; keys: [string, string][] } {
  const path = resolve(file);
  if (!existsSync(path)) throw new BackupError(`${path} does not exist`);
  let db: Conn;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new BackupError(`${path} cannot be opened as a backup (${(err as Error).message})`);
  }
  try {
    let rows: [string, string][];
    try {
      const stmt = db.prepare(`SELECT key, value FROM ${INFO_TABLE}`);
      stmt.raw(true);
      rows = stmt.all() as [string, string][];
    } catch {
      throw new BackupError(
        `${path} is not an Errand backup (it has no ${INFO_TABLE} table): take one with errand-admin backup`,
      );
    }
    const values = new Map(rows);
    if (values.get('format') !== FORMAT) {
      throw new BackupError(`${path} is a backup of format ${values.get('format')}, which this version cannot restore`);
    }
    const check = quickCheck(db);
    if (check !== 'ok') throw new BackupError(`${path} is damaged (PRAGMA quick_check: ${check})`);
    const keysStmt = db.prepare('SELECT kid, private_key_sealed FROM signing_keys');
    keysStmt.raw(true);
    const keys = keysStmt.all() as [string, string][];
    const sealedKey = values.get('master_key');
    return {
      info: {
        file: path,
        format: Number(FORMAT),
        created_at: Number(values.get('created_at')),
        source: values.get('source') ?? '',
        schema_version: values.get('schema_version') || null,
        master_key_fingerprint: setting(db, 'master_key_fingerprint'),
        includes_master_key: values.get('includes_master_key') === 'true',
        signing_keys: keys.length,
      },
      masterKey: sealedKey ? Buffer.from(sealedKey, 'base64url') : null,
      keys,
    };
  } finally {
    db.close();
  }
}

/** Whether `box` opens every signing key of the backup (each is sealed with the key id as AAD). */
function opensAll(box: CryptoBox, keys: [string, string][]): boolean {
  try {
    for (const [kid, sealed] of keys) box.open(sealed, `signing-key:${kid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Refuses when a process has the database open: an exclusive lock cannot be had while any other
 * connection (a running broker) holds it. Returns whether the database holds any table.
 */
function checkIdle(path: string): { holdsData: boolean } {
  const wal = `${path}-wal`;
  const walData = existsSync(wal) && statSync(wal).size > 0;
  if (!existsSync(path)) return { holdsData: walData };
  if (statSync(path).size === 0) return { holdsData: walData };
  const db = new Database(path, { timeout: 0 });
  try {
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
      db.exec('COMMIT');
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) {
        throw new BackupError(`the database ${path} is in use: stop the broker (and any other process using it) first`);
      }
      throw err;
    }
    const tables = one<[number]>(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'")?.[0] ?? 0;
    return { holdsData: tables > 0 || walData };
  } finally {
    db.close();
  }
}

export interface RestoreResult extends BackupInfo {
  database: string;
  /** Where the master key came from: the configuration, or the backup (then written to the key file). */
  master_key_source: 'configuration' | 'backup';
}

/**
 * Restores a backup into this configuration's database, which no process may have open. A database
 * that holds an installation is replaced only with `force`. The master key must open the backup's
 * signing keys: the configured one, or else the one inside the backup (written to the key file).
 */
export function restoreBackup(config: Config, file: string, opts: { force: boolean }): RestoreResult {
  const target = databaseFile(config, 'restore');
  const backup = readBackup(file);
  const configured = configuredKey(config);
  let keySource: RestoreResult['master_key_source'];
  if (configured) {
    const box = new CryptoBox(configured.key);
    const fingerprint = backup.info.master_key_fingerprint;
    if ((fingerprint && box.fingerprint !== fingerprint) || !opensAll(box, backup.keys)) {
      throw new BackupError(
        `the master key from ${configured.where} does not decrypt this backup's signing keys: ` +
          `set the master key of the installation the backup was taken from (ERRAND_MASTER_KEY or ERRAND_MASTER_KEY_FILE)${backup.info.includes_master_key ? ', or remove this one so that the key inside the backup is used' : ''}; nothing was changed`,
      );
    }
    keySource = 'configuration';
  } else if (backup.masterKey) {
    if (!opensAll(new CryptoBox(backup.masterKey), backup.keys)) {
      throw new BackupError(
        'the master key inside the backup does not decrypt its signing keys: the backup is damaged',
      );
    }
    keySource = 'backup';
  } else {
    throw new BackupError(
      `this backup does not include the master key, and none is set here: put the master key file of the installation the backup was taken from at ${config.masterKey.file} (mode 0600) or set ERRAND_MASTER_KEY, then restore again; nothing was changed`,
    );
  }

  mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
  const { holdsData } = checkIdle(target);
  if (holdsData && !opts.force) {
    throw new BackupError(
      `the database ${target} already holds an installation: restoring replaces all of it; pass --force to do so`,
    );
  }
  const staged = `${target}.restoring-${process.pid}`;
  rmSync(staged, { force: true });
  writeFileSync(staged, '', { mode: 0o600, flag: 'wx' });
  try {
    // A fresh copy without the backup's own table (and without the master key it may hold).
    const src = new Database(backup.info.file, { readonly: true, fileMustExist: true });
    try {
      src.exec(`VACUUM INTO '${staged.replaceAll("'", "''")}'`);
    } finally {
      src.close();
    }
    const db = new Database(staged);
    try {
      db.exec(`DROP TABLE ${INFO_TABLE}`);
      db.exec('VACUUM');
      db.pragma('journal_mode = WAL');
    } finally {
      db.close();
    }
    fsyncPath(staged);
    if (keySource === 'backup') writeKeyFile(config.masterKey.file, backup.masterKey!);
    for (const extra of [`${target}-wal`, `${target}-shm`, `${target}-journal`]) rmSync(extra, { force: true });
    renameSync(staged, target);
    fsyncPath(dirname(target));
  } catch (err) {
    rmSync(staged, { force: true });
    throw err;
  }
  return { ...backup.info, database: target, master_key_source: keySource };
}

/** Writes the master key file (owner-only); an existing file is never overwritten. */
function writeKeyFile(path: string, key: Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeFileSync(fd, `${key.toString('base64url')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The description of a backup without restoring it. */
export function describeBackup(file: string): BackupInfo {
  return readBackup(file).info;
}
