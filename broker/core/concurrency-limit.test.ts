import { describe, expect, test } from 'vitest';
import { ConcurrencyLimit } from './concurrency-limit.js';

describe('ConcurrencyLimit', () => {
  test('refuses beyond the per-key cap and the total cap; a release frees exactly one slot, once', () => {
    const limit = new ConcurrencyLimit({ perKey: 2, total: 3 });
    const a1 = limit.acquire('a');
    const a2 = limit.acquire('a');
    expect(a1 && a2).toBeTruthy();
    expect(limit.acquire('a')).toBeNull();
    const b1 = limit.acquire('b');
    expect(b1).not.toBeNull();
    expect(limit.acquire('c')).toBeNull();
    expect(limit.inUse()).toBe(3);
    a1!();
    a1!();
    expect(limit.inUse('a')).toBe(1);
    expect(limit.inUse()).toBe(2);
    expect(limit.acquire('c')).not.toBeNull();
    expect(limit.acquire('a')).toBeNull();
    b1!();
    a2!();
    expect(limit.inUse('a')).toBe(0);
    expect(limit.acquire('a')).not.toBeNull();
  });

  test('caps below 1 are a programming error', () => {
    expect(() => new ConcurrencyLimit({ perKey: 0, total: 1 })).toThrow();
  });
});
