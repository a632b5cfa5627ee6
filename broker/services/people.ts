import { z } from 'zod';
import type { Db, Tx } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { DelegationStore } from '../../db/stores/delegation-store.js';
import type { GrantStore } from '../../db/stores/grant-store.js';
import type { User, UserStore } from '../../db/stores/user-store.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { hashPassword, verifyPassword } from '../identity/passwords.js';
import { hashSecret } from '../tokens/random.js';
import type { RevocationEvent, TaskService } from './tasks.js';

/** Passwords: 12 characters or more (the same rule as account creation and first setup). */
export const PasswordSchema = z.string().min(12, 'must have at least 12 characters').max(512);

export const UpdateUserSchema = z
  .object({
    /** `disabled`: the person can no longer sign in; their delegations, tasks, tokens and sessions end. */
    status: z.enum(['active', 'disabled']).optional(),
    role: z.enum(['user', 'admin']).optional(),
    display_name: z.string().trim().max(200).nullable().optional(),
  })
  .strict();

/** An administrator sets a new password for someone (README "Admin API": why not a reset link). */
export const ResetPasswordSchema = z.object({ password: PasswordSchema }).strict();

/** A person changes their own password; the current one proves it is them. */
export const ChangePasswordSchema = z
  .object({ current_password: z.string().min(1).max(512), new_password: PasswordSchema })
  .strict();

export interface PeopleDeps {
  db: Db;
  users: UserStore;
  delegations: DelegationStore;
  grants: GrantStore;
  taskService: TaskService;
  audit: AuditStore;
  clock: Clock;
  /**
   * Wrong current passwords a person may give on the change-password form before it locks for
   * `lockout` seconds (ERRAND_SIGNIN_MAX_FAILURES, ERRAND_SIGNIN_LOCKOUT): a stolen session must not
   * become an unlimited password guesser.
   */
  guesses: { maxFailures: number; lockout: number };
}

/** Who acts, for the audit event: the signed-in person, the request and its source address. */
export interface PeopleActor {
  userId: string;
  requestId: string;
  address?: string;
}

/** An administrator, or (`userId` null) the operator at the admin CLI, whose events say so in `details.via`. */
type ResetActor = Omit<PeopleActor, 'userId'> & { userId: string | null };

async function record(
  deps: Pick<PeopleDeps, 'audit'>,
  tx: Tx,
  type: string,
  target: User,
  actor: ResetActor,
  now: number,
  details: Record<string, unknown> = {},
) {
  await deps.audit.append(
    {
      type,
      result: 'allowed',
      userId: actor.userId,
      requestId: actor.requestId,
      details: {
        target_user_id: target.id,
        username: target.username,
        ...details,
        ...(actor.address ? { address: actor.address } : {}),
      },
    },
    now,
    tx,
  );
}

/**
 * Ends what a disabled person had given out, in the caller's transaction: each pending or active
 * delegation is revoked (its tasks end with their tokens), every other token issued for them
 * (sign-in with an MCP client, refresh tokens) is revoked, and every session ends. Enabling the
 * account again does not bring any of it back: agents ask again.
 */
async function endEverythingOf(deps: PeopleDeps, tx: Tx, user: User, actor: PeopleActor, now: number) {
  const events: RevocationEvent[] = [];
  for (const d of await deps.delegations.listLive(tx, user.id)) {
    if (!(await deps.delegations.revoke(d.id, now, tx))) continue;
    await deps.audit.append(
      {
        type: 'delegation.revoked',
        result: 'allowed',
        userId: user.id,
        clientId: d.agentId,
        delegationId: d.id,
        reason: 'user_disabled',
        requestId: actor.requestId,
        details: { by: actor.userId },
      },
      now,
      tx,
    );
    events.push(
      ...(await deps.taskService.endWhere(tx, { delegationId: d.id }, 'delegation_revoked', now, actor.requestId)),
    );
  }
  await deps.grants.revokeUserTokens(user.id, now, tx);
  await deps.users.deleteSessionsOf(user.id, tx);
  return events;
}

/**
 * Changes a person's status, role or display name (API `PATCH /api/admin/users/:id` and the People
 * page). The last active administrator can be neither disabled nor demoted (409), so an
 * installation always keeps someone who can administer it. Audited as `user.disabled`,
 * `user.enabled` and `user.updated` (role or name).
 */
