import type { Clock } from '../broker/core/ports.js';
import { DUMMY_PASSWORD_HASH, verifyPassword } from '../broker/identity/passwords.js';
import type { Logger } from '../broker/log.js';
import type { RateLimiter } from '../broker/services/rate-limit.js';
import { hashSecret } from '../broker/tokens/random.js';
import type { SignInCounter, UserStore, UserWithPassword } from '../db/stores/user-store.js';

/** Lock-out limits (ERRAND_SIGNIN_MAX_FAILURES, ERRAND_SIGNIN_USERNAME_MAX_FAILURES, ERRAND_SIGNIN_LOCKOUT). */
export interface SignInLimits {
  /** Failures for one username from one client address before that pair is locked. */
  maxFailures: number;
  /** Failures for one username from all addresses together before the username is locked everywhere. */
  usernameMaxFailures: number;
  /** Seconds a lock lasts, and how long a failure is remembered. */
  lockout: number;
}

export interface CredentialCheckDeps {
  users: UserStore;
  clock: Clock;
  signinLimiter: RateLimiter;
  signin: SignInLimits;
  log: Logger;
  /** Appends a `signin.succeeded` or `signin.failed` event to the audit log. */
  recordSignIn(event: SignInEvent): Promise<void>;
}

/** A sign-in attempt as the audit log records it (never the password; the username only for a known account). */
export interface SignInEvent {
  result: 'allowed' | 'denied';
  userId: string | null;
  reason: 'locked' | 'bad_credentials' | 'disabled' | null;
  method: 'password' | 'oidc';
  address: string;
  requestId: string | null;
}

/** Outcome of checking a username and password, with lock-out. */
export type SignInResult =
  | { ok: true; user: UserWithPassword }
  | { ok: false; message: string; status: 401 | 423 | 429 };

/**
 * The lock-out counters of one attempt. They are kept for whatever username was typed, so a name
 * nobody has locks exactly like a real one and the answers do not reveal which accounts exist.
 * Counting per username and address keeps a guesser at one address from locking the person out
 * everywhere; the per-username total still bounds guesses spread over many addresses.
 */
function failureCounters(limits: SignInLimits, username: string, address: string): SignInCounter[] {
  return [
    { key: hashSecret(JSON.stringify(['signin', username, address])), maxFailures: limits.maxFailures },
    { key: hashSecret(JSON.stringify(['signin', username])), maxFailures: limits.usernameMaxFailures },
  ];
}

/**
 * Checks a username and password from `address` (the rate-limit key): per-address rate limit,
 * lock-out, then the password. The outcome is audited with the request's id and exact address.
 */
export async function checkCredentials(
  deps: CredentialCheckDeps,
  address: string,
  username: string,
  password: string,
  request: { requestId: string; address: string },
): Promise<SignInResult> {
  const record = (result: 'allowed' | 'denied', userId: string | null, reason: SignInEvent['reason']) =>
    deps.recordSignIn({ result, userId, reason, method: 'password', ...request });
  const wait = deps.signinLimiter.hit(address);
  if (wait > 0) return { ok: false, status: 429, message: `Too many sign-in attempts. Try again in ${wait} seconds.` };
  const now = deps.clock.now();
  const counters = failureCounters(deps.signin, username, address);
  const reserved = await deps.users.reserveSignInAttempt(counters, now, deps.signin.lockout);
  if (!reserved.ok) {
    deps.log.info('signin.failed', { reason: 'locked' });
    await record('denied', null, 'locked');
    const minutes = Math.ceil((reserved.lockedUntil - now) / 60);
    return {
      ok: false,
      status: 423,
      message: `Sign-in with this username is locked after too many failed sign-ins. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`,
    };
  }
  const user = await deps.users.findByUsername(username);
  // The same scrypt work for unknown users, so response times do not reveal which names exist.
  const valid = await verifyPassword(password, user?.passwordHash ?? DUMMY_PASSWORD_HASH);
  if (!user || !valid || user.disabledAt !== null) {
    deps.log.info('signin.failed', { userId: user?.id ?? null, reason: 'bad_credentials' });
    await record('denied', user?.id ?? null, 'bad_credentials');
    return { ok: false, status: 401, message: 'The username or password is not correct.' };
  }
  await deps.users.clearSignInFailures(counters.map((c) => c.key));
  deps.log.info('signin.succeeded', { userId: user.id });
  await record('allowed', user.id, null);
  return { ok: true, user };
}
