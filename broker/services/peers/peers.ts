/**
 * A2A peers: other agents registered from their Agent Card. Registration fetches and checks the
 * card (peer-card.ts), records its skills and security, and registers its JSON-RPC endpoint as a
 * resource, so that delegations and task tokens can name it as their audience (RFC 8707).
 */

import type { Db } from '../../../db/open.js';
import type { AuditStore } from '../../../db/stores/audit-store.js';
import type { ClientStore } from '../../../db/stores/client-store.js';
import { type Peer, PeerStore } from '../../../db/stores/peer-store.js';
import { OAuthError } from '../../core/errors.js';
import type { Clock } from '../../core/ports.js';
import type { Engine } from '../../engine.js';
import type { Logger } from '../../log.js';
import { newId } from '../../tokens/random.js';
import {
  A2A_INVOKE_SCOPE,
  checkEndpointUrl,
  describeCard,
  type FetchRules,
  fetchJson,
  normalizeCardUrl,
  unsignedField,
  verifyCardSignatures,
} from './peer-card.js';

export interface PeerRegistryDeps {
  db: Db;
  peers: PeerStore;
  clients: Pick<ClientStore, 'getResource'>;
  audit: AuditStore;
  clock: Clock;
  log: Logger;
  fetch: FetchRules;
}

/** Who registers: an administrator, for the audit trail. */
export interface PeerActor {
  userId: string;
  requestId: string;
}

/** How a refresh may change a peer. */
export interface RefreshOptions {
  /**
   * Accept an unsigned card for a peer whose stored card is signed (A2A §8.4). Off by default: a
   * signed peer does not silently become unsigned.
   */
  acceptUnsigned?: boolean;
}

/** The wire view of a peer. */
export function peerView(p: Peer) {
  return {
    peer_id: p.id,
    card_url: p.cardUrl,
    name: p.name,
    endpoint: p.endpoint,
    signature_verified: p.signatureVerified,
    signature_kid: p.signatureKid,
    /** An unsigned card could have been altered by anyone between the peer and Errand. */
    risk: p.signatureVerified ? null : 'unsigned_card',
    skills: p.skills,
    security_schemes: p.security.schemes,
    security_requirements: p.security.requirements,
    scopes: peerScopes(p),
    created_at: p.createdAt,
    updated_at: p.updatedAt,
  };
}

/** The scopes a peer's resource offers: `a2a:invoke` and `a2a:<skill id>` per skill. */
export function peerScopes(p: Pick<Peer, 'skills'>): string[] {
  const skills = p.skills.map((s) => s.scope).filter((s): s is string => s !== null);
  return [...new Set([A2A_INVOKE_SCOPE, ...skills])].sort();
}

export class PeerRegistry {
  constructor(private readonly deps: PeerRegistryDeps) {}

  list(): Promise<Peer[]> {
    return this.deps.peers.list();
  }

  get(id: string): Promise<Peer | null> {
    return this.deps.peers.get(id);
  }

  /** Registers a peer from its card URL; registering the same URL again refreshes it. */
  async register(cardUrl: string, by: PeerActor, opts: RefreshOptions = {}): Promise<{ peer: Peer; created: boolean }> {
    const url = normalizeCardUrl(cardUrl);
    const existing = await this.deps.peers.getByCardUrl(url);
    return { peer: await this.load(url, existing, by, opts), created: existing === null };
  }

  /** Fetches a registered peer's card again and updates the peer and its resource. */
  async refresh(id: string, by: PeerActor, opts: RefreshOptions = {}): Promise<Peer> {
    const existing = await this.deps.peers.get(id);
    if (!existing) throw new OAuthError('not_found', 'no such peer');
    return this.load(existing.cardUrl, existing, by, opts);
  }

