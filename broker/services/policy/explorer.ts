import { z } from 'zod';
import type { ClientStore, Resource } from '../../../db/stores/client-store.js';
import type { DelegationStore, StoredDelegation } from '../../../db/stores/delegation-store.js';
import type { PolicyStore } from '../../../db/stores/policy-store.js';
import type { UserStore } from '../../../db/stores/user-store.js';
import { assuranceLevel, type Client } from '../../core/client.js';
import { OAuthError } from '../../core/errors.js';
import type { Clock } from '../../core/ports.js';
import type { AgentFacts, UserFacts } from './entities.js';
import { decideWith, type PolicyEngine, type PolicyVerdict } from './policy-engine.js';
import { type CompiledPolicySet, compilePolicies, PolicyDecider } from './policy-set.js';
import { DEFAULT_POLICIES, type PolicyAction } from './schema.js';

/**
 * The effective-access explorer (README "Organisation policies"): "what can agent X do for user Z,
 * and why", and "who can reach resource Y". It answers from the records (delegations, the
 * registration's assurance level, the person's groups) and asks the policies the way an exchange
 * would: the request time is now, with no source address, no DPoP binding and no workload claims
 * (those exist only in a live request).
 */

export interface ExplorerDeps {
  policy: PolicyEngine;
  policyStore: PolicyStore;
  clients: ClientStore;
  delegations: DelegationStore;
  users: UserStore;
  clock: Clock;
}

/** The actions the explorer asks about for each resource. */
export const EXPLORED_ACTIONS = ['exchange', 'hand_off', 'ask_delegation'] as const satisfies readonly PolicyAction[];

const VersionParam = z.coerce.number().int().min(0).max(1_000_000_000).optional();

/** `GET /api/admin/access/agent`: an agent, a person (id or username), optionally a saved policy version. */
export const AgentAccessQuerySchema = z
  .object({
    agent_id: z.string().min(1).max(200),
    user: z.string().min(1).max(200),
    version: VersionParam,
  })
  .strict();

/** `GET /api/admin/access/resource`: a registered resource's URL, optionally a saved policy version. */
export const ResourceAccessQuerySchema = z
  .object({ resource: z.string().min(1).max(2048), version: VersionParam })
  .strict();

const VerdictViewSchema = z
  .object({
    decision: z.enum(['allow', 'deny']),
    /** The policies that decided: forbids on a deny, permits on an allow. */
    policies: z.array(z.string()),
    errors: z.array(z.object({ policy: z.string().nullable(), message: z.string() }).strict()),
  })
  .strict();

const CoveringSchema = z.object({ delegation_id: z.string(), scopes: z.array(z.string()) }).strict();

export const AgentAccessViewSchema = z
  .object({
    agent: z.object({ id: z.string(), name: z.string() }).strict(),
    user: z.object({ id: z.string(), username: z.string(), groups: z.array(z.string()) }).strict(),
    /** The policy version the verdicts come from (0: the built-in default). */
    version: z.number().int(),
    resources: z.array(
      z
        .object({
          url: z.string(),
          name: z.string(),
          scopes: z.array(z.string()),
          actions: z.array(
            z
              .object({
                action: z.enum(EXPLORED_ACTIONS),
                /** The person's active delegations to the agent that cover the resource. */
                delegations: z.array(CoveringSchema),
                policy: VerdictViewSchema,
                /** Both a delegation and the policies allow it. */
                allowed: z.boolean(),
              })
              .strict(),
          ),
        })
        .strict(),
    ),
  })
  .strict();
export type AgentAccessView = z.infer<typeof AgentAccessViewSchema>;

export const ResourceAccessViewSchema = z
  .object({
    resource: z.object({ url: z.string(), name: z.string(), scopes: z.array(z.string()) }).strict(),
    version: z.number().int(),
    holders: z.array(
      z
        .object({
          delegation_id: z.string(),
          agent_id: z.string(),
          agent_name: z.string().nullable(),
          user_id: z.string(),
          username: z.string().nullable(),
          scopes: z.array(z.string()),
          expires_at: z.number().int(),
          policy: VerdictViewSchema,
        })
        .strict(),
    ),
  })
  .strict();
export type ResourceAccessView = z.infer<typeof ResourceAccessViewSchema>;

/** Compiled saved versions by text (a version's text never changes), so each is parsed once. */
const compiledByText = new Map<string, CompiledPolicySet>();
const MAX_COMPILED = 32;

/** The decider for a saved version, the built-in default (0), or the enforced one (undefined). */
async function deciderFor(
  deps: Pick<ExplorerDeps, 'policy' | 'policyStore'>,
  version: number | undefined,
): Promise<{ version: number; decider: PolicyDecider }> {
  if (version === undefined) {
    const current = deps.policy.current;
    return { version: current.version, decider: new PolicyDecider(current.set) };
  }
  let text = DEFAULT_POLICIES;
  if (version !== 0) {
    const row = await deps.policyStore.get(version);
    if (!row) throw new OAuthError('not_found', `no policy version ${version}`);
    text = row.text;
  }
  let set = compiledByText.get(text);
  if (!set) {
    const compiled = compilePolicies(text);
    if (!compiled.ok) {
      throw new OAuthError('invalid_request', `policy version ${version} does not validate against this schema`);
    }
    set = compiled.set;
    if (compiledByText.size >= MAX_COMPILED) compiledByText.delete(compiledByText.keys().next().value as string);
    compiledByText.set(text, set);
  }
  return { version, decider: new PolicyDecider(set) };
}

