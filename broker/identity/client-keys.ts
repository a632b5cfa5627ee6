import { createPublicKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { z } from 'zod';
import type { Client } from '../core/client.js';
import type { ConcurrencyLimit } from '../core/concurrency-limit.js';
import type { Metrics } from '../core/metrics.js';
import type { Clock } from '../core/ports.js';
import { SafeFetchError, safeFetch } from './safe-fetch.js';

const JwksSchema = z.object({ keys: z.array(z.record(z.string(), z.unknown())).max(100) });

// At most one refetch of a client's jwks_uri per this many seconds, whatever `kid`s callers send.
const REFETCH_MIN_INTERVAL = 10;
const JWKS_MAX_BYTES = 65_536;
// Key sets kept with their imported keys, so a known key is not imported again on every request.
const LOCAL_SETS_MAX = 1000;

interface CacheEntry {
  jwks: JSONWebKeySet;
  fetchedAt: number;
}

type LocalSet = ReturnType<typeof createLocalJWKSet>;
export type KeyLookup = (...args: Parameters<LocalSet>) => ReturnType<LocalSet>;

export class ClientKeyError extends Error {}

/** Where a signer's keys are registered: a static set, or a URL. */
export type KeySource = Pick<Client, 'jwks' | 'jwksUri'>;

export interface ResolverOptions {
  /** Chooses (and may rewrite) the keys to verify with, e.g. a SPIFFE bundle's `jwt-svid` keys. */
  selectKeys?: (keys: Record<string, unknown>[]) => Record<string, unknown>[];
  /** Who the keys belong to, for messages ("the client", "the trusted issuer"). */
  owner?: string;
}

/**
 * Verification keys of `private_key_jwt` clients and trusted workload issuers: the registered
 * `jwks`, or the `jwks_uri` fetched under the SSRF rules, cached, and refetched (rate-limited) when
 * a JWT names an unknown `kid`. A key is only ever taken from the registered source.
 */
export class ClientKeys {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly localSets = new Map<string, LocalSet>();
  private readonly keyObjects = new Map<string, KeyObject>();

  constructor(
    private readonly opts: {
      clock: Clock;
      cacheTtl: number;
      timeoutMs: number;
      allowPrivate: boolean;
      /** Outbound fetches in flight per host and in total (shared with the other fetches of outside URLs). */
      fetchLimit?: Pick<ConcurrencyLimit, 'acquire'>;
      /** Counts the key set fetches (`jwks`) when given. */
      metrics?: Metrics;
    },
  ) {}

  /** A jose key resolver for one client's assertion (or one issuer's tokens). */
  resolverFor(source: KeySource, opts: ResolverOptions = {}): KeyLookup {
    const owner = opts.owner ?? 'the client';
    const local = (jwks: JSONWebKeySet) =>
      this.localSet(
        opts.selectKeys
          ? ({ keys: opts.selectKeys(jwks.keys as unknown as Record<string, unknown>[]) } as JSONWebKeySet)
          : jwks,
      );
    if (source.jwks) {
      return local(source.jwks as JSONWebKeySet);
    }
    const uri = source.jwksUri;
    if (!uri) throw new ClientKeyError(`${owner} has no registered keys`);
    return async (header, input) => {
      const now = this.opts.clock.now();
      let entry = this.cache.get(uri);
      if (!entry || now - entry.fetchedAt >= this.opts.cacheTtl) entry = await this.fetch(uri, now, owner);
      try {
        return await local(entry.jwks)(header, input);
      } catch (err) {
        // Unknown kid: the signer may have rotated. Refetch, but not more often than the interval.
        if (now - entry.fetchedAt < REFETCH_MIN_INTERVAL) throw err;
        entry = await this.fetch(uri, now, owner);
        return await local(entry.jwks)(header, input);
      }
    };
  }

  /**
   * The one registered key an ES256 or EdDSA JWT with this `kid` can be verified with, as a
   * node:crypto key, when it is already at hand (a static set, or a cached `jwks_uri` that is
   * still fresh) and the choice is unambiguous; otherwise null, and the caller takes the general
   * path. Selection follows the same rules as jose's key sets: kid, alg, kty/crv, use, key_ops.
   */
  knownKey(source: KeySource, kid: unknown, alg: unknown): KeyObject | null {
    if (typeof kid !== 'string' || (alg !== 'ES256' && alg !== 'EdDSA')) return null;
    let jwks = source.jwks as JSONWebKeySet | null;
    if (!jwks && source.jwksUri) {
      const entry = this.cache.get(source.jwksUri);
      if (entry && this.opts.clock.now() - entry.fetchedAt < this.opts.cacheTtl) jwks = entry.jwks;
    }
    if (!jwks) return null;
    const [kty, crv] = alg === 'ES256' ? ['EC', 'P-256'] : ['OKP', 'Ed25519'];
    const matches = jwks.keys.filter(
      (k) =>
        k.kid === kid &&
        k.kty === kty &&
        k.crv === crv &&
        (k.alg === undefined || k.alg === alg) &&
        (k.use === undefined || k.use === 'sig') &&
        (k.key_ops === undefined || (Array.isArray(k.key_ops) && k.key_ops.includes('verify'))),
    );
    if (matches.length !== 1) return null;
    const jwk = matches[0]!;
    const id = JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.y]);
    let key = this.keyObjects.get(id);
    if (!key) {
      try {
        key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } as never, format: 'jwk' });
      } catch {
        return null;
      }
      if (key.type !== 'public') return null;
      if (this.keyObjects.size >= LOCAL_SETS_MAX) this.keyObjects.delete(this.keyObjects.keys().next().value as string);
      this.keyObjects.set(id, key);
    }
    return key;
  }

  /**
   * Fetches a `jwks_uri` now (under the SSRF rules) and caches it, so that a registration learns
   * at once whether the URL is allowed and serves a key set. Rejects with a ClientKeyError.
   */
  async load(uri: string, owner = 'the client'): Promise<JSONWebKeySet> {
    return (await this.fetch(uri, this.opts.clock.now(), owner)).jwks;
  }

  /** jose's local key set for `jwks`, reused while the set's content is the same. */
  private localSet(jwks: JSONWebKeySet): LocalSet {
    const id = JSON.stringify(jwks);
    let set = this.localSets.get(id);
    if (!set) {
      set = createLocalJWKSet(jwks);
      if (this.localSets.size >= LOCAL_SETS_MAX) this.localSets.delete(this.localSets.keys().next().value as string);
      this.localSets.set(id, set);
    }
    return set;
  }

  private async fetch(uri: string, now: number, owner: string): Promise<CacheEntry> {
    try {
      const res = await safeFetch(uri, {
        accept: 'application/jwk-set+json, application/json',
        timeoutMs: this.opts.timeoutMs,
        maxBytes: JWKS_MAX_BYTES,
        allowPrivate: this.opts.allowPrivate,
        ...(this.opts.fetchLimit ? { limit: this.opts.fetchLimit } : {}),
        ...(this.opts.metrics ? { observe: { kind: 'jwks', metrics: this.opts.metrics } } : {}),
      });
      const parsed = JwksSchema.safeParse(JSON.parse(res.body.toString('utf8')));
      if (!parsed.success) throw new ClientKeyError(`${owner}'s jwks_uri did not return a JWK set`);
      const entry = { jwks: parsed.data as JSONWebKeySet, fetchedAt: now };
      this.cache.set(uri, entry);
      return entry;
    } catch (err) {
      if (err instanceof ClientKeyError) throw err;
      // Errand's own refusals are named; how the key host failed is not (it would let a caller probe ports).
      const ours = err instanceof SafeFetchError && ['invalid_url', 'forbidden_address', 'busy'].includes(err.reason);
      const why = ours ? (err as SafeFetchError).message : 'it could not be fetched or is not a JWK set';
      throw new ClientKeyError(`${owner}'s jwks_uri could not be used: ${why}`, { cause: err });
    }
  }
}
