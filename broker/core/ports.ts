/** What the core needs from the outside world, as interfaces. */

/** Time in epoch seconds; tests pass a fixed or stepped clock. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Math.floor(Date.now() / 1000) };
