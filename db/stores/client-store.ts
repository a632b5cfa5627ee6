import type { AuthMethod, GrantType } from '@errand/protocol';
import { and, count, eq, isNotNull, isNull, lt, or } from 'drizzle-orm';
import type { AssuranceLevel, Client } from '../../broker/core/client.js';
import { affected, type Db, type Tx } from '../open.js';
import { insertRow, selectOneBy } from '../prepared.js';
import { clients, resources, usedAssertions } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

const clientById = selectOneBy(clients, clients.id);
/** Seconds within which a client's last use is not recorded again. */
const TOUCH_GRANULARITY = 60;
const resourceByUrl = selectOneBy(resources, resources.url);
const insertAssertion = insertRow(usedAssertions, { ignoreConflict: true });

type ClientRow = typeof clients.$inferSelect;

function toClient(row: ClientRow): Client {
  return {
    id: row.id,
    kind: row.kind,
    name: row.name,
    ownerId: row.ownerId,
    source: row.source,
    status: row.status,
    authMethod: row.tokenEndpointAuthMethod as AuthMethod,
    secretHash: row.secretHash,
    jwks: parseJson(row.jwks, null),
    jwksUri: row.jwksUri,
    redirectUris: parseJson<string[]>(row.redirectUris, []),
    grantTypes: parseJson<GrantType[]>(row.grantTypes, []),
    scope: parseJson<string[] | null>(row.scope, null),
    resources: parseJson<string[]>(row.resources, []),
    applicationType: (row.applicationType as Client['applicationType']) ?? null,
    metadata: parseJson<Record<string, unknown>>(row.metadata, {}),
    createdAt: row.createdAt,
    lastUsedAt: row.lastUsedAt,
    expiresAt: row.expiresAt,
    cachedUntil: row.cachedUntil,
    recordedAssurance: (row.assuranceLevel as Client['recordedAssurance']) ?? null,
    trustedIssuerId: row.trustedIssuerId,
    quarantinedAt: row.quarantinedAt,
  };
}

function toRow(c: Client): ClientRow {
  return {
    id: c.id,
    kind: c.kind,
    name: c.name,
    ownerId: c.ownerId,
    source: c.source,
    status: c.status,
    tokenEndpointAuthMethod: c.authMethod,
    secretHash: c.secretHash,
    jwks: c.jwks ? toJson(c.jwks) : null,
    jwksUri: c.jwksUri,
    redirectUris: toJson(c.redirectUris),
    grantTypes: toJson(c.grantTypes),
    scope: c.scope ? toJson(c.scope) : null,
    resources: toJson(c.resources),
    applicationType: c.applicationType,
    metadata: toJson(c.metadata),
    createdAt: c.createdAt,
    lastUsedAt: c.lastUsedAt,
    expiresAt: c.expiresAt,
    cachedUntil: c.cachedUntil,
    assuranceLevel: c.recordedAssurance ?? null,
    trustedIssuerId: c.trustedIssuerId ?? null,
    quarantinedAt: c.quarantinedAt ?? null,
  };
}

export type ClientPatch = Partial<
  Pick<Client, 'name' | 'ownerId' | 'scope' | 'grantTypes' | 'resources' | 'jwks' | 'jwksUri'>
>;

export interface Resource {
  id: string;
  url: string;
  name: string;
  scopes: string[];
  /** A plain-language description per scope (README "Web UI"); a scope without one is shown as itself. */
  scopeDescriptions?: Record<string, string>;
  /** The lowest assurance level an agent needs to get tokens for it. */
  minAssurance?: AssuranceLevel | null;
  /** Quarantined clients may still get tokens for it (README "Quarantine of new registrations and findings"). */
  public?: boolean;
  createdAt: number;
}

function toResource(row: typeof resources.$inferSelect): Resource {
  return {
    ...row,
    scopes: parseJson<string[]>(row.scopes, []),
    scopeDescriptions: parseJson<Record<string, string>>(row.scopeDescriptions, {}),
    minAssurance: (row.minAssurance as AssuranceLevel | null) ?? null,
  };
}

export class ClientStore {
  constructor(private readonly db: Db) {}

  async get(id: string): Promise<Client | null> {
    const row = await clientById(this.db.q, id);
    return row ? toClient(row) : null;
  }

  async list(): Promise<Client[]> {
    return (await this.db.q.select().from(clients).orderBy(clients.createdAt)).map(toClient);
  }

