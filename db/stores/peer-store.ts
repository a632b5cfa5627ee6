import { eq } from 'drizzle-orm';
import type { Db, Tx } from '../open.js';
import { a2aPeers, resources } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

/** One skill of a peer's Agent Card, with the scope Errand derived for it (null when its id is no scope token). */
export interface PeerSkill {
  id: string;
  name: string;
  description: string;
  tags: string[];
  scope: string | null;
}

/** The card's security: its named schemes and its requirements (scheme name → scopes, one map per alternative). */
export interface PeerSecurity {
  schemes: Record<string, unknown>;
  requirements: Record<string, string[]>[];
}

/** An A2A peer registered from its Agent Card. */
export interface Peer {
  id: string;
  cardUrl: string;
  name: string;
  /** The JSON-RPC endpoint: the resource (`aud`) tokens for this peer name. */
  endpoint: string;
  /** The card exactly as fetched (parsed JSON). */
  card: Record<string, unknown>;
  signatureVerified: boolean;
  signatureKid: string | null;
  skills: PeerSkill[];
  security: PeerSecurity;
  createdAt: number;
  updatedAt: number;
}

/** The resource row a peer is registered as. */
export interface PeerResource {
  id: string;
  url: string;
  name: string;
  scopes: string[];
  createdAt: number;
}

type PeerRow = typeof a2aPeers.$inferSelect;

function toPeer(row: PeerRow): Peer {
  // The `security_schemes` column holds both halves of the card's security: schemes and requirements.
  const security = parseJson<Partial<PeerSecurity>>(row.securitySchemes, {});
  return {
    id: row.id,
    cardUrl: row.cardUrl,
    name: row.name,
    endpoint: row.endpoint,
    card: parseJson<Record<string, unknown>>(row.card, {}),
    signatureVerified: row.signatureVerified,
    signatureKid: row.signatureKid,
    skills: parseJson<PeerSkill[]>(row.skills, []),
    security: { schemes: security.schemes ?? {}, requirements: security.requirements ?? [] },
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

function toRow(p: Peer): PeerRow {
  return {
    id: p.id,
    cardUrl: p.cardUrl,
    name: p.name,
    endpoint: p.endpoint,
    card: toJson(p.card),
    signatureVerified: p.signatureVerified,
    signatureKid: p.signatureKid,
    skills: toJson(p.skills),
    securitySchemes: toJson(p.security),
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
  };
}

/** A2A peers (`a2a_peers`) and the resources they are registered as. */
export class PeerStore {
  constructor(private readonly db: Db) {}

  async get(id: string): Promise<Peer | null> {
    const [row] = await this.db.q.select().from(a2aPeers).where(eq(a2aPeers.id, id)).limit(1);
    return row ? toPeer(row) : null;
  }

  async getByCardUrl(cardUrl: string): Promise<Peer | null> {
    const [row] = await this.db.q.select().from(a2aPeers).where(eq(a2aPeers.cardUrl, cardUrl)).limit(1);
    return row ? toPeer(row) : null;
  }

  async getByEndpoint(endpoint: string): Promise<Peer | null> {
    const [row] = await this.db.q.select().from(a2aPeers).where(eq(a2aPeers.endpoint, endpoint)).limit(1);
    return row ? toPeer(row) : null;
  }

  async list(): Promise<Peer[]> {
    return (await this.db.q.select().from(a2aPeers).orderBy(a2aPeers.name)).map(toPeer);
  }

  /**
   * Inserts or updates a peer (by card URL) and the resource it is registered as (by URL), in the
   * caller's transaction: a peer is never stored without its resource.
   */
  async save(peer: Peer, resource: PeerResource, tx: Tx): Promise<void> {
    const row = toRow(peer);
    await tx
      .insert(a2aPeers)
      .values(row)
      .onConflictDoUpdate({
        target: a2aPeers.cardUrl,
        set: {
          name: row.name,
          endpoint: row.endpoint,
          card: row.card,
          signatureVerified: row.signatureVerified,
          signatureKid: row.signatureKid,
          skills: row.skills,
          securitySchemes: row.securitySchemes,
          updatedAt: row.updatedAt,
        },
      });
    await tx
      .insert(resources)
      .values({ ...resource, scopes: toJson(resource.scopes), minAssurance: null })
      .onConflictDoUpdate({ target: resources.url, set: { scopes: toJson(resource.scopes) } });
  }
}
