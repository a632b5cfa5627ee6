import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  currentKey,
  type KeySchedulePolicy,
  planRotation,
  publishedKeys,
  rotateNow,
  type ScheduledKey,
} from './key-schedule.js';

const DAY = 86_400;
const policy: KeySchedulePolicy = { rotationPeriod: 30 * DAY, publishAhead: DAY, maxTokenTtl: 3600, skew: 60 };
const T0 = 1_700_000_000;

function kids(keys: readonly ScheduledKey[]): string[] {
  return keys.map((k) => k.kid).sort();
}

describe('currentKey', () => {
  const keys = [
    { kid: 'b', activatesAt: 200 },
    { kid: 'a', activatesAt: 100 },
    { kid: 'c', activatesAt: 300 },
  ];
  test('picks the latest activated key, regardless of input order', () => {
    expect(currentKey(keys, 99)).toBeUndefined();
    expect(currentKey(keys, 100)?.kid).toBe('a');
    expect(currentKey(keys, 250)?.kid).toBe('b');
    expect(currentKey(keys, 300)?.kid).toBe('c');
    expect(currentKey([], 1000)).toBeUndefined();
  });
});

describe('planRotation', () => {
  test('creates a key activating immediately when none is active', () => {
    expect(planRotation([], T0, policy)).toEqual({ create: { activatesAt: T0 }, expire: [] });
    expect(planRotation([{ kid: 'future', activatesAt: T0 + 10 }], T0, policy).create).toEqual({ activatesAt: T0 });
  });

  test('does nothing before the publish-ahead window', () => {
    const keys = [{ kid: 'a', activatesAt: T0 }];
    expect(planRotation(keys, T0 + 29 * DAY - 1, policy)).toEqual({ expire: [] });
  });

  test('creates the successor publishAhead before it is due', () => {
    const keys = [{ kid: 'a', activatesAt: T0 }];
    expect(planRotation(keys, T0 + 29 * DAY, policy).create).toEqual({ activatesAt: T0 + 30 * DAY });
  });

  test('after downtime, still publishes the successor a full publishAhead before use', () => {
    const keys = [{ kid: 'a', activatesAt: T0 }];
    const now = T0 + 45 * DAY;
    expect(planRotation(keys, now, policy).create).toEqual({ activatesAt: now + DAY });
  });

  test('does not create a second future key', () => {
    const keys = [
      { kid: 'a', activatesAt: T0 },
      { kid: 'b', activatesAt: T0 + 30 * DAY },
    ];
    expect(planRotation(keys, T0 + 29 * DAY + 5, policy).create).toBeUndefined();
  });

  test('expires a retired key only after maxTokenTtl + skew', () => {
    const retiredAt = T0 + 30 * DAY;
    const keys = [
      { kid: 'a', activatesAt: T0 },
      { kid: 'b', activatesAt: retiredAt },
    ];
    const limit = retiredAt + policy.maxTokenTtl + policy.skew;
    expect(planRotation(keys, limit - 1, policy).expire).toEqual([]);
    expect(planRotation(keys, limit, policy).expire).toEqual(['a']);
    expect(kids(publishedKeys(keys, limit - 1, policy))).toEqual(['a', 'b']);
    expect(kids(publishedKeys(keys, limit, policy))).toEqual(['b']);
  });

  test('rejects a nonsensical policy', () => {
    expect(() => planRotation([], T0, { ...policy, rotationPeriod: 0 })).toThrow(RangeError);
    expect(() => planRotation([], T0, { ...policy, maxTokenTtl: -1 })).toThrow(RangeError);
    expect(() => publishedKeys([], T0, { ...policy, skew: Number.NaN })).toThrow(RangeError);
  });
});

describe('publishedKeys', () => {
  test('lists future, current and recently retired keys', () => {
    const keys = [
      { kid: 'old', activatesAt: T0 - 60 * DAY },
      { kid: 'prev', activatesAt: T0 - 30 * DAY },
      { kid: 'cur', activatesAt: T0 - 600 },
      { kid: 'next', activatesAt: T0 + DAY },
    ];
    expect(kids(publishedKeys(keys, T0, policy))).toEqual(['cur', 'next', 'prev']);
    expect(kids(publishedKeys(keys, T0 + 3600, policy))).toEqual(['cur', 'next']);
  });
});

describe('rotateNow', () => {
  test('creates a new key at now + delay when none is pending', () => {
    expect(rotateNow([{ kid: 'a', activatesAt: T0 }], T0 + 100, 900)).toEqual({ activatesAt: T0 + 1000 });
  });

  test('pulls the pending key forward', () => {
    const keys = [
      { kid: 'a', activatesAt: T0 },
      { kid: 'b', activatesAt: T0 + 30 * DAY },
    ];
    expect(rotateNow(keys, T0 + 100, 900)).toEqual({ activatesAt: T0 + 1000, kid: 'b' });
  });

  test('never activates earlier than now + delay', () => {
    const keys = [
      { kid: 'a', activatesAt: T0 },
      { kid: 'b', activatesAt: T0 + 200 },
    ];
    expect(rotateNow(keys, T0 + 100, 900).activatesAt).toBe(T0 + 1000);
  });

  test('stays strictly after the current key with zero delay', () => {
    expect(rotateNow([{ kid: 'a', activatesAt: T0 }], T0, 0)).toEqual({ activatesAt: T0 + 1 });
    expect(() => rotateNow([], T0, -1)).toThrow(RangeError);
  });
});

