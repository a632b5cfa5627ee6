import { z } from 'zod';
import type { Db } from '../../../db/open.js';
import type { AuditStore } from '../../../db/stores/audit-store.js';
import type { PolicyStore } from '../../../db/stores/policy-store.js';
import type { UserStore } from '../../../db/stores/user-store.js';
import { OAuthError } from '../../core/errors.js';
import type { Clock } from '../../core/ports.js';

/**
 * People's groups for policies (`principal in Errand::Group::"finance"`, README "Organisation
 * policies"): an administrator's list (`local`), and the upstream provider's groups claim copied at
 * each federated sign-in (`upstream`). Policies see the union.
 */

const GroupName = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .refine((g) => ![...g].some((ch) => ch.charCodeAt(0) < 0x20), 'must not hold control characters');

/** `PUT /api/admin/users/:id/groups`: the whole local list (an empty list removes them all). */
export const SetUserGroupsSchema = z.object({ groups: z.array(GroupName).max(100) }).strict();

export const UserGroupsViewSchema = z
  .object({
    user_id: z.string(),
    /** Every group policies see (local and upstream). */
    groups: z.array(z.string()),
  })
  .strict();

export interface UserGroupsDeps {
  db: Db;
  users: UserStore;
  policyStore: PolicyStore;
  audit: AuditStore;
  clock: Clock;
}

/** Replaces a person's local groups; audited as `user.groups_updated`. */
export async function setUserGroups(
  deps: UserGroupsDeps,
  userId: string,
  input: z.output<typeof SetUserGroupsSchema>,
  actor: { adminId: string; requestId: string; address?: string },
): Promise<z.infer<typeof UserGroupsViewSchema>> {
  const user = await deps.users.get(userId);
  if (!user) throw new OAuthError('not_found', 'no such person');
  const groups = [...new Set(input.groups)].sort();
  await deps.db.write(async (tx) => {
    await deps.policyStore.setGroups(user.id, 'local', groups, tx);
    await deps.audit.append(
      {
        type: 'user.groups_updated',
        result: 'allowed',
        userId: actor.adminId,
        requestId: actor.requestId,
        details: {
          target_user_id: user.id,
          username: user.username,
          source: 'local',
          groups,
          ...(actor.address ? { address: actor.address } : {}),
        },
      },
      deps.clock.now(),
      tx,
    );
  });
  deps.policyStore.forgetPerson(user.id);
  return { user_id: user.id, groups: await deps.policyStore.groupsOf(user.id) };
}

/** Local groups only (what the console's form edits). */
export async function localGroupsOf(deps: Pick<UserGroupsDeps, 'policyStore'>, userId: string): Promise<string[]> {
  return deps.policyStore.groupsOf(userId, 'local');
}

/**
 * The upstream provider's groups claim, as sent (a JSON array of strings, or one string), copied at a
 * federated sign-in; anything else (absent, another type) clears the upstream groups.
 */
export function groupsFromClaim(value: unknown): string[] {
  const list = Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
  const out = new Set<string>();
  for (const v of list) {
    const parsed = GroupName.safeParse(v);
    if (parsed.success) out.add(parsed.data);
    if (out.size >= 100) break;
  }
  return [...out].sort();
}

/** Replaces a person's upstream groups at sign-in; audited as `user.groups_updated` when they changed. */
export async function copyUpstreamGroups(
  deps: Omit<UserGroupsDeps, 'users'>,
  userId: string,
  groups: string[],
  requestId: string,
  address?: string,
): Promise<void> {
  const before = await deps.policyStore.groupsOf(userId, 'upstream');
  if (before.join('\u0000') === groups.join('\u0000')) return;
  await deps.db.write(async (tx) => {
    await deps.policyStore.setGroups(userId, 'upstream', groups, tx);
    await deps.audit.append(
      {
        type: 'user.groups_updated',
        result: 'allowed',
        userId,
        requestId,
        details: { target_user_id: userId, source: 'upstream', groups, ...(address ? { address } : {}) },
      },
      deps.clock.now(),
      tx,
    );
  });
  deps.policyStore.forgetPerson(userId);
}
