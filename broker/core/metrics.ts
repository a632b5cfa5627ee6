import type { Denial } from './denials.js';

/** What an outbound fetch was for: each is one label value of `errand_outbound_fetches_total`. */
export type FetchKind = 'client_metadata' | 'jwks' | 'trusted_issuer' | 'peer';

/** How an outbound fetch ended: `ok`, or the reason it was refused or failed. */
export type FetchOutcome =
  | 'ok'
  | 'invalid_url'
  | 'forbidden_address'
  | 'redirect'
  | 'status'
  | 'too_large'
  | 'timeout'
  | 'content_type'
  | 'network'
  | 'busy'
  | 'error';

/**
 * The counters the engine moves (README "Metrics and traces"). Services call this port and never a
 * metrics library; label values are drawn from small fixed sets (grant types, denial reasons,
 * fetch kinds), never ids, addresses or secrets.
 */
export interface Metrics {
  /** A token endpoint request answered with a token, by its grant type. */
  tokenIssued(grantType: string): void;
  /** A token exchange refused by the rules, by the denial's reason. */
  exchangeDenied(reason: Denial['reason']): void;
  /** One group commit: how many write transactions it held and how long it took. */
  groupCommitted(size: number, seconds: number): void;
  /** A revocation push stream opened (+1) or closed (-1). */
  pushSubscribers(delta: 1 | -1): void;
  /** A revocation event written to a push stream, `seconds` after the task end that caused it committed. */
  pushDelivered(seconds: number): void;
  /** An outbound fetch ended. */
  outboundFetch(kind: FetchKind, outcome: FetchOutcome, seconds: number): void;
}

/** Counts nothing: for tests and tools that build services without a metrics registry. */
export const noMetrics: Metrics = {
  tokenIssued() {},
  exchangeDenied() {},
  groupCommitted() {},
  pushSubscribers() {},
  pushDelivered() {},
  outboundFetch() {},
};
