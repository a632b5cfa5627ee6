/**
 * Opening an installation at start: the data directory, the database and the master key, checked
 * together so that lost data, a lost key, damage or a newer schema stop start-up with a message that
 * says what to do, instead of turning into a new installation or failing later.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { type Db, databaseName, openDb, UnusableDatabaseError } from '../../db/open.js';
import { settings } from '../../db/schema/index.js';
import type { Config } from '../config.js';
import { type Metrics, noMetrics } from '../core/metrics.js';
import type { Logger } from '../log.js';
import { CryptoBox, loadMasterKey, readMasterKey } from '../tokens/crypto-box.js';

/** Thrown when start-up cannot continue; the message says what to fix. */
export class StartupError extends Error {}

const FINGERPRINT = 'master_key_fingerprint';

/** Checks the master key against the fingerprint recorded on first start (recording it then). */
async function checkMasterKey(db: Db, box: CryptoBox): Promise<void> {
  await db.write(async (tx) => {
    const [row] = await tx.select().from(settings).where(eq(settings.key, FINGERPRINT));
    if (!row) {
      await tx.insert(settings).values({ key: FINGERPRINT, value: box.fingerprint });
      return;
    }
    if (row.value !== box.fingerprint) {
      throw new StartupError(
        'the master key does not match the one this database was created with (check ERRAND_MASTER_KEY or ERRAND_MASTER_KEY_FILE)',
      );
    }
  });
}

/** The size of a file, or null when there is none. */
function sizeOf(file: string): number | null {
  try {
    return statSync(file).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Files that only an earlier installation leaves: the master key Errand generated in the data
 * directory (only once a database has its schema), and a -wal file holding data beside the
 * database. Next to an empty database they mean the data was lost or moved, not that this is a
 * first start. The -shm file is not one: every open creates it, so a second process starting at the
 * same moment on a new directory would see it. A key file the operator provides elsewhere through
 * ERRAND_MASTER_KEY_FILE is not one either.
 */
function earlierInstallTraces(config: Config): string[] {
  const traces: string[] = [];
  const key = join(config.dataDir, 'master.key');
  if (existsSync(key)) traces.push(key);
  const path = config.db.url.startsWith('file:') ? databaseName(config.db.url) : '';
  if (path && path !== ':memory:' && (sizeOf(`${path}-wal`) ?? 0) > 0) traces.push(`${path}-wal`);
  return traces;
}

/**
 * Opens the database, refusing an empty one where an earlier installation left traces. A missing
 * or zero-length file is refused before SQLite opens it: SQLite would discard a -wal file that
 * holds data beside it. A file with no schema is refused before anything is written.
 */
async function openChecked(config: Config, log: Logger, metrics: Metrics): Promise<Db> {
  const name = databaseName(config.db.url);
  const traces = earlierInstallTraces(config);
  let reset = false;
  const refuseEmpty = (state: 'missing' | 'empty') => {
    if (traces.length === 0 || reset) return;
    if (config.db.allowEmpty) {
      reset = true;
      log.warn('database.reset', { db: name, traces });
      return;
    }
    throw new StartupError(
      `the database ${name} is ${state}, but files of an earlier installation are present (${traces.join(', ')}). ` +
        'Starting would set up a new installation: every client, delegation and signing key of the earlier one would be gone. ' +
        'Restore the database from a backup (with its -wal file), or, to start over on purpose, set ERRAND_ALLOW_EMPTY_DATABASE=true for one start',
    );
  };
  if (config.db.url.startsWith('file:') && name !== ':memory:') {
    const size = sizeOf(name);
    if (size === null) refuseEmpty('missing');
    else if (size === 0) refuseEmpty('empty');
  }
  try {
    return await openDb(config.db.url, {
      ...(config.db.authToken ? { authToken: config.db.authToken } : {}),
      quickCheck: config.db.quickCheck,
      poolSize: config.db.poolSize,
      statementTimeoutMs: config.db.statementTimeoutMs,
      syncInCommit: config.db.syncInCommit,
      onEmpty: () => refuseEmpty('empty'),
      onGroupCommit: (size, seconds) => metrics.groupCommitted(size, seconds),
    });
  } catch (err) {
    if (err instanceof UnusableDatabaseError) throw new StartupError(err.message);
    throw err;
  }
}

type MasterKeySource = { envValue?: string; filePath: string };

/** The master key from ERRAND_MASTER_KEY or the key file, or null; a bad one stops start-up. */
function findMasterKey(source: MasterKeySource): ReturnType<typeof readMasterKey> {
  try {
    return readMasterKey(source);
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
}

/**
 * The master key for this database. A key file is generated only for a database that has no key
 * recorded yet (a new installation); for one that has, a missing key is reported as missing and
 * nothing is written, so that the operator can put the original file back.
 */
async function settleMasterKey(
  db: Db,
  config: Config,
  source: MasterKeySource,
  found: ReturnType<typeof readMasterKey>,
  log: Logger,
): Promise<CryptoBox> {
  let key = found?.key;
  if (!key) {
    const [recorded] = await db.q.select().from(settings).where(eq(settings.key, FINGERPRINT));
    // Another process sharing this data directory may have generated the file since it was read:
    // a process writes the file before it records the key's fingerprint, so read it once more.
    if (recorded) key = findMasterKey(source)?.key;
    if (recorded && !key) {
      throw new StartupError(
        `the master key file ${source.filePath} is missing, but the database ${databaseName(config.db.url)} was set up with a master key. ` +
          'Restore that file from a backup (mode 0600), or set ERRAND_MASTER_KEY to the key; nothing was written',
      );
    }
  }
  if (!key) {
    let loaded: ReturnType<typeof loadMasterKey>;
    try {
      loaded = loadMasterKey(source);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    if (loaded.source === 'generated') log.info('master_key.generated', { file: source.filePath });
    key = loaded.key;
  }
  const box = new CryptoBox(key);
  await checkMasterKey(db, box);
  return box;
}

/**
 * Opens the database and settles the master key. A bad key setting (wrong length, a file open to
 * others) stops start-up before the database is touched.
 */
export async function openInstallation(
  config: Config,
  log: Logger,
  metrics: Metrics = noMetrics,
): Promise<{ db: Db; box: CryptoBox }> {
  const keySource: MasterKeySource = {
    ...(config.masterKey.value ? { envValue: config.masterKey.value } : {}),
    filePath: config.masterKey.file,
  };
  const found = findMasterKey(keySource);
  const db = await openChecked(config, log, metrics);
  try {
    return { db, box: await settleMasterKey(db, config, keySource, found, log) };
  } catch (err) {
    db.close();
    throw err;
  }
}
