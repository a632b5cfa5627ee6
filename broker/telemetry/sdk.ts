import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { TracingSettings } from '../config.js';
import { markTracingStarted } from './tracing.js';

// Loaded by the entry point only when traces are asked for, so that a broker without them does
// not even load the SDK.

export interface Tracing {
  /**
   * Sends the spans still buffered and stops the exporter, waiting at most `timeoutMs` (an
   * unreachable collector is retried by the exporter for longer). Never rejects.
   */
  shutdown(timeoutMs: number): Promise<void>;
}

/**
 * Starts the OpenTelemetry SDK with the OTLP/HTTP exporter (JSON), which reads the standard
 * `OTEL_EXPORTER_OTLP_*` variables itself. Called once by the process entry point, and only when
 * the OTEL_* variables ask for traces (`tracingSettings` in config.ts).
 */
export function startTracing(settings: TracingSettings): Tracing {
  const resource = defaultResource()
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(resourceFromAttributes({ 'service.name': settings.serviceName }));
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // Registers the provider, the async-context manager and the W3C trace-context propagator.
  provider.register();
  markTracingStarted();
  return {
    async shutdown(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      // An unreachable collector loses the last spans, never holds the stop.
      await Promise.race([
        provider.shutdown().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