  async insert(client: Client, tx?: Tx): Promise<void> {
    await (tx ?? this.db.q).insert(clients).values(toRow(client));
  }

  /** Inserts or refreshes a client known by its metadata document URL. */
  async upsertMetadataClient(client: Client, tx?: Tx): Promise<void> {
    const row = toRow(client);
    const upsert = (t: Tx) =>
      t
        .insert(clients)
        .values(row)
        .onConflictDoUpdate({
          target: clients.id,
          set: {
            name: row.name,
            tokenEndpointAuthMethod: row.tokenEndpointAuthMethod,
            jwks: row.jwks,
            jwksUri: row.jwksUri,
            redirectUris: row.redirectUris,
            grantTypes: row.grantTypes,
            scope: row.scope,
            applicationType: row.applicationType,
            metadata: row.metadata,
            cachedUntil: row.cachedUntil,
          },
        });
    // The quarantine is not in the update: a refreshed document keeps what was decided about the client.
    if (tx) await upsert(tx);
    else await this.db.write((t) => upsert(t));
  }

  async update(id: string, patch: Partial<Pick<Client, 'status' | 'ownerId' | 'name'>>): Promise<Client | null> {
    if (Object.keys(patch).length > 0)
      await this.db.write((tx) => tx.update(clients).set(patch).where(eq(clients.id, id)));
    return this.get(id);
  }