const agentFactsOf = (client: Client): AgentFacts => ({ client, assurance: assuranceLevel(client), workload: null });

function verdictView(v: PolicyVerdict) {
  return {
    decision: v.allowed ? ('allow' as const) : ('deny' as const),
    policies: v.policies,
    errors: v.errors.map((e) => ({ policy: e.policy, message: e.message })),
  };
}

/** Delegations still in force at `now`. */
const inForce = (d: StoredDelegation, now: number) => d.status === 'active' && d.expiresAt > now;

function ask(
  decider: PolicyDecider,
  version: number,
  action: PolicyAction,
  agent: AgentFacts,
  user: UserFacts,
  resource: Resource,
  scopes: string[],
  now: number,
): PolicyVerdict {
  return decideWith(decider, version, {
    action,
    principal: { agent },
    resource: { resource: { url: resource.url, name: resource.name, minAssurance: resource.minAssurance ?? null } },
    context: {
      user,
      agent,
      actorChain: [agent.client.id],
      // A hand-off is asked one level down, with the agent acting below itself.
      depth: action === 'hand_off' ? 1 : 0,
      scopes,
      tools: [],
      taskAge: 0,
      now,
      address: null,
      dpopBound: false,
      door: 'token',
    },
  });
}

async function personOf(deps: ExplorerDeps, idOrName: string): Promise<UserFacts> {
  const found = (await deps.users.get(idOrName)) ?? (await deps.users.findByUsername(idOrName));
  const facts = found ? await deps.policy.userFacts(found.id) : null;
  if (!facts) throw new OAuthError('not_found', `no person with the id or username "${idOrName}"`);
  return facts;
}

/** What an agent may do for a person on each registered resource, and why (delegations and policies). */
export async function exploreAgentAccess(
  deps: ExplorerDeps,
  q: z.output<typeof AgentAccessQuerySchema>,
): Promise<AgentAccessView> {
  const client = await deps.clients.get(q.agent_id);
  if (!client) throw new OAuthError('not_found', `no client with the id "${q.agent_id}"`);
  const user = await personOf(deps, q.user);
  const { version, decider } = await deciderFor(deps, q.version);
  const now = deps.clock.now();
  const agent = agentFactsOf(client);
  const delegations = (await deps.delegations.activeFor(client.id, user.id)).filter((d) => inForce(d, now));
  const resources = await deps.clients.listResources();
  return {
    agent: { id: client.id, name: client.name },
    user: { id: user.id, username: user.username, groups: user.groups },
    version,
    resources: resources.map((r) => {
      const covering = delegations
        .filter((d) => d.grants[r.url] !== undefined)
        .map((d) => ({ delegation_id: d.id, scopes: d.grants[r.url] ?? [] }));
      const scopes = [...new Set(covering.flatMap((d) => d.scopes))].sort();
      return {
        url: r.url,
        name: r.name,
        scopes: r.scopes,
        actions: EXPLORED_ACTIONS.map((action) => {
          // Asking for a delegation needs none yet; the scopes asked about are the resource's.
          const needsDelegation = action !== 'ask_delegation';
          // A hand-off needs a delegation that allows at least one level below the agent.
          const usable =
            action === 'hand_off'
              ? covering.filter((c) => (delegations.find((d) => d.id === c.delegation_id)?.maxDepth ?? 0) >= 1)
              : covering;
          const v = ask(decider, version, action, agent, user, r, needsDelegation ? scopes : r.scopes, now);
          return {
            action,
            delegations: needsDelegation ? usable : [],
            policy: verdictView(v),
            allowed: v.allowed && (!needsDelegation || usable.length > 0),
          };
        }),
      };
    }),
  };
}

/** Every agent holding a delegation in force that covers a resource, with the policies' verdict for its person. */
export async function exploreResourceAccess(
  deps: ExplorerDeps,
  q: z.output<typeof ResourceAccessQuerySchema>,
): Promise<ResourceAccessView> {
  const resource = await deps.clients.getResource(q.resource);
  if (!resource) throw new OAuthError('not_found', `no registered resource at "${q.resource}"`);
  const { version, decider } = await deciderFor(deps, q.version);
  const now = deps.clock.now();
  const held = (await deps.delegations.list({ status: 'active', limit: 5000 })).filter(
    (d) => inForce(d, now) && d.grants[resource.url] !== undefined,
  );
  const clients = new Map<string, Client | null>();
  const users = new Map<string, UserFacts | null>();
  const holders: ResourceAccessView['holders'] = [];
  for (const d of held) {
    if (!clients.has(d.agentId)) clients.set(d.agentId, await deps.clients.get(d.agentId));
    if (!users.has(d.userId)) users.set(d.userId, await deps.policy.userFacts(d.userId));
    const client = clients.get(d.agentId);
    const user = users.get(d.userId);
    const scopes = d.grants[resource.url] ?? [];
    const v =
      client && user
        ? verdictView(ask(decider, version, 'exchange', agentFactsOf(client), user, resource, scopes, now))
        : {
            decision: 'deny' as const,
            policies: [],
            errors: [{ policy: null, message: 'the agent or person is gone' }],
          };
    holders.push({
      delegation_id: d.id,
      agent_id: d.agentId,
      agent_name: client?.name ?? null,
      user_id: d.userId,
      username: user?.username ?? null,
      scopes,
      expires_at: d.expiresAt,
      policy: v,
    });
  }
  return { resource: { url: resource.url, name: resource.name, scopes: resource.scopes }, version, holders };
}
