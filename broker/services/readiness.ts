import { performance } from 'node:perf_hooks';
import type { Db } from '../../db/open.js';
import { settings } from '../../db/schema/index.js';
import type { Clock } from '../core/ports.js';
import type { Logger } from '../log.js';

export type Readiness =
  | { ready: true }
  | {
      ready: false;
      /** `storage`: a write could not be committed in time; `signing_key`: no key can sign now. */
      reason: 'storage' | 'signing_key';
    };

export interface ReadinessDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  hasSigningKey(): boolean;
}

/** How long an answer is reused, so that frequent probes do not queue a write each. */
const CACHE_MS = 2000;
/** A heartbeat not committed within this time means writes are stuck (a lock, a slow disk). */
const WRITE_TIMEOUT_MS = 2000;
const HEARTBEAT_KEY = 'readiness_heartbeat';

/**
 * Readiness (`/readyz`): the broker can sign, and can commit a write. The write is a one-row upsert
 * sent through the same queue and group commit as every request's writes, so a full disk, a
 * read-only file or another process holding the lock all show, as they do to callers. Answers are
 * reused for a couple of seconds, and while a heartbeat is still waiting no second one is queued.
 */
export class ReadinessProbe {
  #last: { at: number; result: Readiness } | null = null;
  #probing: Promise<Readiness> | null = null;
  /** The heartbeat still waiting in the write queue, if any. */
  #pending: Promise<void> | null = null;

  constructor(private readonly deps: ReadinessDeps) {}

  /** Whether the broker is ready, from cache when the last answer is recent. */
  check(): Promise<Readiness> {
    // A monotonic clock: a step of the wall clock must neither freeze nor flush the cache.
    const now = performance.now();
    if (this.#last && now - this.#last.at < CACHE_MS) return Promise.resolve(this.#last.result);
    this.#probing ??= this.#probe().finally(() => {
      this.#probing = null;
    });
    return this.#probing;
  }

  async #probe(): Promise<Readiness> {
    let result: Readiness = { ready: true };
    let err: unknown;
    if (!this.deps.hasSigningKey()) {
      result = { ready: false, reason: 'signing_key' };
    } else {
      err = await this.#heartbeat();
      if (err !== undefined) result = { ready: false, reason: 'storage' };
    }
    const before = this.#last?.result;
    this.#last = { at: performance.now(), result };
    if (!result.ready && before?.ready !== false) this.deps.log.warn('readiness.lost', { reason: result.reason, err });
    if (result.ready && before?.ready === false) this.deps.log.info('readiness.restored', {});
    return result;
  }

  /** Commits the heartbeat row; resolves to the failure, or undefined once it is durable. */
  async #heartbeat(): Promise<unknown> {
    if (this.#pending) return new Error('the previous readiness heartbeat is still waiting to commit');
    const value = String(this.deps.clock.now());
    const write = this.deps.db.write(async (tx) => {
      await tx
        .insert(settings)
        .values({ key: HEARTBEAT_KEY, value })
        .onConflictDoUpdate({ target: settings.key, set: { value } });
    });
    const pending = write.then(
      () => undefined,
      (e: unknown) => e ?? new Error('the readiness heartbeat failed'),
    );
    this.#pending = pending.then(() => {
      this.#pending = null;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Error>((resolve) => {
      timer = setTimeout(
        () => resolve(new Error(`the readiness heartbeat did not commit within ${WRITE_TIMEOUT_MS} ms`)),
        WRITE_TIMEOUT_MS,
      );
      timer.unref();
    });
    try {
      return await Promise.race([pending, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