export async function updateUser(
  deps: PeopleDeps,
  id: string,
  input: z.output<typeof UpdateUserSchema>,
  actor: PeopleActor,
): Promise<User> {
  const before = await deps.users.get(id);
  if (!before) throw new OAuthError('not_found', 'no such user');
  const events = await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    const disable = input.status === 'disabled' && before.disabledAt === null;
    const enable = input.status === 'active' && before.disabledAt !== null;
    const demote = input.role === 'user' && before.role === 'admin';
    if ((disable || demote) && before.role === 'admin' && before.disabledAt === null) {
      if ((await deps.users.countActiveAdmins(tx)) <= 1) {
        throw new OAuthError(
          'conflict',
          `${before.username} is the last active administrator: make someone else an administrator first`,
        );
      }
    }
    const roleChanged = input.role !== undefined && input.role !== before.role;
    const nameChanged = input.display_name !== undefined && input.display_name !== before.displayName;
    await deps.users.update(
      id,
      {
        ...(roleChanged && input.role ? { role: input.role } : {}),
        ...(nameChanged ? { displayName: input.display_name ?? null } : {}),
        ...(disable ? { disabledAt: now } : enable ? { disabledAt: null } : {}),
      },
      tx,
    );
    if (roleChanged || nameChanged) {
      await record(deps, tx, 'user.updated', before, actor, now, {
        ...(roleChanged ? { role: input.role, previous_role: before.role } : {}),
        ...(nameChanged ? { display_name_changed: true } : {}),
      });
    }
    if (enable) await record(deps, tx, 'user.enabled', before, actor, now);
    if (!disable) return [];
    await record(deps, tx, 'user.disabled', before, actor, now);
    return endEverythingOf(deps, tx, before, actor, now);
  });
  deps.taskService.flush(events);
  return (await deps.users.get(id))!;
}

/**
 * An administrator sets a new password for someone: every session of that person ends, so whoever
 * held the old password is signed out. Audited as `user.password_reset` (never the password).
 */
export async function resetPassword(
  deps: Pick<PeopleDeps, 'db' | 'users' | 'audit' | 'clock'>,
  id: string,
  input: z.output<typeof ResetPasswordSchema>,
  actor: ResetActor,
): Promise<void> {
  const user = await deps.users.get(id);
  if (!user) throw new OAuthError('not_found', 'no such user');
  const passwordHash = await hashPassword(input.password);
  await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    await deps.users.update(id, { passwordHash }, tx);
    await deps.users.deleteSessionsOf(id, tx);
    await record(deps, tx, 'user.password_reset', user, actor, now);
  });
}

/**
 * A person changes their own password, proving it with the current one (a wrong one is 403
 * `forbidden`, audited as a denied `user.password_changed`; after `guesses.maxFailures` wrong ones
 * the form is locked, 429). Every other session of theirs ends;
 * the one in use (`keepSession`, its id hash) stays.
 */
export async function changeOwnPassword(
  deps: PeopleDeps,
  input: z.output<typeof ChangePasswordSchema>,
  actor: PeopleActor,
  keepSession: string | null,
): Promise<void> {
  const user = await deps.users.getWithPassword(actor.userId);
  if (!user) throw new OAuthError('not_found', 'no such user');
  if (!user.passwordHash) {
    throw new OAuthError('conflict', 'this account signs in through single sign-on and has no password here');
  }
  const now = deps.clock.now();
  const counters = [
    { key: hashSecret(JSON.stringify(['password_change', user.id])), maxFailures: deps.guesses.maxFailures },
  ];
  const reserved = await deps.users.reserveSignInAttempt(counters, now, deps.guesses.lockout);
  if (!reserved.ok) {
    const minutes = Math.ceil((reserved.lockedUntil - now) / 60);
    throw new OAuthError('rate_limited', `too many wrong passwords: try again in ${minutes} minutes`);
  }
  const ok = await verifyPassword(input.current_password, user.passwordHash);
  if (!ok) {
    await deps.db.write((tx) =>
      deps.audit.append(
        {
          type: 'user.password_changed',
          result: 'denied',
          userId: user.id,
          reason: 'bad_credentials',
          requestId: actor.requestId,
          ...(actor.address ? { details: { address: actor.address } } : {}),
        },
        deps.clock.now(),
        tx,
      ),
    );
    throw new OAuthError('forbidden', 'the current password is not correct');
  }
  await deps.users.clearSignInFailures(counters.map((c) => c.key));
  const passwordHash = await hashPassword(input.new_password);
  await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    await deps.users.update(user.id, { passwordHash }, tx);
    await deps.users.deleteSessionsOf(user.id, tx, keepSession ?? undefined);
    await record(deps, tx, 'user.password_changed', user, actor, now);
  });
}
