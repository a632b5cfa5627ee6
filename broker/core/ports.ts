/** What the core needs from the outside world, as interfaces. */

/** Time in epoch seconds; tests pass a fixed or stepped clock. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Math.floor(Date.now() / 1000) };

/**
 * Elapsed time in milliseconds from an arbitrary origin, never stepped: NTP corrections, an operator
 * setting the date and a resumed VM move the wall clock, not this one. Maintenance compares the two.
 */
export interface MonotonicClock {
  nowMs(): number;
}

export const systemMonotonic: MonotonicClock = { nowMs: () => performance.now() };
