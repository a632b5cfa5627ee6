import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  currentKey,
  type KeySchedulePolicy,
  planRotation,
  publishedKeys,
  rotateNow,
  type ScheduledKey,
  signingKeyAt,
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

describe('signingKeyAt', () => {
  test('is the current key, or after a backward clock step the key that activates first', () => {
    const keys = [
      { kid: 'next', activatesAt: 300 },
      { kid: 'cur', activatesAt: 200 },
    ];
    expect(signingKeyAt(keys, 250)?.kid).toBe('cur');
    // The clock went back before every activation: the key that was signing keeps signing.
    expect(signingKeyAt(keys, 100)?.kid).toBe('cur');
    expect(signingKeyAt([], 100)).toBeUndefined();
  });
});

describe('planRotation', () => {
  test('creates a key activating immediately when there is none', () => {
    expect(planRotation([], T0, policy)).toEqual({ create: { activatesAt: T0 }, expire: [] });
  });

  test('after a backward clock step creates no key: one signing at once would be unknown to verifiers', () => {
    const keys = [
      { kid: 'cur', activatesAt: T0 },
      { kid: 'next', activatesAt: T0 + 30 * DAY },
    ];
    expect(planRotation(keys, T0 - 3600, policy)).toEqual({ expire: [] });
    expect(planRotation([{ kid: 'cur', activatesAt: T0 }], T0 - 3600, policy)).toEqual({ expire: [] });
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

  test('keeps a key until the recorded long-lived token it signed has expired, plus skew', () => {
    const retiredAt = T0 + 30 * DAY;
    const signedUntil = retiredAt + 20 * DAY;
    const keys = [
      { kid: 'a', activatesAt: T0, signedUntil },
      { kid: 'b', activatesAt: retiredAt },
    ];
    expect(planRotation(keys, retiredAt + policy.maxTokenTtl + policy.skew, policy).expire).toEqual([]);
    expect(planRotation(keys, signedUntil + policy.skew - 1, policy).expire).toEqual([]);
    expect(kids(publishedKeys(keys, signedUntil + policy.skew - 1, policy))).toEqual(['a', 'b']);
    expect(planRotation(keys, signedUntil + policy.skew, policy).expire).toEqual(['a']);
    // A record older than the short-token margin does not shorten it.
    const early = [{ ...keys[0]!, signedUntil: T0 + 1 }, keys[1]!];
    expect(planRotation(early, retiredAt + policy.maxTokenTtl + policy.skew - 1, policy).expire).toEqual([]);
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

  test('after a backward clock step, moves the key that follows the signing one', () => {
    const keys = [
      { kid: 'a', activatesAt: T0 },
      { kid: 'b', activatesAt: T0 + 30 * DAY },
    ];
    expect(rotateNow(keys, T0 - 3600, 900)).toEqual({ activatesAt: T0 + 1, kid: 'b' });
  });
});

type Step = { advance: number; forceRotation: boolean; longLived: number | null };

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
        // Mostly small ticks, sometimes long outages that skip whole rotation periods, and now and
        // then a backward clock step.
        advance: fc.oneof(
          { weight: 8, arbitrary: fc.integer({ min: 1, max: Math.max(1, Math.floor(p.rotationPeriod / 4)) }) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 * p.rotationPeriod + p.maxTokenTtl }) },
          { weight: 1, arbitrary: fc.integer({ min: -2 * p.rotationPeriod, max: -1 }) },
        ),
        forceRotation: fc.boolean(),
        // A long-lived token (a delegation credential) signed at this step, living this long.
        longLived: fc.option(fc.integer({ min: 1, max: 4 * p.rotationPeriod + p.maxTokenTtl }), { freq: 3 }),
      }),
      { minLength: 1, maxLength: 120 },
    ),
    allowForced: fc.boolean(),
  }),
);

