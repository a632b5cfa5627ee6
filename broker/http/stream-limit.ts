import { ConcurrencyLimit } from '../core/concurrency-limit.js';
import { OAuthError } from '../core/errors.js';

/**
 * Caps on long-lived streams (server-sent events, subscriptions): a number per client and a number
 * in total, so that one client cannot hold the process's memory and sockets.
 *
 * ```ts
 * const streams = createStreamLimit(config.streams);
 * const release = streams.acquire(client.id);   // null: over a cap
 * if (!release) throw tooManyStreams();
 * return streamSSE(c, async (s) => { try { … } finally { release(); } });
 * ```
 */
export interface StreamLimit {
  /** A slot for `key` (the client id): call the returned function when the stream closes; null when full. */
  acquire(key: string): (() => void) | null;
}

export interface StreamLimitOptions {
  maxPerClient: number;
  maxTotal: number;
}

/** Seconds a refused caller is asked to wait before opening a stream again. */
export const STREAM_RETRY_AFTER = 30;

export function createStreamLimit(opts: StreamLimitOptions): StreamLimit {
  return new ConcurrencyLimit({ perKey: opts.maxPerClient, total: opts.maxTotal });
}

/** The refusal for a stream over a cap: 429 with Retry-After (RFC 6585 §4, RFC 9110 §10.2.3). */
export function tooManyStreams(): OAuthError {
  return new OAuthError(
    'rate_limited',
    'too many open streams for this client (or in total); close one or try again later',
    { headers: { 'Retry-After': String(STREAM_RETRY_AFTER) } },
  );
}
