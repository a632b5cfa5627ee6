import { isIP } from 'node:net';
import type { Resource } from '../../../db/stores/client-store.js';
import { assuranceNumber } from '../../core/assurance.js';
import { type AssuranceLevel, type Client, credentialKindOf } from '../../core/client.js';
import { isQuarantined } from '../../core/quarantine.js';
import type { WorkloadClaims } from '../../core/workload-claims.js';
import type { EntityJson } from './policy-set.js';
import { ENTITY } from './schema.js';

/** A person as policies see them: account, role and groups. */
export interface UserFacts {
  id: string;
  username: string;
  role: 'user' | 'admin';
  groups: string[];
}

/**
 * An acting client as policies see it: the registration, and what this request's authentication
 * established (assurance level, attested workload claims). Never what an absent party recorded.
 */
export interface AgentFacts {
  client: Client;
  assurance: AssuranceLevel | null;
  workload: WorkloadClaims | null;
}

export type ResourceFacts = Pick<Resource, 'url' | 'name' | 'minAssurance'> & Partial<Pick<Resource, 'public'>>;

/** Where a request came in; policies may read it (`context.door`). */
export type PolicyDoor = 'token' | 'mcp' | 'a2a' | 'web' | 'user_api' | 'backchannel' | 'authzen' | 'registration';

/** The request context (schema type `Request`). */
export interface PolicyContext {
  user: UserFacts;
  /** The agent the delegation is for (the root of the actor chain). */
  agent: AgentFacts;
  /** The agents acting, outermost (the current actor) first. */
  actorChain: string[];
  depth: number;
  scopes: string[];
  tools: string[];
  /** Seconds since the root task started (0 for a new one). */
  taskAge: number;
  /** Epoch seconds. */
  now: number;
  address: string | null;
  dpopBound: boolean;
  door: PolicyDoor;
}

export const uid = (type: string, id: string) => ({ type, id });

export const toolId = (resource: string, tool: string) => `${resource}#${tool}`;

function userEntity(u: UserFacts): EntityJson {
  return {
    uid: uid(ENTITY.user, u.id),
    attrs: { username: u.username, role: u.role },
    parents: [uid(ENTITY.role, u.role), ...u.groups.map((g) => uid(ENTITY.group, g))],
  };
}

function agentEntity(a: AgentFacts): EntityJson {
  const c = a.client;
  const w = a.workload;
  const workload: Record<string, string> = {};
  if (w) {
    for (const [k, v] of Object.entries(w)) if (typeof v === 'string') workload[k] = v;
  }
  return {
    uid: uid(ENTITY.agent, c.id),
    attrs: {
      name: c.name,
      kind: c.kind,
      source: c.source,
      credential: credentialKindOf(c.authMethod),
      assurance: assuranceNumber(a.assurance),
      quarantined: isQuarantined(c),
      ...(c.ownerId ? { owner: { __entity: uid(ENTITY.user, c.ownerId) } } : {}),
      ...(c.trustedIssuerId ? { trusted_issuer: c.trustedIssuerId } : {}),
      workload,
    },
    parents: [],
  };
}

function resourceEntity(r: ResourceFacts): EntityJson {
  return {
    uid: uid(ENTITY.resource, r.url),
    attrs: { name: r.name, public: r.public ?? false, min_assurance: assuranceNumber(r.minAssurance) },
    parents: [],
  };
}

/** The request's entities (deduplicated by uid) and its context record. */
export function buildEntities(
  principal: { agent: AgentFacts } | { user: UserFacts },
  resource: { resource: ResourceFacts } | { tool: { resource: ResourceFacts; name: string } } | { agent: AgentFacts },
  ctx: PolicyContext | null,
): EntityJson[] {
  const out = new Map<string, EntityJson>();
  const add = (e: EntityJson) => {
    const u = e.uid as { type: string; id: string };
    out.set(`${u.type}\u0000${u.id}`, e);
  };
  if (ctx) {
    add(userEntity(ctx.user));
    add(agentEntity(ctx.agent));
  }
  if ('agent' in principal) add(agentEntity(principal.agent));
  else add(userEntity(principal.user));
  if ('resource' in resource) add(resourceEntity(resource.resource));
  else if ('tool' in resource) {
    add(resourceEntity(resource.tool.resource));
    add({
      uid: uid(ENTITY.tool, toolId(resource.tool.resource.url, resource.tool.name)),
      attrs: { name: resource.tool.name },
      parents: [uid(ENTITY.resource, resource.tool.resource.url)],
    });
  } else add(agentEntity(resource.agent));
  return [...out.values()];
}

/** The context record of the schema's `Request` type. */
export function contextRecord(ctx: PolicyContext): Record<string, unknown> {
  const date = new Date(ctx.now * 1000);
  return {
    user: { __entity: uid(ENTITY.user, ctx.user.id) },
    agent: { __entity: uid(ENTITY.agent, ctx.agent.client.id) },
    actor_chain: ctx.actorChain,
    depth: ctx.depth,
    scopes: ctx.scopes,
    tools: ctx.tools,
    task_age: Math.max(0, Math.floor(ctx.taskAge)),
    request_time: Math.floor(ctx.now),
    utc_hour: date.getUTCHours(),
    utc_weekday: date.getUTCDay(),
    ...(ctx.address && isIP(ctx.address)
      ? { source_address: { __extn: { fn: 'ip', arg: plainAddress(ctx.address) } } }
      : {}),
    dpop_bound: ctx.dpopBound,
    door: ctx.door,
  };
}

/** An IPv4 address as itself, also when the socket reports it IPv4-mapped (`::ffff:10.0.0.1`). */
function plainAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? (mapped[1] as string) : address;
}
