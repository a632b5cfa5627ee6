import { z } from 'zod';
import type { Tx } from '../../db/open.js';
import type { DelegationStore } from '../../db/stores/delegation-store.js';
import type { LifecycleStore } from '../../db/stores/lifecycle-store.js';
import type { User } from '../../db/stores/user-store.js';
import type { Client } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import type { Engine } from '../engine.js';
import { type AdminDeps, disableClientInTx } from './admin.js';
import type { DelegationService } from './delegations.js';
import { agentUsage, type UsageDeps, usedGrants } from './usage.js';

/**
 * The lifecycle of agents as non-human identities (README "Agent lifecycle: owners, certification
 * and right-sizing"): every agent has a person as owner; an agent whose owner is missing, disabled or
 * deleted is flagged, and suspended once ERRAND_OWNER_GRACE_PERIOD has passed. Suspension and
 * right-sizing (narrowing a delegation to what was used) are the two changes certification makes too.
 */

export type OwnerStatus = 'active' | 'missing' | 'disabled' | 'deleted';
export type SuspendReason = 'owner_lapsed' | 'certification_lapsed' | 'certification_removed';

export interface LifecycleDeps extends AdminDeps, UsageDeps {
  delegations: DelegationStore;
  delegationService: DelegationService;
  lifecycle: LifecycleStore;
}

/** The lifecycle services' dependencies, from the engine every door is handed. */
export function lifecycleDepsOf(e: Engine): LifecycleDeps {
  return { ...e, tokenRetention: e.config.retention.tokens };
}

/** Who narrows a delegation: its person, or an administrator (`admin`). */
export interface Reducer {
  userId: string;
  admin: boolean;
  requestId: string;
  address?: string;
}

/** The owner's state: none named, the account gone, disabled, or active. */
export function ownerStatusOf(client: Pick<Client, 'ownerId'>, owner: User | null | undefined): OwnerStatus {
  if (!client.ownerId) return 'missing';
  if (!owner) return 'deleted';
  return owner.disabledAt !== null ? 'disabled' : 'active';
}

/**
 * The lifecycle fields of the admin API client view and the console's agents list, for agents:
 * `owner_status`, `owner_lapsed_at` (when maintenance first saw the lapse; null until then) and,
 * for a disabled agent Errand suspended, `suspended_reason`.
 */
export async function lifecycleViews(
  deps: Pick<LifecycleDeps, 'users' | 'lifecycle'>,
  clients: Client[],
): Promise<
  Map<string, { owner_status: OwnerStatus; owner_lapsed_at: number | null; suspended_reason: string | null }>
> {
  const agents = clients.filter((c) => c.kind === 'agent');
  const [users, rows] = await Promise.all([deps.users.list(), deps.lifecycle.lifecycleOf(agents.map((c) => c.id))]);
  const byId = new Map(users.map((u) => [u.id, u]));
  return new Map(
    agents.map((c) => {
      const status = ownerStatusOf(c, c.ownerId ? byId.get(c.ownerId) : null);
      const row = rows.get(c.id);
      const lapsedAt = status !== 'active' && row?.lapsedOwnerId === c.ownerId ? (row?.ownerLapsedAt ?? null) : null;
      const suspended = c.status === 'disabled' ? (row?.suspendedReason ?? null) : null;
      return [c.id, { owner_status: status, owner_lapsed_at: lapsedAt, suspended_reason: suspended }];
    }),
  );
}

/**
 * Suspends an agent inside the caller's transaction: the one disable path (its tasks end, its
 * tokens are revoked), the reason recorded, `client.suspended` audited. Returns the revocation
 * events to flush after commit; none when it was not active.
 */
export async function suspendInTx(
  deps: LifecycleDeps,
  tx: Tx,
  client: Client,
  reason: SuspendReason,
  by: { userId: string | null; requestId: string; details?: Record<string, unknown> },
) {
  if (client.status !== 'active') return [];
  const now = deps.clock.now();
  const events = await disableClientInTx(deps, tx, client.id, now, by.requestId);
  await deps.lifecycle.markSuspended(client.id, reason, now, tx);
  await deps.audit.append(
    {
      type: 'client.suspended',
      result: 'allowed',
      userId: by.userId,
      clientId: client.id,
      reason,
      requestId: by.requestId,
      details: { ...(by.details ?? {}) },
    },
    now,
    tx,
  );
  return events;
}

/**
 * Maintenance: records newly lapsed owners, forgets lapses that were fixed, and suspends active agents
 * whose owner lapsed at least `grace` seconds ago (reason `owner_lapsed`). Returns the counts.
 */
export async function enforceOwners(
  deps: LifecycleDeps,
  grace: number,
  requestId: string,
): Promise<{ lapsed: number; suspended: number }> {
  const agents = (await deps.clients.list()).filter((c) => c.kind === 'agent' && c.status !== 'disabled');
  const [users, rows] = await Promise.all([deps.users.list(), deps.lifecycle.lifecycleOf(agents.map((c) => c.id))]);
  const byId = new Map(users.map((u) => [u.id, u]));
  const now = deps.clock.now();
  let lapsed = 0;
  let suspended = 0;
  for (const agent of agents) {
    const status = ownerStatusOf(agent, agent.ownerId ? byId.get(agent.ownerId) : null);
    const row = rows.get(agent.id);
    const recorded = row?.ownerLapsedAt != null && row.lapsedOwnerId === agent.ownerId;
    if (status === 'active') {
      if (row?.ownerLapsedAt != null) await deps.db.write((tx) => deps.lifecycle.clearLapse(agent.id, tx));
      continue;
    }
    lapsed += 1;
    if (!recorded) {
      await deps.db.write((tx) => deps.lifecycle.markLapsed(agent.id, agent.ownerId, now, tx));
      continue;
    }
    if (agent.status !== 'active' || (row.ownerLapsedAt ?? now) + grace > now) continue;
    const events = await deps.db.write((tx) =>
      suspendInTx(deps, tx, agent, 'owner_lapsed', {
        userId: null,
        requestId,
        details: { owner_status: status, owner_id: agent.ownerId, owner_lapsed_at: row.ownerLapsedAt },
      }),
    );
    deps.taskService.flush(events);
    suspended += 1;
  }
  return { lapsed, suspended };
}

