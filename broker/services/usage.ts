import { parseScope } from '@errand/protocol';
import { z } from 'zod';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { DelegationStore, StoredDelegation } from '../../db/stores/delegation-store.js';
import type { IssuedUse, LifecycleStore } from '../../db/stores/lifecycle-store.js';
import type { ToolDetail } from '../core/delegation.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';

/**
 * What an agent was granted against what it used over the last N days (README "Agent lifecycle:
 * owners, certification and right-sizing"). Granted: its client `scope`, and per active delegation
 * the scopes per resource and the MCP tools (RFC 9396 `mcp_tool` details). Used: the audience, scope
 * and tools of the tokens issued to it since the cutoff. Granted-but-unused is the right-sizing
 * finding; certification snapshots and the right-sizing view both read it from here.
 *
 * Three reads: the client, its delegations, and one grouped query over the tokens issued to it or
 * under its delegations (a sub-agent's work uses the delegation it was handed down). Token rows
 * are kept for ERRAND_RETENTION_TOKENS past their expiry, so `observed_from` says how far back the
 * rows actually reach when that is shorter than the window.
 */

export const UsageQuerySchema = z.object({
  days: z.coerce.number().int().min(1).max(365).default(30),
});

export interface UsageDeps {
  clients: ClientStore;
  delegations: DelegationStore;
  lifecycle: LifecycleStore;
  clock: Clock;
  /** Seconds token rows are kept past their expiry (ERRAND_RETENTION_TOKENS). */
  tokenRetention: number;
}

export interface Split {
  granted: string[];
  used: string[];
  unused: string[];
}

export interface DelegationUsage {
  delegationId: string;
  userId: string;
  /** Per resource URL: its scopes granted vs used. */
  resources: Record<string, Split>;
  /** Per resource URL: its MCP tools granted vs used. */
  tools: Record<string, Split>;
  lastUsedAt: number | null;
}

export interface AgentUsage {
  agentId: string;
  days: number;
  since: number;
  /** The earliest time the token rows still cover (later than `since` when retention is shorter). */
  observedFrom: number;
  /** The client's own `scope` (null: no client-level limit) vs every scope it used. */
  clientScope: Split | null;
  /** Every resource it holds (client resources and delegated ones) vs those it got tokens for. */
  resources: Split;
  delegations: DelegationUsage[];
  lastUsedAt: number | null;
  /** True when something granted went unused. */
  hasUnused: boolean;
}

const split = (granted: Iterable<string>, used: Set<string>): Split => {
  const g = [...new Set(granted)].sort();
  return { granted: g, used: g.filter((x) => used.has(x)), unused: g.filter((x) => !used.has(x)) };
};

const toolsOf = (details: ToolDetail[] | null, resource: string) =>
  (details ?? []).filter((d) => d.type === 'mcp_tool' && d.locations[0] === resource).flatMap((d) => d.actions);

function parseDetails(text: string | null): ToolDetail[] | null {
  if (!text) return null;
  try {
    return JSON.parse(text) as ToolDetail[];
  } catch {
    return null;
  }
}

/** The usage of one delegation, from the token groups issued under it. */
function delegationUsage(d: StoredDelegation, uses: IssuedUse[]): DelegationUsage {
  const mine = uses.filter((u) => u.delegationId === d.id);
  const resources: Record<string, Split> = {};
  const tools: Record<string, Split> = {};
  for (const [resource, scopes] of Object.entries(d.grants)) {
    const here = mine.filter((u) => u.audience === resource);
    resources[resource] = split(scopes, new Set(here.flatMap((u) => parseScope(u.scope) ?? [])));
    const granted = toolsOf(d.authorizationDetails, resource);
    if (granted.length > 0) {
      const used = here.flatMap((u) => toolsOf(parseDetails(u.authorizationDetails), resource));
      tools[resource] = split(granted, new Set(used));
    }
  }
  const last = mine.reduce<number | null>((m, u) => Math.max(m ?? 0, u.lastIssuedAt), null);
  return { delegationId: d.id, userId: d.userId, resources, tools, lastUsedAt: last };
}

/** Granted vs used for an agent over the last `days` days; not_found for a client that is not an agent. */
export async function agentUsage(deps: UsageDeps, agentId: string, days: number): Promise<AgentUsage> {
  const client = await deps.clients.get(agentId);
  if (client?.kind !== 'agent') throw new OAuthError('not_found', 'no such agent');
  const now = deps.clock.now();
  const since = now - days * 86_400;
  const all = await deps.delegations.listForAgent(agentId);
  const active = all.filter((d) => d.status === 'active' && d.expiresAt > now);
  // A delegation is used by whoever works under it (sub-agents too); the agent's own scope and
  // resources only by the agent itself.
  const uses = await deps.lifecycle.usesSince(
    agentId,
    active.map((d) => d.id),
    since,
  );
  const delegations = active.map((d) => delegationUsage(d, uses));
  const own = uses.filter((u) => u.clientId === agentId);
  const usedScopes = new Set(own.flatMap((u) => parseScope(u.scope) ?? []));
  const usedResources = new Set([
    ...own.map((u) => u.audience),
    ...delegations.flatMap((d) =>
      Object.entries(d.resources)
        .filter(([, x]) => x.used.length > 0)
        .map(([r]) => r),
    ),
  ]);
  const resources = split([...client.resources, ...active.flatMap((d) => Object.keys(d.grants))], usedResources);
  const clientScope = client.scope ? split(client.scope, usedScopes) : null;
  const lastToken = own.reduce<number | null>((m, u) => Math.max(m ?? 0, u.lastIssuedAt), null);
  const lastUsedAt = Math.max(client.lastUsedAt ?? 0, lastToken ?? 0) || null;
  const hasUnused =
    resources.unused.length > 0 ||
    (clientScope?.unused.length ?? 0) > 0 ||
    delegations.some(
      (d) =>
        Object.values(d.resources).some((s) => s.unused.length > 0) ||
        Object.values(d.tools).some((s) => s.unused.length > 0),
    );
  return {
    agentId,
    days,
    since,
    observedFrom: Math.max(since, now - deps.tokenRetention),
    clientScope,
    resources,
    delegations,
    lastUsedAt,
    hasUnused,
  };
}

/** What a delegation narrowed to its used part keeps: the used scopes per resource (resources with none go). */
export function usedGrants(d: DelegationUsage): Record<string, string[]> {
  return Object.fromEntries(
    Object.entries(d.resources)
      .filter(([, s]) => s.used.length > 0)
      .map(([r, s]) => [r, s.used]),
  );
}

/** The wire view (snake_case) of an agent's usage. */
export function usageView(u: AgentUsage) {
  return {
    agent_id: u.agentId,
    days: u.days,
    since: u.since,
    observed_from: u.observedFrom,
    last_used_at: u.lastUsedAt,
    has_unused: u.hasUnused,
    client_scope: u.clientScope,
    resources: u.resources,
    delegations: u.delegations.map((d) => ({
      delegation_id: d.delegationId,
      user_id: d.userId,
      resources: d.resources,
      tools: d.tools,
      last_used_at: d.lastUsedAt,
      reduce_to: usedGrants(d),
    })),
  };
}
