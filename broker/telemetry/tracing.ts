import {
  type Attributes,
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

/**
 * Traces (README "Metrics and traces"). The code speaks only the OpenTelemetry API: without a
 * registered SDK its tracer is the no-op one, so a span costs a function call and nothing is kept.
 * Attributes name ids (task, client, delegation), never tokens, secrets, assertions or passwords.
 */
export const tracer = trace.getTracer('errand');

/** Span attribute names of Errand's own ids. */
export const SPAN_ATTR = {
  taskId: 'errand.task_id',
  clientId: 'errand.client_id',
  delegationId: 'errand.delegation_id',
  requestId: 'errand.request_id',
} as const;

/** Marks a span failed with a short error type (an OAuth error code or an error's name), never its message. */
export function failSpan(span: Span, err: unknown): void {
  const code = (err as { code?: unknown }).code;
  const type = typeof code === 'string' && /^[a-z_]{1,40}$/.test(code) ? code : ((err as Error)?.name ?? 'Error');
  span.setAttribute('error.type', type);
  span.setStatus({ code: SpanStatusCode.ERROR });
}

let sdkStarted = false;
/** What `inSpan` hands `fn` while no SDK runs: a span that records nothing. */
const NOT_RECORDED: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Called once an SDK is registered (broker/telemetry/sdk.ts): from then on `inSpan` makes spans. */
export function markTracingStarted(): void {
  sdkStarted = true;
}

/**
 * Runs `fn` in a span that is active for everything it calls (child spans attach to it), ends it,
 * and marks it failed when `fn` throws. Without an SDK it only calls `fn`: the no-op tracer would
 * still switch the async context around it on every request.
 */
export function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  opts: { kind?: SpanKind; parent?: Context } = {},
): Promise<T> {
  if (!sdkStarted) return fn(NOT_RECORDED);
  const parent = opts.parent ?? context.active();
  return tracer.startActiveSpan(name, { attributes, kind: opts.kind ?? SpanKind.INTERNAL }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** The trace context a request carries (W3C `traceparent`/`tracestate`), or none. */
export function incomingContext(headers: Headers): Context {
  return propagation.extract(ROOT_CONTEXT, headers, {
    keys: (h) => [...h.keys()],
    get: (h, key) => h.get(key) ?? undefined,
  });
}

export { SpanKind };
