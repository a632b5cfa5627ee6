import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Browser, createUser, hiddenInput, startBroker, type TestBroker } from '../../broker/test/fixtures.js';

/**
 * Sign-in lock-out: failures are counted per submitted username (whether or not an account has it),
 * per username and address, and per username over all addresses. The count is reserved in the
 * database before the password is checked, so parallel guesses and other processes cannot slip past it.
 */

const MAX_FAILURES = 3;
const USERNAME_MAX_FAILURES = 6;
const LOCKOUT = 600;

let tb: TestBroker;
let next = 0;
beforeAll(async () => {
  tb = await startBroker({
    ERRAND_SIGNIN_MAX_FAILURES: String(MAX_FAILURES),
    ERRAND_SIGNIN_USERNAME_MAX_FAILURES: String(USERNAME_MAX_FAILURES),
    ERRAND_SIGNIN_LOCKOUT: String(LOCKOUT),
    // One trusted proxy in front: each test speaks from addresses of its own (X-Forwarded-For).
    ERRAND_TRUST_PROXY: '1',
  });
});
afterAll(() => tb.close());

/** A fresh client address (TEST-NET-2), so that tests do not share per-address counters. */
function newAddress(): string {
  next += 1;
  return `198.51.100.${next}`;
}

/** Signs in through the web form from `address`; returns the status and the page, minus per-request values. */
async function formSignIn(broker: TestBroker, address: string, username: string, password: string) {
  const browser = new Browser();
  const page = await browser.fetch(`${broker.url}/signin`);
  const csrf = hiddenInput(await page.text(), '_csrf');
  const res = await browser.fetch(`${broker.url}/signin`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': address },
    body: new URLSearchParams({ username, password, _csrf: csrf, next: '/admin' }).toString(),
  });
  const body = (await res.text()).replaceAll(csrf, '<csrf>').replaceAll(username, '<username>');
  return { status: res.status, body };
}