type Step = { advance: number; forceRotation: boolean };

const policyArb = fc
  .record({
    rotationPeriod: fc.integer({ min: 60, max: 100_000 }),
    publishAheadRatio: fc.double({ min: 0, max: 1.5, noNaN: true }),
    maxTokenTtl: fc.integer({ min: 0, max: 50_000 }),
    skew: fc.integer({ min: 0, max: 600 }),
  })
  .map(
    ({ publishAheadRatio, ...rest }): KeySchedulePolicy => ({
      ...rest,
      publishAhead: Math.floor(rest.rotationPeriod * publishAheadRatio),
    }),
  );

const scenarioArb = policyArb.chain((p) =>
  fc.record({
    policy: fc.constant(p),
    start: fc.integer({ min: 0, max: 2_000_000_000 }),
    steps: fc.array(
      fc.record({
        // Mostly small ticks, sometimes long outages that skip whole rotation periods.
        advance: fc.oneof(
          { weight: 8, arbitrary: fc.integer({ min: 1, max: Math.max(1, Math.floor(p.rotationPeriod / 4)) }) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 * p.rotationPeriod + p.maxTokenTtl }) },
        ),
        forceRotation: fc.boolean(),
      }),
      { minLength: 1, maxLength: 120 },
    ),
    allowForced: fc.boolean(),
  }),
);

describe('rotation simulation (property)', () => {
  test('always one signer, keys published ahead, retired keys kept for the token lifetime', () => {
    fc.assert(
      fc.property(scenarioArb, ({ policy: p, start, steps, allowForced }) => {
        let now = start;
        let keys: ScheduledKey[] = [];
        let nextId = 0;
        const createdAt = new Map<string, number>();
        // Computed by the test itself from observed successions, independent of the implementation.
        const retiredAt = new Map<string, number>();
        const firstKid = 'k0';

        const recordRetirements = () => {
          const sorted = [...keys].sort((a, b) => a.activatesAt - b.activatesAt);
          sorted.forEach((k, i) => {
            const successor = sorted[i + 1];
            if (successor && successor.activatesAt <= now && !retiredAt.has(k.kid)) {
              retiredAt.set(k.kid, successor.activatesAt);
            }
          });
        };

        const runStep = (step: Step, index: number) => {
          if (index > 0) now += step.advance;

          // An admin forcing a rotation with delay = publishAhead must keep every guarantee too.
          if (allowForced && step.forceRotation && index % 10 === 3 && keys.length > 0) {
            const forced = rotateNow(keys, now, p.publishAhead);
            expect(forced.activatesAt).toBeGreaterThanOrEqual(now + p.publishAhead);
            if (forced.kid !== undefined) {
              keys = keys.map((k) => (k.kid === forced.kid ? { ...k, activatesAt: forced.activatesAt } : k));
            } else {
              const kid = `k${nextId++}`;
              keys.push({ kid, activatesAt: forced.activatesAt });
              createdAt.set(kid, now);
            }
          }

          // Record successions before planning: a long step may both retire and expire a key.
          recordRetirements();
          const plan = planRotation(keys, now, p);
          for (const kid of plan.expire) {
            const retired = retiredAt.get(kid);
            // (c) a key is only deleted after every token it signed has expired.
            expect(retired).toBeDefined();
            expect(now).toBeGreaterThanOrEqual((retired ?? 0) + p.maxTokenTtl + p.skew);
          }
          keys = keys.filter((k) => !plan.expire.includes(k.kid));
          if (plan.create) {
            const kid = `k${nextId++}`;
            keys.push({ kid, activatesAt: plan.create.activatesAt });
            createdAt.set(kid, now);
            // (b) a new key (other than the very first) activates at least publishAhead after it appears.
            if (kid !== firstKid) expect(plan.create.activatesAt - now).toBeGreaterThanOrEqual(p.publishAhead);
          }

          // (a) exactly one key signs: one current key, and no other key shares its activation time.
          const current = currentKey(keys, now);
          expect(current).toBeDefined();
          expect(keys.filter((k) => k.activatesAt === current?.activatesAt)).toHaveLength(1);

          recordRetirements();

          // (d) at most one key waits in the wings.
          expect(keys.filter((k) => k.activatesAt > now).length).toBeLessThanOrEqual(1);

          const published = new Set(publishedKeys(keys, now, p).map((k) => k.kid));
          for (const k of keys) {
            // (b) every pending key is already in the JWKS, and was since creation.
            if (k.activatesAt > now) {
              expect(published.has(k.kid)).toBe(true);
              if (k.kid !== firstKid)
                expect(k.activatesAt - (createdAt.get(k.kid) ?? now)).toBeGreaterThanOrEqual(p.publishAhead);
            }
            if (current && k.kid === current.kid) expect(published.has(k.kid)).toBe(true);
          }
          // (c) a retired key is still present and published until maxTokenTtl (+ skew) has passed.
          for (const [kid, retired] of retiredAt) {
            if (now < retired + p.maxTokenTtl + p.skew) {
              expect(keys.some((k) => k.kid === kid)).toBe(true);
              expect(published.has(kid)).toBe(true);
            }
          }
        };

        steps.forEach(runStep);
      }),
      { numRuns: 300 },
    );
  });
});
