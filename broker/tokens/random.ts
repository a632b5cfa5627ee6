import { createHash, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';

// Random bytes for ids are drawn from the CSPRNG a block at a time; each slice is used once.
const POOL = Buffer.allocUnsafe(16 * 512);
let poolOffset = POOL.length;

/** 128 fresh random bits as base64url. */
function random128(): string {
  if (poolOffset + 16 > POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  const out = POOL.toString('base64url', poolOffset, poolOffset + 16);
  poolOffset += 16;
  return out;
}

/**
 * A time-ordered, unguessable value: the millisecond clock as 12 hex digits, then 128 random bits
 * (base64url). Rows keyed this way are written at the end of their indexes instead of on random
 * pages, so inserts stay cheap as tables grow; the random part keeps them unguessable.
 */
export function timeOrderedId(): string {
  return `${Date.now().toString(16).padStart(12, '0')}${random128()}`;
}

/** A prefixed id (`tsk_…`, `evt_…`) so that logs read well; time-ordered, 128 bits of entropy. */
export function newId(prefix: string): string {
  return `${prefix}_${timeOrderedId()}`;
}

/** An unguessable bearer value (256 bits), optionally prefixed. */
export function newSecret(prefix = ''): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** SHA-256 of a string as base64url: how bearer values are stored and looked up. */
export function hashSecret(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

/** A short, non-reversible reference to a secret for logs. */
export function logRef(value: string): string {
  return hashSecret(value).slice(0, 12);
}

/** Constant-time string comparison. */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  if (ab.length !== bb.length) {
    timingSafeEqual(ab, ab);
    return false;
  }
  return timingSafeEqual(ab, bb);
}
