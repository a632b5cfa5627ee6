import { z } from 'zod';
import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { UserStore, UserWithPassword } from '../../db/stores/user-store.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { hashPassword } from '../identity/passwords.js';
import { newId } from '../tokens/random.js';

/** Usernames and passwords of accounts: the same rules as account creation (`CreateUserSchema`). */
export const UsernameSchema = z
  .string()
  .regex(/^[A-Za-z0-9._@-]{1,64}$/, 'may use letters, digits and . _ @ - (up to 64)');
export const NewPasswordSchema = z.string().min(12, 'must have at least 12 characters').max(512);

/** The first administrator, created without a browser (admin CLI, ERRAND_BOOTSTRAP_ADMIN_*). */
export const BootstrapAdminSchema = z
  .object({ username: UsernameSchema, password: NewPasswordSchema, display_name: z.string().max(200).optional() })
  .strict();

export interface BootstrapAdminDeps {
  db: Db;
  users: UserStore;
  audit: AuditStore;
  clock: Clock;
}

/**
 * Creates the first administrator when none exists; a `conflict` otherwise, so that a script run
 * twice cannot add a second one by accident. The check, the account, the end of every setup link
 * and the `user.bootstrapped` audit event (never the password) are one transaction.
 */
export async function bootstrapAdmin(
  deps: BootstrapAdminDeps,
  input: z.output<typeof BootstrapAdminSchema>,
  origin: { source: 'cli' | 'environment'; requestId: string },
): Promise<Omit<UserWithPassword, 'passwordHash'>> {
  const now = deps.clock.now();
  const admin: UserWithPassword = {
    id: newId('usr'),
    username: input.username,
    displayName: input.display_name ?? null,
    passwordHash: await hashPassword(input.password),
    role: 'admin',
    createdAt: now,
    disabledAt: null,
    failedSignins: 0,
    lockedUntil: null,
  };
  await deps.db.write(async (tx) => {
    if (!(await deps.users.insertFirstAdmin(admin, now, tx))) {
      throw new OAuthError('conflict', 'an administrator already exists');
    }
    await deps.audit.append(
      {
        type: 'user.bootstrapped',
        result: 'allowed',
        userId: admin.id,
        requestId: origin.requestId,
        details: { created_user_id: admin.id, username: admin.username, source: origin.source },
      },
      now,
      tx,
    );
  });
  const { passwordHash: _omit, ...view } = admin;
  return view;
}
