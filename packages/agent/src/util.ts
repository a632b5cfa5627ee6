import { createHash, randomBytes } from 'node:crypto';

/** base64url(SHA-256(token)): a proof's `ath` (RFC 9449 §4.2). */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

/** A random identifier for `jti`s. */
export function randomId(): string {
  return randomBytes(16).toString('base64url');
}

/** Epoch seconds from a millisecond clock. */
export function seconds(nowMs: number): number {
  return Math.floor(nowMs / 1000);
}

/** Waits `s` seconds. */
export function sleep(s: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, s * 1000));
}
