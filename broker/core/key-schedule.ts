/**
 * Signing-key rotation as pure arithmetic over activation times (epoch seconds). A key signs from its
 * `activatesAt` until the next key's `activatesAt`. Verifiers cache the JWKS, so a key must be
 * published `publishAhead` before it signs anything, and must stay published after it stops signing
 * until everything it signed has expired, plus clock `skew`. RFC 7517 §5 lets the JWKS carry several
 * keys at once, which is what makes this overlap possible.
 *
 * "Everything it signed" has two parts. Short-lived tokens (access and task tokens, ID tokens, status
 * list tokens) are signed by the thousand and never outlive `maxTokenTtl`, so a key that stopped
 * signing at its successor's activation is kept `maxTokenTtl` longer, with no bookkeeping per token.
 * A token meant to live longer (a delegation credential: days or weeks) is recorded on its key when
 * it is signed (`signedUntil`, the latest such `exp`), and the key is kept until then. The record is
 * in the database, so it holds for every process and across restarts with other settings.
 */

export interface ScheduledKey {
  kid: string;
  activatesAt: number;
  /** Latest `exp` of a token signed under this key that lives longer than `maxTokenTtl`, if any. */
  signedUntil?: number | null;
}

export interface KeySchedulePolicy {
  /** How long each key signs before its successor takes over. */
  rotationPeriod: number;
  /** How long a key sits in the JWKS before it signs, so caches pick it up first. */
  publishAhead: number;
  /** Longest lifetime of a token signed without a record on its key (see `signedUntil`). */
  maxTokenTtl: number;
  /** Tolerated clock difference between the broker and resource servers. */
  skew: number;
}

export interface RotationPlan {
  create?: { activatesAt: number };
  expire: string[];
}

/** Returns the latest key already active at `now`, or undefined if none is. */
export function currentKey(keys: readonly ScheduledKey[], now: number): ScheduledKey | undefined {
  let current: ScheduledKey | undefined;
  for (const key of sortKeys(keys)) {
    if (key.activatesAt <= now) current = key;
  }
  return current;
}

/**
 * Returns the key to sign with at `now`: the current key or, when the clock reads earlier than every
 * activation (it was stepped back), the key that activates first. That is the key that was signing
 * before the step: it is published and verifiers already hold it, where a later key may still be
 * unknown to their caches. Undefined only when there is no key at all.
 */
export function signingKeyAt(keys: readonly ScheduledKey[], now: number): ScheduledKey | undefined {
  return currentKey(keys, now) ?? sortKeys(keys)[0];
}

/** Decides whether a key must be created now and which retired keys can be deleted. */
export function planRotation(keys: readonly ScheduledKey[], now: number, policy: KeySchedulePolicy): RotationPlan {
  assertPolicy(policy);
  const expired = expiredKids(keys, now, policy);
  const expire = keys.filter((key) => expired.has(key.kid)).map((key) => key.kid);
  const current = signingKeyAt(keys, now);
  // Only the very first key signs at once. After a backward clock step the existing keys stay in
  // charge: a key created now would sign before any verifier had it in its cached JWKS.
  if (!current) return { create: { activatesAt: now }, expire };

  const hasNext = keys.some((key) => key.activatesAt > current.activatesAt);
  const dueAt = current.activatesAt + policy.rotationPeriod - policy.publishAhead;
  if (!hasNext && now >= dueAt) {
    // A late run (broker was down) still publishes the successor a full publishAhead before use.
    const activatesAt = Math.max(current.activatesAt + policy.rotationPeriod, now + policy.publishAhead);
    return { create: { activatesAt }, expire };
  }
  return { expire };
}

/** Lists the keys the JWKS must serve at `now`: future, current and not-yet-expired retired keys. */
export function publishedKeys(keys: readonly ScheduledKey[], now: number, policy: KeySchedulePolicy): ScheduledKey[] {
  assertPolicy(policy);
  const expired = expiredKids(keys, now, policy);
  return keys.filter((key) => !expired.has(key.kid));
}

/**
 * Schedules an admin-forced rotation at `now + delay`: returns the `kid` of the existing next key to
 * move there, or no `kid` if a new key should be created with that activation time.
 */
export function rotateNow(
  keys: readonly ScheduledKey[],
  now: number,
  delay: number,
): { activatesAt: number; kid?: string } {
  if (!Number.isFinite(delay) || delay < 0) throw new RangeError('rotation delay must be a non-negative number');
  // Never sooner than `delay`, even if the pending key was due earlier: we cannot tell here how long
  // it has been published, and a key that signs before caches know it breaks every verifier.
  let activatesAt = now + delay;
  const current = signingKeyAt(keys, now);
  // Strictly after the current key, so "current" stays unambiguous when delay is 0.
  if (current && activatesAt <= current.activatesAt) activatesAt = current.activatesAt + 1;
  // While the clock reads earlier than it did (stepped back), this can put the next activation before
  // the moment the current key last signed, shortening its fixed margin by up to the step; recorded
  // `signedUntil` times are unaffected (README "Key rotation and credential lifetimes").
  const next = current && sortKeys(keys).find((key) => key.activatesAt > current.activatesAt);
  return next ? { activatesAt, kid: next.kid } : { activatesAt };
}

// Equal activation times are ordered by kid so every function agrees on the succession.
function sortKeys(keys: readonly ScheduledKey[]): ScheduledKey[] {
  return [...keys].sort((a, b) => a.activatesAt - b.activatesAt || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
}

/**
 * Kids of keys whose last possible token has expired. A key retires when its successor activates;
 * short-lived tokens it signed just before that stay valid for maxTokenTtl, longer ones until the
 * recorded `signedUntil`; both plus skew on the verifier's clock.
 */
function expiredKids(keys: readonly ScheduledKey[], now: number, policy: KeySchedulePolicy): Set<string> {
  const expired = new Set<string>();
  const sorted = sortKeys(keys);
  sorted.forEach((key, index) => {
    const successor = sorted[index + 1];
    if (!successor || successor.activatesAt > now) return;
    const lastExp = Math.max(successor.activatesAt + policy.maxTokenTtl, key.signedUntil ?? Number.NEGATIVE_INFINITY);
    if (lastExp + policy.skew <= now) expired.add(key.kid);
  });
  return expired;
}

function assertPolicy(policy: KeySchedulePolicy): void {
  const { rotationPeriod, publishAhead, maxTokenTtl, skew } = policy;
  // A zero period would schedule the successor at the current key's own activation time.
  if (!(rotationPeriod > 0) || !Number.isFinite(rotationPeriod)) throw new RangeError('rotationPeriod must be > 0');
  for (const [name, value] of Object.entries({ publishAhead, maxTokenTtl, skew })) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a non-negative number`);
  }
}
