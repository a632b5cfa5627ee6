import {
  createLocalJWKSet,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  errors as joseErrors,
  type LocalJWKSet,
} from 'jose';
import { z } from 'zod';
import { authorizationServerMetadataUrl } from './metadata.js';

const MetadataSchema = z.looseObject({ issuer: z.string().min(1).max(2048), jwks_uri: z.url().max(2048) });
const JwksSchema = z.object({ keys: z.array(z.record(z.string(), z.unknown())).max(100) });

/** The parts of the authorization server's RFC 8414 metadata the guard uses. */
export type AuthorizationServerMetadata = z.infer<typeof MetadataSchema>;

export interface IssuerKeysOptions {
  issuer: string;
  fetch: typeof fetch;
  /** Epoch seconds. */
  now: () => number;
  /**
   * Most seconds between JWKS fetches caused by an unknown `kid` (RFC 9068 §4: rate-limited
   * refetch); shorter when the JWKS's own freshness lifetime is.
   */
  refetchCooldown?: number;
  /** Most seconds the JWKS is used before it is refreshed on next use, whatever its `Cache-Control` says. */
  maxAge?: number;
  timeoutMs?: number;
}

const FAILURE_COOLDOWN = 5;
/** Least seconds a fetched JWKS is used, even when it says `max-age=0` or `no-cache`. */
const MIN_FRESHNESS = 1;

/**
 * The issuer's metadata (RFC 8414, `issuer` compared exactly) and its JWKS, cached for as long as
 * the JWKS response's `Cache-Control: max-age` allows (RFC 9111 §4.2, less its `Age`), within
 * [1 s, `maxAge`]. Errand publishes each new signing key longer than that before it signs with it,
 * so a cache that follows the header already holds the key when the first token arrives. A `kid`
 * that is not in the cached set causes one refetch, at most once per cooldown (never longer than the
 * freshness lifetime), so a stream of forged tokens cannot turn the guard into a JWKS fetcher.
 */
export class IssuerKeys {
  private metadataP: Promise<AuthorizationServerMetadata> | null = null;
  private metadataFailedAt = Number.NEGATIVE_INFINITY;
  private jwks: LocalJWKSet | null = null;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  /** Seconds the current copy stays fresh (from its `Cache-Control`). */
  private freshFor: number;
  private loading: Promise<void> | null = null;

  constructor(private readonly opts: IssuerKeysOptions) {
    this.freshFor = this.ceiling;
  }

  private get ceiling(): number {
    return this.opts.maxAge ?? 600;
  }

  /** The validated authorization server metadata (fetched once; retried after a failure). */
  metadata(): Promise<AuthorizationServerMetadata> {
    if (this.metadataP) return this.metadataP;
    if (this.opts.now() - this.metadataFailedAt < FAILURE_COOLDOWN) {
      return Promise.reject(new Error('authorization server metadata is unavailable'));
    }
    this.metadataP = this.fetchMetadata().catch((err: unknown) => {
      this.metadataP = null;
      this.metadataFailedAt = this.opts.now();
      throw err;
    });
    return this.metadataP;
  }

  /** A jose key resolver over the issuer's JWKS (for `jwtVerify`). */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput) => {
    const age = this.opts.now() - this.fetchedAt;
    if (!this.jwks) {
      if (age < FAILURE_COOLDOWN && !this.loading) throw new Error('the JWKS is unavailable');
      await this.load(false);
    } else if (age > this.freshFor) {
      await this.load(true);
    }
    try {
      return await this.jwks!(header, token);
    } catch (err) {
      const cooldown = Math.min(this.opts.refetchCooldown ?? 10, this.freshFor);
      if (!(err instanceof joseErrors.JWKSNoMatchingKey) || this.opts.now() - this.fetchedAt < cooldown) throw err;
      await this.load(false);
      return this.jwks!(header, token);
    }
  };

  private async load(keepOnFailure: boolean): Promise<void> {
    this.loading ??= this.fetchJwks()
      .then(({ set, freshFor }) => {
        this.jwks = createLocalJWKSet(set);
        this.freshFor = Math.min(this.ceiling, Math.max(MIN_FRESHNESS, freshFor ?? this.ceiling));
      })
      .catch((err: unknown) => {
        if (!keepOnFailure || !this.jwks) throw err;
      })
      .finally(() => {
        this.fetchedAt = this.opts.now();
        this.loading = null;
      });
    return this.loading;
  }

  private async get(url: string): Promise<Response> {
    const res = await this.opts.fetch(url, {
      headers: { accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
    });
    if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
    return res;
  }

  private async fetchMetadata(): Promise<AuthorizationServerMetadata> {
    const res = await this.get(authorizationServerMetadataUrl(this.opts.issuer));
    const doc = MetadataSchema.parse(await res.json());
    // RFC 8414 §3.3: the document is for this issuer exactly, or it is ignored.
    if (doc.issuer !== this.opts.issuer) throw new Error(`metadata issuer "${doc.issuer}" is not ${this.opts.issuer}`);
    return doc;
  }

  private async fetchJwks(): Promise<{ set: JSONWebKeySet; freshFor: number | null }> {
    const { jwks_uri } = await this.metadata();
    const res = await this.get(jwks_uri);
    const set = JwksSchema.parse(await res.json()) as JSONWebKeySet;
    return { set, freshFor: remainingFreshness(res.headers) };
  }
}

/**
 * Seconds a response may still be used (RFC 9111 §4.2): `max-age` less `Age`; 0 for `no-store` or
 * `no-cache`; null when the response says nothing. `s-maxage` is for shared caches, not this one.
 */
export function remainingFreshness(headers: Headers): number | null {
  const directives = (headers.get('cache-control') ?? '')
    .toLowerCase()
    .split(',')
    .map((d) => d.trim());
  if (directives.includes('no-store') || directives.includes('no-cache')) return 0;
  const maxAge = directives.map((d) => /^max-age="?(\d{1,10})"?$/.exec(d)?.[1]).find((v) => v !== undefined);
  if (maxAge === undefined) return null;
  const age = Number(/^\d{1,10}$/.exec(headers.get('age')?.trim() ?? '')?.[0] ?? 0);
  return Math.max(0, Number(maxAge) - age);
}