/** Signs in through the JSON API from `address`. */
async function apiSignIn(address: string, username: string, password: string) {
  const res = await fetch(`${tb.url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
    body: JSON.stringify({ username, password }),
  });
  return { status: res.status, body: await res.text() };
}

describe('lock-out is decided before the password is checked', () => {
  test('25 parallel wrong guesses: at most the allowed number are checked, then the right password is refused', async () => {
    const user = await createUser(tb);
    const address = newAddress();
    const answers = await Promise.all(
      Array.from({ length: 25 }, (_, i) => formSignIn(tb, address, user.username, `wrong-${i}`)),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(MAX_FAILURES);
    expect(statuses.filter((s) => s !== 401 && s !== 423)).toEqual([]);
    const right = await formSignIn(tb, address, user.username, user.password);
    expect(right.status).toBe(423);
    expect(right.body).toMatch(/Try again in 10 minutes/);
    expect(right.body).not.toMatch(/account/i);
  });

  test('two broker processes on one database together check no more guesses than allowed', async () => {
    const other = await startBroker(
      {
        ERRAND_SIGNIN_MAX_FAILURES: String(MAX_FAILURES),
        ERRAND_SIGNIN_USERNAME_MAX_FAILURES: String(USERNAME_MAX_FAILURES),
        ERRAND_SIGNIN_LOCKOUT: String(LOCKOUT),
        ERRAND_TRUST_PROXY: '1',
      },
      { dir: tb.dir, clock: tb.clock },
    );
    try {
      const user = await createUser(tb);
      const address = newAddress();
      const answers = await Promise.all(
        Array.from({ length: 24 }, (_, i) => formSignIn(i % 2 ? tb : other, address, user.username, `wrong-${i}`)),
      );
      expect(answers.filter((a) => a.status === 401).length).toBeLessThanOrEqual(MAX_FAILURES);
      expect((await formSignIn(other, address, user.username, user.password)).status).toBe(423);
    } finally {
      await other.close();
    }
  });

  test('a success clears the count, and the lock lifts after the lock-out period', async () => {
    const user = await createUser(tb);
    const address = newAddress();
    for (let i = 0; i < MAX_FAILURES - 1; i++) {
      expect((await formSignIn(tb, address, user.username, 'wrong')).status).toBe(401);
    }
    expect((await formSignIn(tb, address, user.username, user.password)).status).toBe(303);
    for (let i = 0; i < MAX_FAILURES; i++) {
      expect((await formSignIn(tb, address, user.username, 'wrong')).status).toBe(401);
    }
    expect((await formSignIn(tb, address, user.username, user.password)).status).toBe(423);
    tb.clock.advance(LOCKOUT + 1);
    expect((await formSignIn(tb, address, user.username, user.password)).status).toBe(303);
  });
});

describe('an unknown username cannot be told from an existing one', () => {
  test('the same failures give the same statuses and pages for an existing and an unknown username', async () => {
    const user = await createUser(tb);
    const unknown = `nobody-${user.username}`;
    const existingAddress = newAddress();
    const unknownAddress = newAddress();
    const existing: { status: number; body: string }[] = [];
    const missing: { status: number; body: string }[] = [];
    for (let i = 0; i < MAX_FAILURES + 2; i++) {
      existing.push(await formSignIn(tb, existingAddress, user.username, 'wrong'));
      missing.push(await formSignIn(tb, unknownAddress, unknown, 'wrong'));
    }
    // The real password while locked: still the same answer as for a name nobody has.
    existing.push(await formSignIn(tb, existingAddress, user.username, user.password));
    missing.push(await formSignIn(tb, unknownAddress, unknown, user.password));
    expect(existing.map((a) => a.status)).toEqual([401, 401, 401, 423, 423, 423]);
    expect(missing).toEqual(existing);
  });

  test('the JSON sign-in answers an existing and an unknown username identically', async () => {
    const user = await createUser(tb);
    const unknown = `nobody-${user.username}`;
    const existingAddress = newAddress();
    const unknownAddress = newAddress();
    const existing: { status: number; body: string }[] = [];
    const missing: { status: number; body: string }[] = [];
    for (let i = 0; i < MAX_FAILURES + 1; i++) {
      existing.push(await apiSignIn(existingAddress, user.username, 'wrong'));
      missing.push(await apiSignIn(unknownAddress, unknown, 'wrong'));
    }
    expect(existing.map((a) => a.status)).toEqual([401, 401, 401, 423]);
    expect(missing).toEqual(existing);
  });
});

describe('a guesser cannot lock a person out everywhere', () => {
  test('failures from one address lock the username at that address only', async () => {
    const user = await createUser(tb, 'admin');
    const attacker = newAddress();
    for (let i = 0; i < MAX_FAILURES + 2; i++) await formSignIn(tb, attacker, user.username, 'wrong');
    expect((await formSignIn(tb, attacker, user.username, user.password)).status).toBe(423);
    expect((await formSignIn(tb, newAddress(), user.username, user.password)).status).toBe(303);
  });

  test('failures spread over many addresses lock the username everywhere, for unknown names too', async () => {
    const user = await createUser(tb);
    const unknown = `nobody-${user.username}`;
    for (const name of [user.username, unknown]) {
      const statuses: number[] = [];
      for (let a = 0; a < USERNAME_MAX_FAILURES / MAX_FAILURES + 1; a++) {
        const address = newAddress();
        for (let i = 0; i < MAX_FAILURES; i++) statuses.push((await formSignIn(tb, address, name, 'wrong')).status);
      }
      expect(statuses.filter((s) => s === 401)).toHaveLength(USERNAME_MAX_FAILURES);
      expect(statuses.slice(USERNAME_MAX_FAILURES).every((s) => s === 423)).toBe(true);
    }
    expect((await formSignIn(tb, newAddress(), user.username, user.password)).status).toBe(423);
  });
});
