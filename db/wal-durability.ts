/**
 * Durable commits on the embedded engine without waiting for the disk on the event loop.
 *
 * With `synchronous = FULL` SQLite fsyncs the WAL inside `COMMIT`, and every so many pages runs a
 * checkpoint there (copying pages into the database file, then two more fsyncs): the broker's only
 * thread stood still for all of it (about 2 ms per group commit on the benchmark machine, a tenth
 * of its time under load). Instead the writing connection runs with `synchronous = NORMAL` (in WAL
 * mode: no sync at commit, the WAL is synced before each checkpoint and when it starts over) and
 * without automatic checkpoints, and:
 *
 * - after each `COMMIT` the WAL file is fsynced on libuv's thread pool, and the group's callers are
 *   answered only once that returns: what `FULL` guaranteed, an answer only after its writes are on
 *   disk. The log is written in order, so a later commit's sync covers every earlier one;
 * - a worker thread with its own connection runs `PRAGMA wal_checkpoint(PASSIVE)` while writes
 *   come in (a passive checkpoint never takes the write lock, so it does not stop the writer).
 *
 * Linux only (`fsync` on a descriptor of the file flushes the file itself, whoever wrote it);
 * elsewhere, or when the worker cannot start, the connection keeps `FULL` and automatic checkpoints.
 */
import { closeSync, fsync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often the worker checkpoints while writes come in. */
const CHECKPOINT_EVERY_MS = 100;

// Plain JavaScript, so that the worker runs the same under tsx, vitest and the compiled build.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.engine);
const db = new Database(workerData.path, { timeout: 0 });
let dirty = false;
let failures = 0;
const timer = setInterval(() => {
  if (!dirty) return;
  dirty = false;
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    failures = 0;
  } catch (err) {
    // Busy (another process checkpoints) is retried at the next tick; anything else repeatedly is reported.
    dirty = true;
    if (++failures === 50) parentPort.postMessage({ failed: String(err && err.message) });
  }
}, workerData.every);
parentPort.on('message', (m) => {
  if (m === 'dirty') dirty = true;
  else if (m === 'stop') {
    clearInterval(timer);
    try { db.close(); } catch {}
    parentPort.close();
  }
});
`;

export interface WalDurability {
  /** Resolves once everything committed so far is on disk. */
  sync(): Promise<void>;
  /** Tells the checkpointer that the WAL grew. */
  committed(): void;
  /** Stops the checkpointer and closes the WAL's descriptor. */
  close(): Promise<void>;
}

export interface WalDurabilityOptions {
  /** Flushes a descriptor (default `fs.fsync`); a seam for tests that watch the order of things. */
  fsync?: (fd: number) => Promise<void>;
  /** Told when the checkpointer stops working, so the connection goes back to automatic checkpoints. */
  onCheckpointerLost: (reason: string) => void;
}

/** Null where the platform gives no such guarantee: the caller keeps `synchronous = FULL`. */
export function walDurability(dbPath: string, opts: WalDurabilityOptions): WalDurability | null {
  if (process.platform !== 'linux') return null;
  const flush = opts.fsync ?? ((fd: number) => new Promise<void>((res, rej) => fsync(fd, (e) => (e ? rej(e) : res()))));
  let fd: number | null = null;
  let worker: Worker | null;
  try {
    worker = new Worker(WORKER, {
      eval: true,
      workerData: {
        engine: createRequire(import.meta.url).resolve('libsql'),
        path: dbPath,
        every: CHECKPOINT_EVERY_MS,
      },
    });
  } catch {
    return null;
  }
  let stopping = false;
  let told = false;
  const lost = (reason: string) => {
    if (stopping || worker === null) return;
    worker = null;
    opts.onCheckpointerLost(reason);
  };
  worker.unref();
  worker.on('error', (err) => lost(err.message));
  worker.on('exit', (code) => lost(`the checkpoint thread exited (${code})`));
  worker.on('message', (m: { failed?: string }) => {
    if (m.failed) {
      const w = worker;
      lost(m.failed);
      void w?.terminate();
    }
  });
  return {
    sync() {
      // The WAL exists once the first transaction ran in WAL mode, and stays while this process
      // holds its connections (SQLite removes it only when the last connection closes).
      fd ??= openSync(`${dbPath}-wal`, 'r');
      return flush(fd);
    },
    committed() {
      if (worker && !told) {
        worker.postMessage('dirty');
        told = true;
        // One message per tick is enough: the worker checks at most every CHECKPOINT_EVERY_MS.
        setTimeout(() => {
          told = false;
        }, CHECKPOINT_EVERY_MS).unref();
      }
    },
    async close() {
      stopping = true;
      const w = worker;
      worker = null;
      if (w) {
        // Held (ref'd) until it has stopped, so that the process waits for its connection to close.
        w.ref();
        const exited = new Promise<void>((res) => w.once('exit', () => res()));
        w.postMessage('stop');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise<void>((res) => (timer = setTimeout(res, 2000)))]);
        clearTimeout(timer);
        await w.terminate();
      }
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}
