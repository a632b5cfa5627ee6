import { describe, expect, test } from 'vitest';
import { RateLimiter } from './rate-limit.js';

describe('RateLimiter', () => {
  test('allows `limit` hits per key and window, then says how long to wait', () => {
    const limiter = new RateLimiter({ limit: 2, windowMs: 60_000 });
    expect(limiter.hit('a', 0)).toBe(0);
    expect(limiter.hit('a', 1000)).toBe(0);
    expect(limiter.hit('a', 2000)).toBe(58);
    expect(limiter.hit('b', 2000)).toBe(0);
    expect(limiter.hit('a', 60_000)).toBe(0);
  });

  test('100k distinct keys within one window never hold more than maxKeys', () => {
    const limiter = new RateLimiter({ limit: 5, windowMs: 60_000, maxKeys: 1000 });
    let largest = 0;
    for (let i = 0; i < 100_000; i++) {
      limiter.hit(`203.0.113.${i}`, 1_000 + (i >> 10));
      largest = Math.max(largest, limiter.size);
    }
    expect(largest).toBe(1000);
  });

  test('the default bound applies when none is given', () => {
    const limiter = new RateLimiter({ limit: 5, windowMs: 60_000 });
    for (let i = 0; i < 100_000; i++) limiter.hit(`k${i}`, 0);
    expect(limiter.size).toBe(10_000);
  });

  test('expired windows are dropped first, so live counts survive a flood of old keys', () => {
    const limiter = new RateLimiter({ limit: 1, windowMs: 1000, maxKeys: 3 });
    limiter.hit('old-1', 0);
    limiter.hit('old-2', 0);
    limiter.hit('live', 1500);
    expect(limiter.hit('live', 1600)).toBe(1);
    limiter.hit('new-1', 1700);
    limiter.hit('new-2', 1800);
    expect(limiter.size).toBe(3);
    // "live" was kept: the expired windows made room.
    expect(limiter.hit('live', 1900)).toBe(1);
  });

  test('a key whose window restarts moves to the back and is not evicted before older ones', () => {
    const limiter = new RateLimiter({ limit: 1, windowMs: 1000, maxKeys: 2 });
    limiter.hit('a', 0);
    limiter.hit('b', 500);
    limiter.hit('a', 1200);
    expect(limiter.hit('a', 1300)).toBe(1);
    limiter.hit('c', 1400);
    expect(limiter.size).toBe(2);
    expect(limiter.hit('a', 1500)).toBe(1);
  });
});
