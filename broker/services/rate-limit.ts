export interface RateLimiterOptions {
  /** Hits allowed per key and window. */
  limit: number;
  windowMs: number;
  /** Most keys tracked at once; beyond it the oldest windows are dropped. */
  maxKeys?: number;
}

const DEFAULT_MAX_KEYS = 10_000;

/**
 * A fixed-window counter per key (for example a source address), kept in memory per process.
 * Memory is bounded: at most `maxKeys` windows are kept. Windows are stored in the order they
 * started, so expired ones are dropped from the front as new keys arrive; when every tracked key is
 * still live and the map is full, the oldest window is dropped (its key starts afresh), which keeps
 * a flood of new keys from growing the process without bound.
 */
export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  private readonly maxKeys: number;

  constructor(private readonly opts: RateLimiterOptions) {
    this.maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;
  }

  /** Counts a hit; returns the seconds to wait when over the limit, or 0 when allowed. */
  hit(key: string, nowMs = Date.now()): number {
    const w = this.windows.get(key);
    if (w && nowMs - w.start < this.opts.windowMs) {
      w.count += 1;
      return w.count > this.opts.limit ? Math.ceil((w.start + this.opts.windowMs - nowMs) / 1000) : 0;
    }
    // A new window goes to the back, keeping the map ordered by start time.
    if (w) this.windows.delete(key);
    this.evict(nowMs);
    this.windows.set(key, { start: nowMs, count: 1 });
    return 0;
  }

  /** The seconds to wait when `key` has used up its window (without counting a hit), or 0. */
  blocked(key: string, nowMs = Date.now()): number {
    const w = this.windows.get(key);
    if (!w || nowMs - w.start >= this.opts.windowMs || w.count < this.opts.limit) return 0;
    return Math.ceil((w.start + this.opts.windowMs - nowMs) / 1000);
  }

  /** How many keys are tracked. */
  get size(): number {
    return this.windows.size;
  }

  /** Drops expired windows from the front, then the oldest live ones while the map is full. */
  private evict(nowMs: number): void {
    for (const [key, w] of this.windows) {
      if (nowMs - w.start < this.opts.windowMs && this.windows.size < this.maxKeys) return;
      this.windows.delete(key);
    }
  }
}