describe('rotation simulation (property)', () => {
  test('always one signer, keys published ahead, every key kept while a token it signed is valid', () => {
    fc.assert(
      fc.property(scenarioArb, ({ policy: p, start, steps, allowForced }) => {
        let now = start;
        let latest = start;
        let keys: ScheduledKey[] = [];
        let nextId = 0;
        const createdAt = new Map<string, number>();
        // Computed by the test itself from observed signing, independent of the implementation:
        // the latest moment each key signed a short-lived token, and the latest long-lived `exp`.
        const signedAt = new Map<string, number>();
        const longLivedExp = new Map<string, number>();
        // Deleted keys (each checked at deletion): a later backward step cannot bring them back.
        const deleted = new Set<string>();
        const firstKid = 'k0';
        const validUntil = (kid: string) =>
          Math.max((signedAt.get(kid) ?? Number.NEGATIVE_INFINITY) + p.maxTokenTtl, longLivedExp.get(kid) ?? 0);

        // A key signs from its activation until its successor's; between two steps time runs forward.
        const recordSigning = (from: number) => {
          const sorted = [...keys].sort((a, b) => a.activatesAt - b.activatesAt);
          sorted.forEach((k, i) => {
            const until = Math.min(now, sorted[i + 1]?.activatesAt ?? now);
            if (until >= Math.max(from, k.activatesAt)) signedAt.set(k.kid, Math.max(signedAt.get(k.kid) ?? 0, until));
          });
          const signer = signingKeyAt(keys, now);
          if (signer) signedAt.set(signer.kid, Math.max(signedAt.get(signer.kid) ?? 0, now));
        };

        const runStep = (step: Step, index: number) => {
          const before = now;
          if (index > 0) now += step.advance;

          // An admin forcing a rotation with delay = publishAhead must keep every guarantee too. (Not
          // while the clock reads earlier than it did: pulling the next key before the time the current
          // one last signed shortens retention by the step; the README says so.)
          if (allowForced && step.forceRotation && index % 10 === 3 && keys.length > 0 && now >= latest) {
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

          // Record signing before planning: a long step may both retire and expire a key.
          recordSigning(Math.min(before, now));
          const plan = planRotation(keys, now, p);
          for (const kid of plan.expire) {
            // (c) a key is only deleted after every token it signed has expired.
            expect(signedAt.has(kid) || longLivedExp.has(kid)).toBe(true);
            expect(now).toBeGreaterThanOrEqual(validUntil(kid) + p.skew);
          }
          keys = keys.filter((k) => !plan.expire.includes(k.kid));
          for (const kid of plan.expire) deleted.add(kid);
          if (plan.create) {
            const kid = `k${nextId++}`;
            keys.push({ kid, activatesAt: plan.create.activatesAt });
            createdAt.set(kid, now);
            // (b) a new key (other than the very first) activates at least publishAhead after it appears.
            if (kid !== firstKid) expect(plan.create.activatesAt - now).toBeGreaterThanOrEqual(p.publishAhead);
          }

          // (a) exactly one key signs, even after a backward step; no other key shares its activation time.
          const current = signingKeyAt(keys, now);
          expect(current).toBeDefined();
          expect(keys.filter((k) => k.activatesAt === current?.activatesAt)).toHaveLength(1);
          recordSigning(now);
          if (current && step.longLived !== null) {
            const exp = now + step.longLived;
            longLivedExp.set(current.kid, Math.max(longLivedExp.get(current.kid) ?? 0, exp));
            keys = keys.map((k) =>
              k.kid === current.kid ? { ...k, signedUntil: Math.max(k.signedUntil ?? 0, exp) } : k,
            );
          }

          // (d) at most one key waits in the wings (after a backward step, counted from the latest time seen).
          latest = Math.max(latest, now);
          expect(keys.filter((k) => k.activatesAt > latest).length).toBeLessThanOrEqual(1);

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
          // (c) a key is still present and published while a token it signed may be valid (+ skew).
          for (const kid of new Set([...signedAt.keys(), ...longLivedExp.keys()])) {
            if (!deleted.has(kid) && now < validUntil(kid) + p.skew) {
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
