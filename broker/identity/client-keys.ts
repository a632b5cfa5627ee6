import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { z } from 'zod';
import type { Client } from '../core/client.js';
import type { Clock } from '../core/ports.js';
import { SafeFetchError, safeFetch } from './safe-fetch.js';

const JwksSchema = z.object({ keys: z.array(z.record(z.string(), z.unknown())).max(100) });

// At most one refetch of a client's jwks_uri per this many seconds, whatever `kid`s callers send.
const REFETCH_MIN_INTERVAL = 10;
const JWKS_MAX_BYTES = 65_536;

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

  constructor(private readonly opts: { clock: Clock; cacheTtl: number; timeoutMs: number; allowPrivate: boolean }) {}

  /** A jose key resolver for one client's assertion (or one issuer's tokens). */
  resolverFor(source: KeySource, opts: ResolverOptions = {}): KeyLookup {
    const owner = opts.owner ?? 'the client';
    const local = (jwks: JSONWebKeySet) =>
      createLocalJWKSet(
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

  private async fetch(uri: string, now: number, owner: string): Promise<CacheEntry> {
    try {
      const res = await safeFetch(uri, {
        accept: 'application/jwk-set+json, application/json',
        timeoutMs: this.opts.timeoutMs,
        maxBytes: JWKS_MAX_BYTES,
        allowPrivate: this.opts.allowPrivate,
      });
      const parsed = JwksSchema.safeParse(JSON.parse(res.body.toString('utf8')));
      if (!parsed.success) throw new ClientKeyError(`${owner}'s jwks_uri did not return a JWK set`);
      const entry = { jwks: parsed.data as JSONWebKeySet, fetchedAt: now };
      this.cache.set(uri, entry);
      return entry;
    } catch (err) {
      if (err instanceof ClientKeyError) throw err;
      const why = err instanceof SafeFetchError ? err.message : 'it is not valid JSON';
      throw new ClientKeyError(`${owner}'s jwks_uri could not be used: ${why}`);
    }
  }
}
