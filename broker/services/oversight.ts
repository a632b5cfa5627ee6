import { z } from 'zod';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { DelegationStore, StoredDelegation } from '../../db/stores/delegation-store.js';
import type { TaskStore } from '../../db/stores/task-store.js';
import type { UserStore } from '../../db/stores/user-store.js';
import { TASK_STATES, type Task } from '../core/task.js';

/**
 * An administrator's view across people: every task and every delegation, filtered, with the names
 * of the people and agents beside their ids. Ending and revoking go through TaskService and
 * DelegationService like every other door.
 */

export const AdminTaskQuerySchema = z
  .object({
    user_id: z.string().max(100).optional(),
    /** An agent anywhere in the task's actor chain. */
    agent_id: z.string().max(2048).optional(),
    /** A task state, or `live` / `ended` for any non-terminal / terminal one. */
    state: z.enum([...TASK_STATES, 'live', 'ended']).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
  })
  .strict();

export const AdminDelegationQuerySchema = z
  .object({
    user_id: z.string().max(100).optional(),
    agent_id: z.string().max(2048).optional(),
    status: z.enum(['pending', 'active', 'denied', 'revoked']).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
  })
  .strict();

export interface OversightDeps {
  tasks: TaskStore;
  delegations: DelegationStore;
  clients: ClientStore;
  users: UserStore;
}

/** Display names by id: people by username, clients by name. Unknown ids (a deleted agent) are absent. */
export interface Names {
  users: Map<string, string>;
  clients: Map<string, string>;
}

export async function namesOf(deps: Pick<OversightDeps, 'clients' | 'users'>): Promise<Names> {
  const [users, clients] = await Promise.all([deps.users.list(), deps.clients.list()]);
  return {
    users: new Map(users.map((u) => [u.id, u.username])),
    clients: new Map(clients.map((c) => [c.id, c.name])),
  };
}

export async function listTasks(deps: OversightDeps, q: z.output<typeof AdminTaskQuerySchema>): Promise<Task[]> {
  return deps.tasks.list({
    ...(q.user_id ? { userId: q.user_id } : {}),
    ...(q.agent_id ? { agentId: q.agent_id } : {}),
    ...(q.state ? { state: q.state } : {}),
    limit: q.limit,
  });
}

export async function listDelegations(
  deps: OversightDeps,
  q: z.output<typeof AdminDelegationQuerySchema>,
): Promise<StoredDelegation[]> {
  return deps.delegations.list({
    ...(q.user_id ? { userId: q.user_id } : {}),
    ...(q.agent_id ? { agentId: q.agent_id } : {}),
    ...(q.status ? { status: q.status } : {}),
    limit: q.limit,
  });
}
