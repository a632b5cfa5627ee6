import type { ClientStore } from '../../db/stores/client-store.js';
import type { Client } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import type { Logger } from '../log.js';
import { validateSelfServiceMetadata } from './client-metadata.js';
import { SafeFetchError, safeFetch } from './safe-fetch.js';

export interface ClientDirectoryOptions {
  cimdEnabled: boolean;
  cimdCacheTtl: number;
  cimdMaxBytes: number;
  timeoutMs: number;
  allowPrivate: boolean;
}

/**
 * Finds clients by `client_id`. Registered ids come from the store; an https `client_id` is a
 * Client ID Metadata Document URL (draft-ietf-oauth-client-id-metadata-document §3): it is fetched
 * under the SSRF rules, validated, and cached within bounds. Failures are never cached.
 */
export class ClientDirectory {
  constructor(
    private readonly deps: { store: ClientStore; clock: Clock; log: Logger },
    private readonly opts: ClientDirectoryOptions,
  ) {}

  /** Whether a client_id names a metadata document rather than a registered client. */
  isMetadataDocumentId(clientId: string): boolean {
    return clientId.startsWith('https://') || (this.opts.allowPrivate && clientId.startsWith('http://'));
  }

  /** The client, or null if no such client is registered (fetch failures throw invalid_client). */
  async resolve(clientId: string): Promise<Client | null> {
    if (!this.opts.cimdEnabled || !this.isMetadataDocumentId(clientId)) return this.deps.store.get(clientId);
    const now = this.deps.clock.now();
    const known = await this.deps.store.get(clientId);
    if (known && known.source !== 'cimd') return known;
    if (known && known.cachedUntil !== null && known.cachedUntil > now) return known;
    const fetched = await this.fetchDocument(clientId);
    const client: Client = {
      id: clientId,
      kind: 'mcp_client',
      name: fetched.name,
      ownerId: known?.ownerId ?? null,
      source: 'cimd',
      status: known?.status ?? 'active',
      authMethod: fetched.authMethod,
      secretHash: null,
      jwks: fetched.jwks,
      jwksUri: fetched.jwksUri,
      redirectUris: fetched.redirectUris,
      grantTypes: fetched.grantTypes,
      scope: fetched.scope,
      resources: [],
      applicationType: fetched.applicationType,
      metadata: fetched.display,
      createdAt: known?.createdAt ?? now,
      lastUsedAt: known?.lastUsedAt ?? null,
      expiresAt: null,
      cachedUntil: now + fetched.cacheFor,
    };
    await this.deps.store.upsertMetadataClient(client);
    this.deps.log.info('client.metadata_fetched', { clientId, cacheFor: fetched.cacheFor });
    return client;
  }

  private async fetchDocument(url: string) {
    const problem = metadataUrlProblem(url, this.opts.allowPrivate);
    if (problem) throw new OAuthError('invalid_client', `client_id: ${problem}`);
    let res: Awaited<ReturnType<typeof safeFetch>>;
    try {
      res = await safeFetch(url, {
        accept: 'application/json',
        expectJson: true,
        timeoutMs: this.opts.timeoutMs,
        maxBytes: this.opts.cimdMaxBytes,
        allowPrivate: this.opts.allowPrivate,
      });
    } catch (err) {
      const why = err instanceof SafeFetchError ? err.message : 'fetch failed';
      this.deps.log.info('client.metadata_rejected', { clientId: url, reason: why });
      throw new OAuthError('invalid_client', `client metadata document could not be fetched: ${why}`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new OAuthError('invalid_client', 'client metadata document is not valid JSON');
    }
    if (typeof doc !== 'object' || doc === null || (doc as { client_id?: unknown }).client_id !== url) {
      throw new OAuthError('invalid_client', 'client metadata document: client_id must equal the document URL');
    }
    let validated: ReturnType<typeof validateSelfServiceMetadata>;
    try {
      validated = validateSelfServiceMetadata(doc);
    } catch (err) {
      if (err instanceof OAuthError) throw new OAuthError('invalid_client', `client metadata document: ${err.message}`);
      throw err;
    }
    return { ...validated, cacheFor: this.cacheLifetime(res.headers['cache-control']) };
  }

  /** HTTP caching within Errand's own bound; `no-store`/`no-cache` mean refetch every time. */
  private cacheLifetime(cacheControl: string | undefined): number {
    if (!cacheControl) return this.opts.cimdCacheTtl;
    if (/no-store|no-cache/i.test(cacheControl)) return 0;
    const maxAge = /max-age=(\d+)/i.exec(cacheControl);
    return maxAge ? Math.min(Number(maxAge[1]), this.opts.cimdCacheTtl) : this.opts.cimdCacheTtl;
  }
}

/** CIMD §3: https, a path, no dot segments, no fragment, no userinfo. */
function metadataUrlProblem(raw: string, allowPrivate: boolean): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a valid URL';
  }
  if (url.protocol !== 'https:' && !(allowPrivate && url.protocol === 'http:')) return 'must use https';
  if (url.username || url.password) return 'must not contain user information';
  if (raw.includes('#')) return 'must not contain a fragment';
  if (url.pathname === '/' || url.pathname === '') return 'must contain a path';
  if (/\/\.\.?(\/|$)/.test(raw.replace(/^[a-z]+:\/\/[^/]+/i, ''))) return 'must not contain dot segments';
  return null;
}