/** A delegation narrowed: to what it used in the window (`to: "used"`), or to the grants given. */
export const ReduceDelegationSchema = z
  .object({
    to: z.literal('used').optional(),
    grants: z.record(z.url().max(2048), z.array(z.string().min(1).max(128)).max(100)).optional(),
    days: z.number().int().min(1).max(365).default(30),
  })
  .strict()
  .refine((r) => !r.to !== !r.grants, { message: 'send to: "used" or grants (exactly one)' });

/**
 * Narrows a delegation (right-sizing): its person or an administrator keeps a subset of its grants.
 * Tools at dropped resources go with them (reduced to what was used, so do the tools not used where
 * some were); the delegation's live tasks end (reason
 * `delegation_reduced`) so that nothing issued under the wider grant keeps working; narrowed to
 * nothing, the delegation is revoked. Recorded as `delegation.reduced` with what was dropped.
 * Returns the grants kept.
 */
export async function reduceDelegation(
  deps: LifecycleDeps,
  delegationId: string,
  input: { to?: 'used' | undefined; grants?: Record<string, string[]> | undefined; days: number },
  by: Reducer,
): Promise<Record<string, string[]>> {
  const d = await deps.delegations.get(delegationId);
  if (!d || (!by.admin && d.userId !== by.userId)) throw new OAuthError('not_found', 'no such delegation');
  if (d.status !== 'active')
    throw new OAuthError('conflict', `the delegation is ${d.status}: only an active one can be reduced`);
  let keep: Record<string, string[]>;
  /** Reduced to what was used: the MCP tools used at each resource (none recorded there: its tools stay). */
  let usedTools: Record<string, string[]> = {};
  if (input.grants) {
    for (const [resource, scopes] of Object.entries(input.grants)) {
      const held = d.grants[resource];
      if (!held) throw new OAuthError('invalid_request', `grants: the delegation holds nothing at ${resource}`);
      const extra = scopes.filter((s) => !held.includes(s));
      if (extra.length)
        throw new OAuthError('invalid_request', `grants: "${extra.join(' ')}" is not held at ${resource}`);
    }
    keep = Object.fromEntries(Object.entries(input.grants).filter(([, s]) => s.length > 0));
  } else {
    const usage = await agentUsage(deps, d.agentId, input.days);
    const mine = usage.delegations.find((u) => u.delegationId === d.id);
    keep = mine ? usedGrants(mine) : {};
    usedTools = Object.fromEntries(Object.entries(mine?.tools ?? {}).map(([r, t]) => [r, t.used]));
  }
  const dropped = Object.entries(d.grants)
    .map(([r, scopes]) => [r, scopes.filter((s) => !(keep[r] ?? []).includes(s))] as const)
    .filter(([, s]) => s.length > 0);
  const details = (d.authorizationDetails ?? [])
    .filter((t) => keep[t.locations[0]])
    .map((t) => {
      const used = usedTools[t.locations[0]] ?? [];
      return used.length > 0 ? { ...t, actions: t.actions.filter((a) => used.includes(a)) } : t;
    });
  const droppedTools = (d.authorizationDetails ?? []).flatMap((t) => {
    const kept = details.find((k) => k.locations[0] === t.locations[0])?.actions ?? [];
    return t.actions.filter((a) => !kept.includes(a)).map((a) => `${t.locations[0]}#${a}`);
  });
  if (dropped.length === 0 && droppedTools.length === 0) return d.grants;
  if (Object.keys(keep).length === 0) {
    await deps.delegationService.revoke({ userId: by.userId, admin: true }, d.id, by.requestId);
    return {};
  }
  const events = await deps.db.write(async (tx) => {
    if (!(await deps.delegations.narrow(d.id, keep, details, tx))) {
      throw new OAuthError('conflict', 'the delegation is no longer active');
    }
    const now = deps.clock.now();
    await deps.audit.append(
      {
        type: 'delegation.reduced',
        result: 'allowed',
        userId: by.userId,
        clientId: d.agentId,
        delegationId: d.id,
        requestId: by.requestId,
        details: {
          dropped: Object.fromEntries(dropped),
          kept: keep,
          ...(droppedTools.length > 0 ? { dropped_tools: droppedTools } : {}),
          ...(by.address ? { address: by.address } : {}),
        },
      },
      now,
      tx,
    );
    return deps.taskService.endWhere(tx, { delegationId: d.id }, 'delegation_reduced', now, by.requestId);
  });
  deps.taskService.flush(events);
  return keep;
}

/** Cedar's string literal: backslash and quote escaped. */
const cedarString = (s: string) => JSON.stringify(s);

/**
 * The organisation rule for what an agent holds and does not use, as Cedar policy text (a suggestion
 * to paste into the policy engine, never applied here): one `forbid` per resource it never used.
 */
export function suggestedPolicy(agentId: string, unusedResources: string[]): string {
  if (unusedResources.length === 0) return '';
  return unusedResources
    .map(
      (url) =>
        `// ${agentId} got no token for ${url} in the window\nforbid (principal == Errand::Agent::${cedarString(agentId)}, action, resource == Errand::Resource::${cedarString(url)});`,
    )
    .join('\n');
}
