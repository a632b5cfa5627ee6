/** A fixed-window counter per key (for example a source address), kept in memory per process. */
export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(private readonly opts: { limit: number; windowMs: number }) {}

  /** Counts a hit; returns the seconds to wait when over the limit, or 0 when allowed. */
  hit(key: string, nowMs = Date.now()): number {
    const w = this.windows.get(key);
    if (!w || nowMs - w.start >= this.opts.windowMs) {
      if (this.windows.size > 10_000) this.sweep(nowMs);
      this.windows.set(key, { start: nowMs, count: 1 });
      return 0;
    }
    w.count += 1;
    return w.count > this.opts.limit ? Math.ceil((w.start + this.opts.windowMs - nowMs) / 1000) : 0;
  }

  /** The seconds to wait when `key` has used up its window (without counting a hit), or 0. */
  blocked(key: string, nowMs = Date.now()): number {
    const w = this.windows.get(key);
    if (!w || nowMs - w.start >= this.opts.windowMs || w.count < this.opts.limit) return 0;
    return Math.ceil((w.start + this.opts.windowMs - nowMs) / 1000);
  }

  private sweep(nowMs: number): void {
    for (const [k, w] of this.windows) if (nowMs - w.start >= this.opts.windowMs) this.windows.delete(k);
  }
}
