import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { PrometheusMetrics } from '../../telemetry/prometheus.js';
import { failSpan, incomingContext, SPAN_ATTR, SpanKind, tracer } from '../../telemetry/tracing.js';
import type { AppEnv } from '../types.js';

/** Methods named as they are; anything else (Node accepts a few dozen) is `other`, so labels stay few. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * The route pattern that answered (`/api/admin/clients/:id`), never the path: paths carry ids, and a
 * query string may carry codes. `(no route)` for a path nothing serves.
 */
export function requestRoute(c: Context<AppEnv>): string {
  const route = routePath(c);
  return route === '*' || route === '/*' || route === '' ? '(no route)' : route;
}

/**
 * Metrics and a server span for every request (README "Metrics and traces"): the one place that
 * observes requests. The span continues the trace of an incoming `traceparent` (W3C Trace Context)
 * and is active while the request runs, so the exchange, storage and fetch spans are its children.
 * With metrics off and no tracing SDK, it is not installed at all (`metrics` null, `tracing` false).
 */
export function observeRequests(opts: {
  metrics: PrometheusMetrics | null;
  tracing: boolean;
}): MiddlewareHandler<AppEnv> {
  const { metrics, tracing } = opts;
  return async function observe(c, next) {
    const started = performance.now();
    const method = METHODS.has(c.req.method) ? c.req.method : 'other';
    const finish = (status: number) => {
      const route = requestRoute(c);
      metrics?.observeRequest(method, route, status, (performance.now() - started) / 1000);
      return route;
    };
    if (!tracing) {
      await next();
      finish(c.res.status);
      return;
    }
    const parent = incomingContext(c.req.raw.headers);
    await tracer.startActiveSpan(
      method,
      { kind: SpanKind.SERVER, attributes: { 'http.request.method': method } },
      parent,
      async (span) => {
        try {
          await next();
        } finally {
          const status = c.res.status;
          const route = finish(status);
          span.updateName(`${method} ${route}`);
          const clientId = c.get('clientId');
          span.setAttributes({
            'http.route': route,
            'http.response.status_code': status,
            [SPAN_ATTR.requestId]: c.get('requestId') ?? '',
            ...(clientId ? { [SPAN_ATTR.clientId]: clientId } : {}),
          });
          // OpenTelemetry HTTP semantic conventions: on a server span only 5xx is an error.
          if (status >= 500) failSpan(span, { name: String(status) });
          span.end();
        }
      },
    );
  };
}