  /** Changes what an administrator may edit (name, owner, scopes, grant types, resources, keys) in the caller's transaction. */
  async patch(id: string, patch: ClientPatch, tx: Tx): Promise<void> {
    const set: Partial<ClientRow> = {
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.ownerId !== undefined ? { ownerId: patch.ownerId } : {}),
      ...(patch.scope !== undefined ? { scope: patch.scope ? toJson(patch.scope) : null } : {}),
      ...(patch.grantTypes !== undefined ? { grantTypes: toJson(patch.grantTypes) } : {}),
      ...(patch.resources !== undefined ? { resources: toJson(patch.resources) } : {}),
      ...(patch.jwks !== undefined ? { jwks: patch.jwks ? toJson(patch.jwks) : null } : {}),
      ...(patch.jwksUri !== undefined ? { jwksUri: patch.jwksUri } : {}),
    };
    if (Object.keys(set).length > 0) await tx.update(clients).set(set).where(eq(clients.id, id));
  }

  /** Removes a client's row; false when there was none. */
  async delete(id: string, tx: Tx): Promise<boolean> {
    return affected(await tx.delete(clients).where(eq(clients.id, id))) === 1;
  }

  /**
   * Admits a quarantined client: false when it was not quarantined (already admitted, or never),
   * so that two administrators cannot both record an admission.
   */
  async admit(id: string, tx: Tx): Promise<boolean> {
    const res = await tx
      .update(clients)
      .set({ quarantinedAt: null })
      .where(and(eq(clients.id, id), isNotNull(clients.quarantinedAt)));
    return affected(res) === 1;
  }

  /** Records the assurance level (and vouching issuer) a workload agent authenticated at. */
  async recordAssurance(id: string, level: AssuranceLevel, trustedIssuerId: string | null): Promise<void> {
    await this.db.write((tx) =>
      tx.update(clients).set({ assuranceLevel: level, trustedIssuerId }).where(eq(clients.id, id)),
    );
  }

  /** Moves a client from one status to another; false when it was not in `from` (a concurrent change). */
  async setStatusFrom(id: string, from: Client['status'], to: Client['status'], tx: Tx): Promise<boolean> {
    const res = await tx
      .update(clients)
      .set({ status: to })
      .where(and(eq(clients.id, id), eq(clients.status, from)));
    return affected(res) === 1;
  }

  /** Replaces the client's free-form metadata (exchange rules, DPoP requirement). */
  async setMetadata(id: string, metadata: Record<string, unknown>, tx: Tx): Promise<void> {
    await tx
      .update(clients)
      .set({ metadata: toJson(metadata) })
      .where(eq(clients.id, id));
  }

  async setStatus(id: string, status: Client['status'], tx: Tx): Promise<void> {
    await tx.update(clients).set({ status }).where(eq(clients.id, id));
  }

  /**
   * Records use; a dynamically registered client that is used no longer expires as unused. The
   * time is kept to the minute: a client used again within a minute is not written again.
   */
  async touch(client: Pick<Client, 'id' | 'lastUsedAt' | 'expiresAt'>, now: number): Promise<void> {
    if (client.lastUsedAt !== null && client.expiresAt === null && now - client.lastUsedAt < TOUCH_GRANULARITY) return;
    const id = client.id;
    await this.db.write((tx) => tx.update(clients).set({ lastUsedAt: now, expiresAt: null }).where(eq(clients.id, id)));
  }

  async countActiveBySource(source: Client['source'], tx?: Tx): Promise<number> {
    const [row] = await (tx ?? this.db.q)
      .select({ n: count() })
      .from(clients)
      .where(and(eq(clients.source, source), eq(clients.status, 'active')));
    return row?.n ?? 0;
  }

  /** Dynamically registered clients never used before their expiry are removed (RFC 7591 §3 abuse). */
  async pruneUnused(now: number): Promise<number> {
    const res = await this.db.write((tx) =>
      tx.delete(clients).where(and(eq(clients.source, 'dcr'), isNull(clients.lastUsedAt), lt(clients.expiresAt, now))),
    );
    return affected(res);
  }

  /**
   * Remembers a client assertion's `jti` until it expires. Returns false when it was seen before:
   * the primary key makes this atomic across every process sharing the database.
   */
  async rememberAssertion(clientId: string, jti: string, expiresAt: number, now: number): Promise<boolean> {
    // Expired entries are removed by the retention pass (maintenance), not on this path.
    void now;
    return this.db.write(
      async (tx) => affected(await insertAssertion(tx, { key: `${clientId} ${jti}`, expiresAt })) === 1,
    );
  }

  // Resources -----------------------------------------------------------------------------------

  async getResource(url: string): Promise<Resource | null> {
    const row = await resourceByUrl(this.db.q, url);
    return row ? toResource(row) : null;
  }

  async listResources(): Promise<Resource[]> {
    const rows = await this.db.q.select().from(resources).orderBy(resources.url);
    return rows.map(toResource);
  }

  async getResourceById(id: string, tx?: Tx): Promise<Resource | null> {
    const [row] = await (tx ?? this.db.q).select().from(resources).where(eq(resources.id, id)).limit(1);
    return row ? toResource(row) : null;
  }

  async insertResource(r: Resource, tx?: Tx): Promise<void> {
    const row = {
      ...r,
      minAssurance: r.minAssurance ?? null,
      public: r.public ?? false,
      scopes: toJson(r.scopes),
      scopeDescriptions: toJson(r.scopeDescriptions ?? {}),
    };
    if (tx) await tx.insert(resources).values(row);
    else await this.db.write((t) => t.insert(resources).values(row));
  }

  /** Changes a resource's name, scopes and their descriptions, and whether it is public. */
  async updateResource(
    id: string,
    patch: Pick<Resource, 'name' | 'scopes' | 'scopeDescriptions' | 'public'>,
    tx: Tx,
  ): Promise<void> {
    await tx
      .update(resources)
      .set({
        name: patch.name,
        scopes: toJson(patch.scopes),
        scopeDescriptions: toJson(patch.scopeDescriptions ?? {}),
        ...(patch.public !== undefined ? { public: patch.public } : {}),
      })
      .where(eq(resources.id, id));
  }

  /** Marks a resource public (Errand's own endpoints, at start-up). */
  async markPublic(url: string): Promise<void> {
    await this.db.write((tx) =>
      tx
        .update(resources)
        .set({ public: true })
        .where(and(eq(resources.url, url), eq(resources.public, false))),
    );
  }

  /** Gives a resource scope descriptions when it has none yet (built-in resources of older databases). */
  async describeIfUndescribed(url: string, scopeDescriptions: Record<string, string>): Promise<void> {
    await this.db.write((tx) =>
      tx
        .update(resources)
        .set({ scopeDescriptions: toJson(scopeDescriptions) })
        .where(
          and(eq(resources.url, url), or(isNull(resources.scopeDescriptions), eq(resources.scopeDescriptions, '{}'))),
        ),
    );
  }

  async deleteResource(id: string, tx: Tx): Promise<void> {
    await tx.delete(resources).where(eq(resources.id, id));
  }

  /** Every scope any resource offers (the AS metadata `scopes_supported`). */
  async allScopes(): Promise<string[]> {
    const all = new Set<string>();
    for (const r of await this.listResources()) for (const s of r.scopes) all.add(s);
    return [...all].sort();
  }
}
