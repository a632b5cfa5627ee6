import { afterEach, describe, expect, test } from 'vitest';
import { startBroker, type TestBroker } from './fixtures.js';

/**
 * ERRAND_TRUST_PROXY: the client address behind reverse proxies is the right-most X-Forwarded-For
 * entry that no trusted proxy wrote, so a client cannot choose its own per-address rate-limit key.
 * The test client talks to the broker directly from 127.0.0.1, playing the part of the proxy.
 */

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.close();
  tb = undefined;
});

const SIGNIN_LIMIT = 30;
const DCR_LIMIT = 3;

/** A JSON sign-in with a wrong password, sent with the given X-Forwarded-For. */
async function signIn(broker: TestBroker, forwardedFor: string, i: number): Promise<number> {
  const res = await fetch(`${broker.url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
    body: JSON.stringify({ username: `nobody-${i}`, password: 'wrong' }),
  });
  await res.arrayBuffer();
  return res.status;
}

async function register(broker: TestBroker, forwardedFor: string): Promise<number> {
  const res = await fetch(`${broker.url}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
    body: JSON.stringify({
      client_name: 'Rotating client',
      redirect_uris: ['http://127.0.0.1:53682/callback'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Sends `n` sign-ins at once, each with its own X-Forwarded-For; returns how many were rate-limited. */
async function limitedSignIns(broker: TestBroker, n: number, forwardedFor: (i: number) => string) {
  const statuses = await Promise.all(Array.from({ length: n }, (_, i) => signIn(broker, forwardedFor(i), i)));
  return statuses.filter((s) => s === 429).length;
}

/** Sends `n` registrations, each with its own X-Forwarded-For; returns how many were rate-limited. */
async function limitedRegistrations(broker: TestBroker, n: number, forwardedFor: (i: number) => string) {
  let limited = 0;
  for (let i = 0; i < n; i++) if ((await register(broker, forwardedFor(i))) === 429) limited++;
  return limited;
}

/** A broker with a low registration limit, whose per-address count shows which address was used. */
const withTrust = (trust: string) =>
  startBroker({ ERRAND_TRUST_PROXY: trust, ERRAND_DCR_RATE_LIMIT: String(DCR_LIMIT) });

describe('ERRAND_TRUST_PROXY', () => {
  test('with one trusted hop, rotating client-chosen X-Forwarded-For values do not escape the sign-in limit', async () => {
    tb = await startBroker({ ERRAND_TRUST_PROXY: '1' });
    // The client sends a fresh left-hand value each time; the proxy appends the address it saw.
    const limited = await limitedSignIns(tb, SIGNIN_LIMIT + 10, (i) => `10.66.${i}.1, 203.0.113.7`);
    expect(limited).toBe(10);
    // Another client behind the same proxy has its own count.
    expect(await signIn(tb, '10.66.0.1, 203.0.113.8', 0)).toBe(401);
  }, 60_000);

  test('with one trusted hop, rotating X-Forwarded-For values do not escape the registration limit', async () => {
    tb = await withTrust('1');
    expect(await limitedRegistrations(tb, DCR_LIMIT + 3, (i) => `192.0.2.${i}, 203.0.113.9`)).toBe(3);
    expect(await register(tb, '192.0.2.1, 203.0.113.10')).toBe(201);
  });

  test('with two trusted hops, the second entry from the right is the client', async () => {
    tb = await withTrust('2');
    expect(await limitedRegistrations(tb, DCR_LIMIT + 3, (i) => `spoofed-${i}, 203.0.113.10, 10.0.${i}.1`)).toBe(3);
    expect(await register(tb, '203.0.113.10, 203.0.113.11, 10.0.0.1')).toBe(201);
  });

  test('with trusted proxy ranges, the right-most address outside them is the client', async () => {
    tb = await withTrust('127.0.0.0/8, 10.0.0.0/8, fd00::/8');
    // Any number of trusted hops (rotating) between the client and Errand, and spoofed values before it.
    const rotating = (i: number) => `198.18.${i}.1, 203.0.113.11, fd00::${i.toString(16)}, 10.${i}.0.1`;
    expect(await limitedRegistrations(tb, DCR_LIMIT + 3, rotating)).toBe(3);
    expect(await register(tb, '198.18.0.1, 203.0.113.12, 10.0.0.1')).toBe(201);
  });

  test('IPv6 clients are counted by their /64 network', async () => {
    tb = await withTrust('127.0.0.1/32');
    expect(await limitedRegistrations(tb, DCR_LIMIT + 3, (i) => `2001:db8:1:2::${(i + 1).toString(16)}`)).toBe(3);
    expect(await register(tb, '[2001:db8:1:3::1]:443')).toBe(201);
  });

  test('when the peer is not a trusted proxy, X-Forwarded-For is ignored', async () => {
    tb = await withTrust('10.0.0.0/8');
    expect(await limitedRegistrations(tb, DCR_LIMIT + 3, (i) => `203.0.113.${i}`)).toBe(3);
  });

  test('the old value true is refused at start-up with a message that names the setting', async () => {
    await expect(startBroker({ ERRAND_TRUST_PROXY: 'true' })).rejects.toThrow(/ERRAND_TRUST_PROXY: /);
  });
});
