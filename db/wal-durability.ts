/**
 * Durable commits on the embedded engine without waiting for the disk on the event loop.
 *
 * With `synchronous = FULL` SQLite fsyncs the WAL inside `COMMIT`: the broker's only thread stood
 * still for it (with automatic checkpoints, about 2.2 ms per group commit under load on the
 * benchmark machine, a tenth of its time). Instead the writing connection runs with
 * `synchronous = NORMAL` (in WAL mode: no sync at commit; the WAL is still synced before each
 * checkpoint and when it starts over), and after each `COMMIT` the WAL file is fsynced on libuv's
 * thread pool. The group's callers are answered only once that returns: what `FULL` guaranteed, an
 * answer only after its writes are on disk. The log is written in order, so a later commit's sync
 * covers every earlier one.
 *
 * Linux only (there `fsync` on any descriptor of the file flushes the file itself, whoever wrote
 * it); elsewhere the connection keeps `FULL`.
 */
import { closeSync, fsync, openSync } from 'node:fs';

export interface WalDurability {
  /** Resolves once everything committed so far is on disk. */
  sync(): Promise<void>;
  /** Closes the WAL's descriptor. */
  close(): void;
}

/** Flushes a descriptor (default `fs.fsync`); a seam for tests that watch the order of things. */
export type Flush = (fd: number) => Promise<void>;

const fsyncOnPool: Flush = (fd) => new Promise<void>((res, rej) => fsync(fd, (err) => (err ? rej(err) : res())));

/** Null where the platform gives no such guarantee: the caller keeps `synchronous = FULL`. */
export function walDurability(dbPath: string, flush: Flush = fsyncOnPool): WalDurability | null {
  if (process.platform !== 'linux') return null;
  let fd: number | null = null;
  return {
    sync() {
      // The WAL exists once the first transaction ran in WAL mode, and stays while this process
      // holds its connections (SQLite removes it only when the last connection closes).
      fd ??= openSync(`${dbPath}-wal`, 'r');
      return flush(fd);
    },
    close() {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}
