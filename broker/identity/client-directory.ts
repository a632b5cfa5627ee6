import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { Client } from '../core/client.js';
import type { ConcurrencyLimit } from '../core/concurrency-limit.js';
import { OAuthError } from '../core/errors.js';
import type { Metrics } from '../core/metrics.js';
import type { Clock } from '../core/ports.js';
import type { Logger } from '../log.js';
import { type ClientAdmission, recordRuleAdmission, startingQuarantine } from '../services/admission.js';
import { validateSelfServiceMetadata } from './client-metadata.js';
import { SafeFetchError, safeFetch } from './safe-fetch.js';

export interface ClientDirectoryOptions {
  cimdEnabled: boolean;
  /** Longest a document is kept, whatever its Cache-Control says. */
  cimdCacheTtl: number;
  /** Shortest a document is kept, even when it says `no-store` or `max-age=0`. */
  cimdMinCacheTtl: number;
  /** How long a failed fetch (or a refused document) is answered from memory without fetching again. */
  cimdFailureTtl: number;
  cimdMaxBytes: number;
  timeoutMs: number;
  allowPrivate: boolean;
}

export interface ClientDirectoryDeps {
  store: ClientStore;
  clock: Clock;
  log: Logger;
  /** Outbound fetches in flight per host and in total, shared with every other fetch of outside URLs. */
  fetchLimit?: Pick<ConcurrencyLimit, 'acquire'>;
  /** Counts the metadata document fetches (`client_metadata`) when given. */
  metrics?: Metrics;
  /** Asked whether a client first seen by its metadata document starts admitted; default: never. */
  admission?: ClientAdmission;
  /** Where an admission by the rule is recorded (`client.admitted`), with the client in one transaction. */
  record?: { db: Db; audit: AuditStore };
}

/** Failed document URLs remembered at most; the oldest is forgotten first. */
const FAILURES_MAX = 1000;
/** What a caller learns when the document host failed: not whether it refused, timed out or answered badly. */
const FETCH_FAILED = 'the client metadata document could not be fetched';

/**
 * Finds clients by `client_id`. Registered ids come from the store; an https `client_id` is a
 * Client ID Metadata Document URL (draft-ietf-oauth-client-id-metadata-document §3): it is fetched
 * under the SSRF rules, validated, and cached within bounds. Anyone can name such a URL without
 * authenticating, so fetches are bounded: concurrent requests for one URL share one fetch, fetches
 * beyond the per-host and total caps fail at once, and a failure is remembered briefly.
 */
export class ClientDirectory {
  private readonly inflight = new Map<string, Promise<Client>>();
  private readonly failures = new Map<string, { until: number; error: OAuthError }>();

  constructor(
    private readonly deps: ClientDirectoryDeps,
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
    const failed = this.failures.get(clientId);
    if (failed && failed.until > now) throw failed.error;
    if (failed) this.failures.delete(clientId);
    let pending = this.inflight.get(clientId);
    if (!pending) {
      pending = this.refresh(clientId, known).finally(() => this.inflight.delete(clientId));
      this.inflight.set(clientId, pending);
    }
    return pending;
  }

  /** Fetches the document and stores the client; a failure is remembered for `cimdFailureTtl`. */
  private async refresh(clientId: string, known: Client | null): Promise<Client> {
    let fetched: Awaited<ReturnType<ClientDirectory['fetchDocument']>>;
    try {
      fetched = await this.fetchDocument(clientId);
    } catch (err) {
      if (err instanceof OAuthError && !(err.cause instanceof SafeFetchError && err.cause.reason === 'busy')) {
        this.rememberFailure(clientId, err);
      }
      throw err;
    }
    const now = this.deps.clock.now();
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
    // README "Quarantine of new registrations and findings": a client first seen here starts
    // quarantined unless the admission rule admits it; a refresh keeps what was decided.
    client.quarantinedAt = known
      ? (known.quarantinedAt ?? null)
      : await startingQuarantine(this.deps.admission, client, now);
    const { record } = this.deps;
    if (!known && client.quarantinedAt === null && record) {
      await record.db.write(async (tx) => {
        await this.deps.store.upsertMetadataClient(client, tx);
        await recordRuleAdmission(record.audit, client, null, now, tx);
      });
    } else {
      await this.deps.store.upsertMetadataClient(client);
    }
    this.deps.log.info('client.metadata_fetched', { clientId, cacheFor: fetched.cacheFor });
    return client;
  }

  private rememberFailure(clientId: string, error: OAuthError): void {
    if (this.opts.cimdFailureTtl === 0) return;
    this.failures.delete(clientId);
    if (this.failures.size >= FAILURES_MAX) this.failures.delete(this.failures.keys().next().value as string);
    this.failures.set(clientId, { until: this.deps.clock.now() + this.opts.cimdFailureTtl, error });
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
        ...(this.deps.fetchLimit ? { limit: this.deps.fetchLimit } : {}),
        ...(this.deps.metrics ? { observe: { kind: 'client_metadata', metrics: this.deps.metrics } } : {}),
      });
    } catch (err) {
      const reason = err instanceof SafeFetchError ? err.reason : 'error';
      this.deps.log.info('client.metadata_rejected', {
        clientId: url,
        reason,
        detail: err instanceof Error ? err.message : String(err),
      });
      throw new OAuthError('invalid_client', fetchFailureDescription(reason), { cause: err });
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

  /**
   * HTTP caching (RFC 9111 §5.2.2) within Errand's bounds: at most `cimdCacheTtl`, and at least
   * `cimdMinCacheTtl` even for `no-store`, `no-cache` or `max-age=0`, so that a document cannot make
   * every request that names it a new outbound fetch (the CIMD draft lets the authorization server
   * set its own cache bounds).
   */
  private cacheLifetime(cacheControl: string | undefined): number {
    const { cimdCacheTtl: max, cimdMinCacheTtl: min } = this.opts;
    let ttl = max;
    if (cacheControl && /no-store|no-cache/i.test(cacheControl)) ttl = 0;
    else if (cacheControl) {
      const maxAge = /max-age=(\d+)/i.exec(cacheControl);
      if (maxAge) ttl = Math.min(Number(maxAge[1]), max);
    }
    return Math.max(ttl, min);
  }
}

/**
 * The caller learns that Errand's own rules refused the URL (scheme, address, busy), but not how the
 * document host failed: a refused connection, a timeout and an HTTP status all read the same, so
 * the error cannot be used to probe ports. The detail is logged.
 */
function fetchFailureDescription(reason: SafeFetchError['reason'] | 'error'): string {
  switch (reason) {
    case 'invalid_url':
      return 'client_id: the metadata document URL is not allowed (https, no user information)';
    case 'forbidden_address':
      return 'client_id: the metadata document URL resolves to a forbidden address (private, loopback or special-purpose)';
    case 'busy':
      return `${FETCH_FAILED} now: too many outbound fetches are in progress; try again later`;
    default:
      return FETCH_FAILED;
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
