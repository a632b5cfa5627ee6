import type { Logger } from '../log.js';
import type { RevocationEvent } from './tasks.js';

/**
 * Where new revocations come from: the log every revoking transaction writes to
 * (db/stores/revocation-log-store.ts). On the embedded database the feed polls it; a server
 * database can also wake the feed itself (PostgreSQL LISTEN/NOTIFY calling `wake`).
 */
export interface RevocationSource {
  /** The highest sequence number committed so far. */
  latest(): Promise<number>;
  /** Revocations committed after `seq`, in sequence order, at most `limit`. */
  after(seq: number, limit: number): Promise<(RevocationEvent & { seq: number })[]>;
}

export interface RevocationFeedOptions {
  /** Milliseconds between reads of the log while someone listens. */
  pollMs: number;
  /** Rows read at most per query; a longer backlog is read in further queries straight away. */
  batch?: number;
}

type Listener = (events: RevocationEvent[]) => void;

/**
 * Hands every revocation committed on the database, by this process or any other, to this
 * process's push subscribers exactly once: one path for all, read in sequence order from where the
 * feed started. Nothing runs while nobody listens; the first subscriber starts the tail from the
 * newest row, so a stream receives what is committed after it opened.
 */
export class RevocationFeed {
  private readonly listeners = new Set<Listener>();
  private last = 0;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private started = false;
  private stopped = false;
  /** Queries run against the log (for tests and the cost figure in README "Revocation push"). */
  reads = 0;

  constructor(
    private readonly source: RevocationSource,
    private readonly log: Logger,
    private readonly opts: RevocationFeedOptions,
  ) {}

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1 && !this.stopped) {
      this.started = false;
      this.tick();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.idle();
    };
  }

  /** A revocation committed here: read the log now instead of at the next poll. */
  wake(): void {
    if (this.listeners.size === 0 || this.stopped) return;
    this.tick();
  }

  /** Stops the tail for good (shutdown); resolves once a read in flight has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.idle();
    await this.running;
  }

  private idle(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Runs one read now, or once more right after the one in flight (never two at once). */
  private tick(): void {
    this.idle();
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.read()
      .catch((err: unknown) => this.log.warn('revocation_feed.read_failed', { error: String(err) }))
      .finally(() => {
        this.running = null;
        if (this.stopped || this.listeners.size === 0) return;
        if (this.again) {
          this.again = false;
          this.tick();
        } else {
          this.timer = setTimeout(() => this.tick(), this.opts.pollMs);
          this.timer.unref();
        }
      });
  }

  private async read(): Promise<void> {
    if (!this.started) {
      this.reads += 1;
      this.last = await this.source.latest();
      this.started = true;
      return;
    }
    const batch = this.opts.batch ?? 500;
    for (;;) {
      this.reads += 1;
      const rows = await this.source.after(this.last, batch);
      if (rows.length === 0) return;
      this.last = rows[rows.length - 1]!.seq;
      const events = rows.map(({ seq: _, ...e }) => e);
      for (const listener of this.listeners) {
        try {
          listener(events);
        } catch (err) {
          this.log.warn('revocation_feed.listener_failed', { error: String(err) });
        }
      }
      if (rows.length < batch || this.stopped) return;
    }
  }
}
