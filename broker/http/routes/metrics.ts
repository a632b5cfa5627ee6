import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import { OAuthError } from '../../core/errors.js';
import type { PrometheusMetrics } from '../../telemetry/prometheus.js';
import type { AppEnv } from '../types.js';

export const METRICS_PATH = '/metrics';

export interface MetricsRouteDeps {
  metrics: Pick<PrometheusMetrics, 'scrape'>;
  /** The bearer token a scrape must present; null where the listener alone guards it (management port). */
  token: string | null;
}

/** Compares in constant time (over digests, so that the lengths do not leak either). */
function sameToken(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * `GET /metrics` in the Prometheus text exposition format (README "Metrics and traces"). Off unless
 * configured; on the main listener it asks for `Authorization: Bearer <ERRAND_METRICS_TOKEN>`
 * (RFC 6750 §3 challenge on a missing or wrong one).
 */
export function metricsRoutes(deps: MetricsRouteDeps) {
  return new Hono<AppEnv>().get(METRICS_PATH, async (c) => {
    if (deps.token !== null) {
      const header = c.req.header('authorization') ?? '';
      const match = /^Bearer ([\x21-\x7e]+)$/i.exec(header);
      if (!match || !sameToken(match[1]!, deps.token)) {
        throw new OAuthError('invalid_token', 'a valid metrics bearer token is required', {
          headers: { 'WWW-Authenticate': 'Bearer realm="errand-metrics"' },
        });
      }
    }
    // Scrapes are frequent and expected: their access-log line is at debug level.
    c.set('routine', true);
    const { contentType, body } = await deps.metrics.scrape();
    return c.body(body, 200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
  });
}
