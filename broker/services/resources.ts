import { ASSURANCE_LEVELS, canonicalizeResource, isScopeToken } from '@errand/protocol';
import { z } from 'zod';
import type { Db, Tx } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore, Resource } from '../../db/stores/client-store.js';
import type { DelegationStore, StoredDelegation } from '../../db/stores/delegation-store.js';
import type { GrantStore } from '../../db/stores/grant-store.js';
import { PeerStore } from '../../db/stores/peer-store.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { newId } from '../tokens/random.js';
import { isBuiltInResource, isPublicBuiltInResource } from './built-in-resources.js';

const ScopeName = z.string().max(128).refine(isScopeToken, 'is not a valid scope token');
/** A scope as an administrator sends it: its name alone, or with a plain-language description. */
const ScopeEntry = z.union([
  ScopeName,
  z.object({ name: ScopeName, description: z.string().trim().max(300).optional() }).strict(),
]);
const ScopeEntries = z.array(ScopeEntry).min(1).max(100);

export const CreateResourceSchema = z
  .object({
    url: z.string().max(2048),
    name: z.string().trim().min(1).max(200),
    /** Strings, or `{name, description}` objects: the description is what the approval page shows. */
    scopes: ScopeEntries,
    /** The lowest assurance level an agent must have to get tokens for it (README "Assurance levels"). */
    min_assurance: z.enum(ASSURANCE_LEVELS).optional(),
    /** Quarantined clients may still get tokens for it (README "Quarantine of new registrations and findings"). */
    public: z.boolean().optional(),
  })
  .strict();

export const UpdateResourceSchema = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    /** The full new list; a scope a live delegation holds or asks for cannot be dropped. */
    scopes: ScopeEntries.optional(),
    /** Descriptions to set (an empty string removes one), for scopes the resource has. */
    scope_descriptions: z.record(ScopeName, z.string().trim().max(300)).optional(),
    /** Whether quarantined clients may get tokens for it; Errand's MCP, A2A and UserInfo endpoints always are. */
    public: z.boolean().optional(),
  })
  .strict();

export interface ResourceDeps {
  db: Db;
  clients: ClientStore;
  delegations: DelegationStore;
  grants: GrantStore;
  audit: AuditStore;
  clock: Clock;
  issuer: string;
}

/** Who changed a resource, for its audit event. */
export interface ResourceActor {
  adminId: string;
  requestId: string;
  address?: string;
}

/** Scope names (sorted, unique) and their non-empty descriptions. */
function splitScopes(entries: z.output<typeof ScopeEntries>): {
  scopes: string[];
  descriptions: Record<string, string>;
} {
  const descriptions: Record<string, string> = {};
  const names = entries.map((e) => {
    if (typeof e === 'string') return e;
    if (e.description) descriptions[e.name] = e.description;
    return e.name;
  });
  return { scopes: [...new Set(names)].sort(), descriptions };
}

async function audit(deps: ResourceDeps, tx: Tx, type: string, r: Resource, actor: ResourceActor, now: number) {
  await deps.audit.append(
    {
      type,
      result: 'allowed',
      userId: actor.adminId,
      audience: r.url,
      requestId: actor.requestId,
      details: {
        resource_id: r.id,
        name: r.name,
        public: r.public ?? false,
        ...(actor.address ? { address: actor.address } : {}),
      },
    },
    now,
    tx,
  );
}

/** Registers a resource; recorded as `resource.created` when an administrator does it. */
export async function createResource(
  deps: Pick<ResourceDeps, 'db' | 'clients' | 'audit' | 'clock'>,
  input: z.output<typeof CreateResourceSchema>,
  actor?: ResourceActor,
): Promise<Resource> {
  const url = canonicalizeResource(input.url);
  if (!url) throw new OAuthError('invalid_request', 'url must be an absolute http(s) URL without a fragment');
  if (await deps.clients.getResource(url)) throw new OAuthError('conflict', `resource ${url} already exists`);
  const { scopes, descriptions } = splitScopes(input.scopes);
  const now = deps.clock.now();
  const resource: Resource = {
    id: newId('res'),
    url,
    name: input.name,
    scopes,
    scopeDescriptions: descriptions,
    minAssurance: input.min_assurance ?? null,
    public: input.public ?? false,
    createdAt: now,
  };
  await deps.db.write(async (tx) => {
    await deps.clients.insertResource(resource, tx);
    if (actor) await audit(deps as ResourceDeps, tx, 'resource.created', resource, actor, now);
  });
  return resource;
}

