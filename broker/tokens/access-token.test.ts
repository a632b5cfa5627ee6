import { generateSigningKey, JWT_TYP, type JwsKey } from '@errand/protocol';
import { describe, expect, test } from 'vitest';
import { TokenMinter } from './access-token.js';
import type { KeyRing } from './key-ring.js';

/** A key ring whose published keys the test controls. */
function ring(initial: JwsKey) {
  const published = new Map([[initial.kid, initial]]);
  let current = initial;
  const keys = {
    signingKey: () => current,
    signingKeyFor: () => current,
    verificationKey: (kid: string) => published.get(kid)?.publicKey,
  } as unknown as KeyRing;
  return {
    keys,
    rotate(next: JwsKey) {
      published.set(next.kid, next);
      current = next;
    },
    retire(kid: string) {
      published.delete(kid);
    },
  };
}

describe('TokenMinter.verifyOwn', () => {
  const clock = { now: () => Math.floor(Date.now() / 1000) };
  const issuer = 'https://errand.example.test';

  test('a token seen before is still refused once its key is no longer published', () => {
    const r = ring(generateSigningKey('ES256', 'k1'));
    const minter = new TokenMinter({ keys: r.keys, issuer, clock, clockSkew: 30 });
    const { token } = minter.sign(JWT_TYP.delegation, { jti: 'j1', iat: clock.now(), exp: clock.now() + 60 });
    expect(minter.verifyOwn(token, JWT_TYP.delegation)?.jti).toBe('j1');
    expect(minter.verifyOwn(token, JWT_TYP.delegation)?.jti).toBe('j1');
    r.rotate(generateSigningKey('ES256', 'k2'));
    expect(minter.verifyOwn(token, JWT_TYP.delegation)?.jti).toBe('j1');
    r.retire('k1');
    expect(minter.verifyOwn(token, JWT_TYP.delegation)).toBeNull();
  });

  test('claims are checked on every use: expiry, type and issuer', () => {
    let now = Math.floor(Date.now() / 1000);
    const r = ring(generateSigningKey('ES256', 'k1'));
    const minter = new TokenMinter({ keys: r.keys, issuer, clock: { now: () => now }, clockSkew: 30 });
    const { token } = minter.sign(JWT_TYP.delegation, { jti: 'j2', iat: now, exp: now + 60 });
    expect(minter.verifyOwn(token, JWT_TYP.delegation)).not.toBeNull();
    expect(minter.verifyOwn(token, JWT_TYP.accessToken)).toBeNull();
    now += 61;
    expect(minter.verifyOwn(token, JWT_TYP.delegation)).toBeNull();
    const other = new TokenMinter({
      keys: r.keys,
      issuer: 'https://other.example.test',
      clock: { now: () => now - 61 },
      clockSkew: 30,
    });
    expect(other.verifyOwn(token, JWT_TYP.delegation)).toBeNull();
  });

  test('an iat further in the future than the skew is refused, except for revocation', () => {
    let now = Math.floor(Date.now() / 1000);
    const r = ring(generateSigningKey('ES256', 'k1'));
    const minter = new TokenMinter({ keys: r.keys, issuer, clock: { now: () => now }, clockSkew: 30 });
    // Minted while the clock ran 2 h ahead; the clock is back.
    const ahead = minter.sign(JWT_TYP.accessToken, { jti: 'j5', iat: now + 7200, exp: now + 7500 }).token;
    expect(minter.verify(ahead)).toBeNull();
    expect(minter.verifyOwn(ahead, JWT_TYP.accessToken)).toBeNull();
    expect(minter.verify(ahead, { acceptFutureIat: true })?.jti).toBe('j5');
    // Within the skew it is accepted; once real time reaches it, it lives out its own window.
    const slight = minter.sign(JWT_TYP.delegation, { jti: 'j6', iat: now + 30, exp: now + 300 }).token;
    expect(minter.verifyOwn(slight, JWT_TYP.delegation)?.jti).toBe('j6');
    now += 7200 - 30;
    expect(minter.verify(ahead)?.jti).toBe('j5');
    const odd = minter.sign(JWT_TYP.delegation, {
      jti: 'j7',
      iat: 'yesterday' as unknown as number,
      exp: now + 60,
    }).token;
    expect(minter.verifyOwn(odd, JWT_TYP.delegation)).toBeNull();
  });

  test('a tampered copy of a remembered token is refused', () => {
    const r = ring(generateSigningKey('ES256', 'k1'));
    const minter = new TokenMinter({ keys: r.keys, issuer, clock, clockSkew: 30 });
    const { token } = minter.sign(JWT_TYP.delegation, { jti: 'j3', iat: clock.now(), exp: clock.now() + 60 });
    expect(minter.verifyOwn(token, JWT_TYP.delegation)).not.toBeNull();
    const [h, , s] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ iss: issuer, jti: 'j4', exp: clock.now() + 60 })).toString('base64url')}.${s}`;
    expect(minter.verifyOwn(forged, JWT_TYP.delegation)).toBeNull();
  });
});

describe('ids', () => {
  test('time-ordered ids sort by creation time, carry 128 random bits and never repeat', async () => {
    const { newId, timeOrderedId } = await import('./random.js');
    const ids = Array.from({ length: 5000 }, () => timeOrderedId());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{12}[A-Za-z0-9_-]{22}$/);
    const first = ids[0]!;
    await new Promise((r) => setTimeout(r, 5));
    const later = timeOrderedId();
    expect(later > first).toBe(true);
    // The random parts differ even within one millisecond.
    expect(new Set(ids.map((id) => id.slice(12))).size).toBe(ids.length);
    expect(newId('tsk')).toMatch(/^tsk_[0-9a-f]{12}[A-Za-z0-9_-]{22}$/);
  });
});
