/**
 * Notices when the wall clock steps (NTP, an operator, a resumed VM) by comparing how far it moved
 * with how much time a monotonic clock says passed. Maintenance asks before each pass; a wall clock
 * that ran ahead would otherwise end live tasks, delete signing keys and prune replay caches early,
 * for every process sharing the database (README "Clock skew and clock jumps").
 */

export interface ClockWatchOptions {
  /** Tolerated disagreement in seconds (ERRAND_CLOCK_SKEW); at least 1, the wall clock's resolution. */
  skew: number;
  /** Longest time in seconds a forward jump holds back upkeep before it is taken as the right time. */
  hold: number;
}

/** One comparison of the two clocks. Times are in seconds. */
export interface ClockCheck {
  /** How far the wall clock moved beyond the time that passed; negative when it stepped back. */
  drift: number;
  /** Wall-clock seconds since the last agreeing check. */
  wallElapsed: number;
  /** Monotonic seconds since the last agreeing check. */
  monotonicElapsed: number;
  /** How long the clocks have disagreed, 0 when they agree. */
  disagreeingFor: number;
  /** `jumped`: first check that disagrees; `returned`: agrees again; `accepted`: the hold ran out. */
  event: 'jumped' | 'returned' | 'accepted' | null;
  /** Whether this pass must skip time-based deletions and deadline ends (the wall clock is ahead). */
  hold: boolean;
}

/** Compares successive wall-clock (epoch seconds) and monotonic (milliseconds) readings. */
export class ClockWatch {
  private base: { wall: number; mono: number };
  /** Monotonic seconds at which the disagreement began, null while the clocks agree. */
  private since: number | null = null;

  constructor(
    private readonly opts: ClockWatchOptions,
    wall: number,
    monotonicMs: number,
  ) {
    if (!(opts.skew >= 0) || !(opts.hold >= 0)) throw new RangeError('skew and hold must be non-negative numbers');
    this.base = { wall, mono: monotonicMs / 1000 };
  }

  /** Compares a new reading with the last one the clocks agreed on. */
  check(wall: number, monotonicMs: number): ClockCheck {
    const mono = monotonicMs / 1000;
    const wallElapsed = wall - this.base.wall;
    const monotonicElapsed = mono - this.base.mono;
    const drift = wallElapsed - monotonicElapsed;
    const figures = { drift, wallElapsed, monotonicElapsed };
    // The wall clock reads whole seconds, so the two disagree by up to a second with no step at all.
    if (Math.abs(drift) <= Math.max(this.opts.skew, 1)) {
      const event = this.since === null ? null : 'returned';
      this.since = null;
      // Re-anchored on every agreeing check, so a slewing clock never adds up to a jump.
      this.base = { wall, mono };
      return { ...figures, disagreeingFor: 0, event, hold: false };
    }
    const first = this.since === null;
    if (this.since === null) this.since = mono;
    const disagreeingFor = mono - this.since;
    // Past the hold the wall clock is taken as right (a resumed VM, a corrected start-up clock).
    const accept = disagreeingFor >= this.opts.hold;
    if (accept) {
      this.since = null;
      this.base = { wall, mono };
    }
    return {
      ...figures,
      disagreeingFor,
      event: first ? 'jumped' : accept ? 'accepted' : null,
      // A clock behind only makes upkeep late, never early: nothing to hold back.
      hold: !accept && drift > 0,
    };
  }
}
