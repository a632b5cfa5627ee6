/**
 * Caps how many things run at once, per key (a client, a host) and in total. Pure bookkeeping: no
 * waiting and no queue, since whatever is refused should fail fast rather than pile up.
 *
 * ```ts
 * const limit = new ConcurrencyLimit({ perKey: 4, total: 32 });
 * const release = limit.acquire(clientId);
 * if (!release) throw tooBusy();
 * try { await work(); } finally { release(); }
 * ```
 */
export interface ConcurrencyLimitOptions {
  /** Most holders one key may have at once. */
  perKey: number;
  /** Most holders of all keys together. */
  total: number;
}

export class ConcurrencyLimit {
  private readonly held = new Map<string, number>();
  private count = 0;

  constructor(private readonly opts: ConcurrencyLimitOptions) {
    if (!(opts.perKey >= 1 && opts.total >= 1)) throw new Error('ConcurrencyLimit needs caps of at least 1');
  }

  /** Takes a slot for `key`: a release function (calling it again is harmless), or null when a cap is reached. */
  acquire(key: string): (() => void) | null {
    const mine = this.held.get(key) ?? 0;
    if (mine >= this.opts.perKey || this.count >= this.opts.total) return null;
    this.held.set(key, mine + 1);
    this.count += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.count -= 1;
      const left = (this.held.get(key) ?? 1) - 1;
      if (left === 0) this.held.delete(key);
      else this.held.set(key, left);
    };
  }

  /** Slots held now, for one key or in total. */
  inUse(key?: string): number {
    return key === undefined ? this.count : (this.held.get(key) ?? 0);
  }
}