/** Live (pending, or active and not expired) delegations that name `url`, optionally one of `scopes` there. */
function holders(live: StoredDelegation[], url: string, now: number, scopes?: string[]): StoredDelegation[] {
  return live.filter((d) => {
    if (d.status === 'active' && d.expiresAt <= now) return false;
    const named = [...(d.grants[url] ?? []), ...(d.requested.grants?.[url] ?? [])];
    if (!(url in d.grants) && !(url in (d.requested.grants ?? {}))) return false;
    return !scopes || named.some((s) => scopes.includes(s));
  });
}

function heldConflict(what: string, count: number): OAuthError {
  return new OAuthError(
    'conflict',
    `${what}: ${count} live delegation${count === 1 ? '' : 's'} name${count === 1 ? 's' : ''} it; revoke ${count === 1 ? 'it' : 'them'} first (or wait until they expire)`,
  );
}

async function existing(deps: ResourceDeps, id: string, tx?: Tx): Promise<Resource> {
  const r = await deps.clients.getResourceById(id, tx);
  if (!r) throw new OAuthError('not_found', 'no such resource');
  return r;
}

/**
 * Renames a resource, replaces its scopes, or describes them; recorded as `resource.updated`.
 * Dropping a scope that a live delegation holds or asks for is refused (409): it would silently
 * change what a person approved.
 */
export async function updateResource(
  deps: ResourceDeps,
  id: string,
  input: z.output<typeof UpdateResourceSchema>,
  actor: ResourceActor,
): Promise<Resource> {
  return deps.db.write(async (tx) => {
    const r = await existing(deps, id, tx);
    const now = deps.clock.now();
    let scopes = r.scopes;
    let descriptions = { ...(r.scopeDescriptions ?? {}) };
    if (input.scopes) {
      const next = splitScopes(input.scopes);
      const dropped = r.scopes.filter((s) => !next.scopes.includes(s));
      if (dropped.length > 0) {
        const held = holders(await deps.delegations.listLive(tx), r.url, now, dropped);
        if (held.length > 0) throw heldConflict(`cannot remove scope "${dropped.join(' ')}"`, held.length);
      }
      scopes = next.scopes;
      descriptions = Object.fromEntries(Object.entries(descriptions).filter(([s]) => scopes.includes(s)));
      // A scope sent as a bare string keeps the description it had.
      Object.assign(descriptions, next.descriptions);
    }
    for (const [scope, text] of Object.entries(input.scope_descriptions ?? {})) {
      if (!scopes.includes(scope))
        throw new OAuthError('invalid_request', `scope_descriptions: "${scope}" is not a scope of this resource`);
      if (text) descriptions[scope] = text;
      else delete descriptions[scope];
    }
    if (input.public === false && isPublicBuiltInResource(r.url, deps.issuer)) {
      throw new OAuthError('conflict', `${r.url} is one of Errand's own endpoints, which are always public`);
    }
    const updated: Resource = {
      ...r,
      name: input.name ?? r.name,
      scopes,
      scopeDescriptions: descriptions,
      public: input.public ?? r.public ?? false,
    };
    await deps.clients.updateResource(id, updated, tx);
    await audit(deps, tx, 'resource.updated', updated, actor, now);
    return updated;
  });
}

/**
 * Deletes a resource; recorded as `resource.deleted`. Refused (409) while a live delegation names it
 * (its person decided on it: revoke first), for Errand's built-in endpoints and for A2A peers'
 * endpoints. Access tokens still live for it are revoked with it.
 */
export async function deleteResource(deps: ResourceDeps, id: string, actor: ResourceActor): Promise<void> {
  const r = await existing(deps, id);
  if (isBuiltInResource(r.url, deps.issuer)) {
    throw new OAuthError('conflict', `${r.url} is one of Errand's own endpoints and cannot be deleted`);
  }
  if (await new PeerStore(deps.db).getByEndpoint(r.url)) {
    throw new OAuthError('conflict', `${r.url} is an A2A peer's endpoint; it goes with the peer`);
  }
  await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    const held = holders(await deps.delegations.listLive(tx), r.url, now);
    if (held.length > 0) throw heldConflict(`cannot delete ${r.url}`, held.length);
    await deps.clients.deleteResource(id, tx);
    await deps.grants.revokeAudienceTokens(r.url, now, tx);
    await audit(deps, tx, 'resource.deleted', r, actor, now);
  });
}
