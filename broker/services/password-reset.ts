import { z } from 'zod';
import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { UserStore } from '../../db/stores/user-store.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { hashPassword } from '../identity/passwords.js';
import { NewPasswordSchema } from './bootstrap-admin.js';

/** An administrator sets a new password for an account. */
export const PasswordResetSchema = z.object({ password: NewPasswordSchema }).strict();

export interface PasswordResetDeps {
  db: Db;
  users: UserStore;
  audit: AuditStore;
  clock: Clock;
}

/** Who resets: the administrator (or the operator at the CLI), the request and its source address. */
export interface PasswordResetActor {
  userId: string | null;
  requestId: string;
  address?: string;
}

/**
 * Sets a new password for an account and ends every session of it, so whoever held the old
 * password is signed out. Audited as `user.password_reset` (never the password).
 */
export async function resetPassword(
  deps: PasswordResetDeps,
  id: string,
  input: z.output<typeof PasswordResetSchema>,
  actor: PasswordResetActor,
): Promise<void> {
  const user = await deps.users.get(id);
  if (!user) throw new OAuthError('not_found', 'no such user');
  const passwordHash = await hashPassword(input.password);
  await deps.db.write(async (tx) => {
    await deps.users.replacePassword(id, passwordHash, tx);
    await deps.audit.append(
      {
        type: 'user.password_reset',
        result: 'allowed',
        userId: actor.userId,
        requestId: actor.requestId,
        details: { target_user_id: id, username: user.username, ...(actor.address ? { address: actor.address } : {}) },
      },
      deps.clock.now(),
      tx,
    );
  });
}
