import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { FetchKind, FetchOutcome, Metrics } from '../core/metrics.js';

/** Latency buckets in seconds, from a cached answer to a slow outside server. */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Group sizes up to the write queue's cap of 128 transactions per commit. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];

export interface PrometheusDeps {
  /** Live tasks and active delegations, counted in the database when a scrape asks (gauges). */
  countActive(): Promise<{ tasks: number; delegations: number }>;
  /** Node's process metrics (`process_*`, `nodejs_*`); on in the broker, off where several run in one process. */
  processMetrics?: boolean;
}

/** The outcome of an answered request, as its status class: `2xx`, `4xx`… */
function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}

/**
 * One broker's Prometheus metrics (README "Metrics and traces"), in a registry of its own so that
 * several brokers can run in one process (the tests). `port` is what the engine calls; `observeRequest`
 * is the HTTP middleware's; `scrape` renders the text exposition format.
 */
export class PrometheusMetrics {
  readonly registry = new Registry();
  readonly port: Metrics;
  readonly #requests: Counter<'method' | 'route' | 'status_class'>;
  readonly #requestSeconds: Histogram<'method' | 'route' | 'status_class'>;

  constructor(deps: PrometheusDeps) {
    const registers = [this.registry];
    this.#requests = new Counter({
      name: 'errand_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status class.',
      labelNames: ['method', 'route', 'status_class'],
      registers,
    });
    this.#requestSeconds = new Histogram({
      name: 'errand_http_request_duration_seconds',
      help: 'Time from a request to its response, by method, route pattern and status class.',
      labelNames: ['method', 'route', 'status_class'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    const tokens = new Counter({
      name: 'errand_tokens_issued_total',
      help: 'Token endpoint requests answered with a token, by grant type.',
      labelNames: ['grant_type'],
      registers,
    });
    const denials = new Counter({
      name: 'errand_exchange_denials_total',
      help: 'Token exchanges refused by the delegation rules, by reason.',
      labelNames: ['reason'],
      registers,
    });
    // Both gauges come from one pair of queries per scrape: the registry collects them together,
    // so the second finds the first's count still in flight.
    let counting: Promise<{ tasks: number; delegations: number }> | null = null;
    const active = () => {
      if (!counting) {
        counting = deps.countActive().finally(() => {
          counting = null;
        });
      }
      return counting;
    };
    new Gauge({
      name: 'errand_active_tasks',
      help: 'Tasks not yet ended whose deadline has not passed (counted in the database at scrape time).',
      registers,
      async collect() {
        this.set((await active()).tasks);
      },
    });
    new Gauge({
      name: 'errand_active_delegations',
      help: 'Approved, unrevoked, unexpired delegations (counted in the database at scrape time).',
      registers,
      async collect() {
        this.set((await active()).delegations);
      },
    });
    const batchSize = new Histogram({
      name: 'errand_db_group_commit_size',
      help: 'Write transactions committed together in one group commit.',
      buckets: BATCH_BUCKETS,
      registers,
    });
    const batchSeconds = new Histogram({
      name: 'errand_db_group_commit_duration_seconds',
      help: 'Time one group commit took, from BEGIN to COMMIT.',
      buckets: SECONDS_BUCKETS,
      registers,
    });
    const subscribers = new Gauge({
      name: 'errand_revocation_push_subscribers',
      help: 'Revocation push streams (/events/revocations) open now.',
      registers,
    });
    const delivery = new Histogram({
      name: 'errand_revocation_push_delivery_seconds',
      help: 'Time from the commit of a task end to its revocation event being written to a push stream.',
      buckets: SECONDS_BUCKETS,
      registers,
    });
    const fetches = new Counter({
      name: 'errand_outbound_fetches_total',
      help: 'Outbound fetches (client metadata documents, key sets, trusted issuers, A2A peers), by kind and outcome.',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    const fetchSeconds = new Histogram({
      name: 'errand_outbound_fetch_duration_seconds',
      help: 'Time an outbound fetch took, by kind.',
      labelNames: ['kind'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    if (deps.processMetrics) collectDefaultMetrics({ register: this.registry });

    this.port = {
      tokenIssued: (grantType) => tokens.inc({ grant_type: grantType }),
      exchangeDenied: (reason) => denials.inc({ reason }),
      groupCommitted: (size, seconds) => {
        batchSize.observe(size);
        batchSeconds.observe(seconds);
      },
      pushSubscribers: (delta) => subscribers.inc(delta),
      pushDelivered: (seconds) => delivery.observe(seconds),
      outboundFetch: (kind: FetchKind, outcome: FetchOutcome, seconds: number) => {
        fetches.inc({ kind, outcome });
        fetchSeconds.observe({ kind }, seconds);
      },
    };
  }

  /** One answered request; `route` is the matched pattern (never the path: paths carry ids). */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status_class: statusClass(status) };
    this.#requests.inc(labels);
    this.#requestSeconds.observe(labels, seconds);
  }

  /** The registry in the Prometheus text exposition format. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