  private async load(cardUrl: string, existing: Peer | null, by: PeerActor, opts: RefreshOptions): Promise<Peer> {
    const { deps } = this;
    try {
      const raw = await fetchJson(cardUrl, 'the Agent Card', deps.fetch);
      const card = describeCard(raw);
      await checkEndpointUrl(card.endpoint, "the Agent Card's JSON-RPC endpoint", deps.fetch.allowPrivate);
      let kid: string | null = null;
      if (card.signatures.length > 0) {
        const signedRaw = raw as Record<string, unknown>;
        const verified = await verifyCardSignatures(signedRaw, card.signatures, cardUrl, deps.fetch);
        kid = verified.kid;
        const field = verified.wholeCard ? null : unsignedField(signedRaw, card);
        if (field) {
          throw new OAuthError(
            'invalid_request',
            `the Agent Card signature does not cover "${field}": only A2A 1.0 card fields can be signed`,
          );
        }
      }
      // Once a peer has presented a verified signature, an unsigned card may be anyone's: refused
      // unless an administrator accepts it explicitly. (An invalid signature is refused above.)
      const downgraded = existing?.signatureVerified === true && kid === null;
      if (downgraded && !opts.acceptUnsigned) {
        throw new OAuthError(
          'conflict',
          'the peer presented a signed Agent Card before and this one is unsigned: it is refused and the stored card is kept (to accept it, refresh with accept_unsigned: true)',
        );
      }
      // A card must not take over a resource that is not its own (another peer's, or an MCP server's).
      const owner = await deps.peers.getByEndpoint(card.endpoint);
      const resource = await deps.clients.getResource(card.endpoint);
      if ((owner && owner.cardUrl !== cardUrl) || (resource && !owner)) {
        throw new OAuthError(
          'conflict',
          `the card's endpoint ${card.endpoint} is already registered as another resource; a peer needs an endpoint of its own`,
        );
      }
      const now = deps.clock.now();
      const peer: Peer = {
        id: existing?.id ?? newId('peer'),
        cardUrl,
        name: card.name,
        endpoint: card.endpoint,
        card: raw as Record<string, unknown>,
        signatureVerified: kid !== null,
        signatureKid: kid,
        skills: card.skills,
        security: card.security,
        createdAt: existing?.createdAt ?? now,
        updatedAt: now,
      };
      // Scopes an administrator added by hand (not `a2a:`) survive a refresh; stale skill scopes do not.
      const kept = (resource?.scopes ?? []).filter((s) => !s.startsWith('a2a:'));
      const scopes = [...new Set([...peerScopes(peer), ...kept])].sort();
      await deps.db.write(async (tx) => {
        await deps.peers.save(
          peer,
          {
            id: resource?.id ?? newId('res'),
            url: card.endpoint,
            name: `A2A peer ${card.name}`,
            scopes,
            createdAt: now,
          },
          tx,
        );
        await deps.audit.append(
          {
            type: existing ? 'peer.refreshed' : 'peer.registered',
            result: 'allowed',
            userId: by.userId,
            audience: card.endpoint,
            requestId: by.requestId,
            details: {
              peerId: peer.id,
              cardUrl,
              signatureVerified: peer.signatureVerified,
              kid,
              scopes,
              ...(downgraded ? { signatureRemoved: true } : {}),
            },
          },
          now,
          tx,
        );
      });
      deps.log.info(existing ? 'peer.refreshed' : 'peer.registered', {
        peerId: peer.id,
        endpoint: card.endpoint,
        signatureVerified: peer.signatureVerified,
      });
      return (await deps.peers.get(peer.id)) ?? peer;
    } catch (err) {
      if (err instanceof OAuthError) {
        deps.log.info('peer.rejected', { cardUrl, reason: err.message });
        if (existing) await this.recordRefusedRefresh(existing, err, by);
      }
      throw err;
    }
  }

  /** A registered peer whose new card was refused keeps its stored card; the refusal is audited. */
  private async recordRefusedRefresh(peer: Peer, err: OAuthError, by: PeerActor): Promise<void> {
    const { deps } = this;
    await deps.db.write((tx) =>
      deps.audit.append(
        {
          type: 'peer.refresh_refused',
          result: 'denied',
          userId: by.userId,
          audience: peer.endpoint,
          requestId: by.requestId,
          reason: err.code,
          details: {
            peerId: peer.id,
            cardUrl: peer.cardUrl,
            signatureVerified: peer.signatureVerified,
            description: err.message.slice(0, 300),
          },
        },
        deps.clock.now(),
        tx,
      ),
    );
  }
}

/** The registry over the application's stores and fetch rules (admin API and admin pages). */
export function createPeerRegistry(
  deps: Pick<Engine, 'db' | 'clients' | 'audit' | 'clock' | 'log' | 'config' | 'metrics'>,
): PeerRegistry {
  return new PeerRegistry({
    db: deps.db,
    peers: new PeerStore(deps.db),
    clients: deps.clients,
    audit: deps.audit,
    clock: deps.clock,
    log: deps.log,
    fetch: {
      allowPrivate: deps.config.fetch.allowPrivate,
      timeoutMs: deps.config.fetch.timeoutMs,
      metrics: deps.metrics,
    },
  });
}
