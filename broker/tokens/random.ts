import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A prefixed random id (`cli_…`, `usr_…`) so that logs read well; 128 bits of entropy. */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(16).toString('base64url')}`;
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
