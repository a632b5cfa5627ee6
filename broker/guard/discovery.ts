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
  /** Minimum seconds between JWKS fetches caused by an unknown `kid` (RFC 9068 §4: rate-limited refetch). */
  refetchCooldown?: number;
  /** Seconds after which the JWKS is refreshed on next use. */
  maxAge?: number;
  timeoutMs?: number;
}

const FAILURE_COOLDOWN = 5;

/**
 * The issuer's metadata (RFC 8414, `issuer` compared exactly) and its JWKS, cached. A `kid` that is
 * not in the cached set causes one refetch, at most once per cooldown, so a stream of forged tokens
 * cannot turn the guard into a JWKS fetcher.
 */
export class IssuerKeys {
  private metadataP: Promise<AuthorizationServerMetadata> | null = null;
  private metadataFailedAt = Number.NEGATIVE_INFINITY;
  private jwks: LocalJWKSet | null = null;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private loading: Promise<void> | null = null;

  constructor(private readonly opts: IssuerKeysOptions) {}

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
    } else if (age > (this.opts.maxAge ?? 600)) {
      await this.load(true);
    }
    try {
      return await this.jwks!(header, token);
    } catch (err) {
      const cooldown = this.opts.refetchCooldown ?? 10;
      if (!(err instanceof joseErrors.JWKSNoMatchingKey) || this.opts.now() - this.fetchedAt < cooldown) throw err;
      await this.load(false);
      return this.jwks!(header, token);
    }
  };

  private async load(keepOnFailure: boolean): Promise<void> {
    this.loading ??= this.fetchJwks()
      .then((set) => {
        this.jwks = createLocalJWKSet(set);
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

  private async getJson(url: string): Promise<unknown> {
    const res = await this.opts.fetch(url, {
      headers: { accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
    });
    if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
    return res.json();
  }

  private async fetchMetadata(): Promise<AuthorizationServerMetadata> {
    const doc = MetadataSchema.parse(await this.getJson(authorizationServerMetadataUrl(this.opts.issuer)));
    // RFC 8414 §3.3: the document is for this issuer exactly, or it is ignored.
    if (doc.issuer !== this.opts.issuer) throw new Error(`metadata issuer "${doc.issuer}" is not ${this.opts.issuer}`);
    return doc;
  }

  private async fetchJwks(): Promise<JSONWebKeySet> {
    const { jwks_uri } = await this.metadata();
    return JwksSchema.parse(await this.getJson(jwks_uri)) as JSONWebKeySet;
  }
}
