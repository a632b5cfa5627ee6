import { buildBroker, StartupError } from './broker.js';
import { ConfigError, loadConfig, maintenanceIntervalMs, unknownSettingWarnings } from './config.js';
import { listen } from './http/server.js';
import { createLogger } from './log.js';

/** The part of the stop bound kept for closing the database after the connections are drained. */
const CLOSE_RESERVE_MS = 2000;
/** The longest a stop waits for the collector to take the last spans. */
const TRACE_FLUSH_MS = 2000;

/** Starts the broker: `npm start`. Everything is configured through ERRAND_* variables (README). */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`errand: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ level: config.logLevel });
  for (const warning of unknownSettingWarnings(process.env)) {
    process.stderr.write(`errand: warning: ${warning}\n`);
    log.warn('config.unknown_setting', { message: warning });
  }
  // Traces only when the OTEL_* variables ask for them; the SDK is not even loaded otherwise.
  const tracing = config.tracing ? (await import('./telemetry/sdk.js')).startTracing(config.tracing) : null;
  if (config.tracing) log.info('tracing.started', { serviceName: config.tracing.serviceName });
  let broker: Awaited<ReturnType<typeof buildBroker>>;
  try {
    broker = await buildBroker(config, { log });
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`errand: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }

  const maintenanceMs = maintenanceIntervalMs(config.keys.publishAhead);
  let maintaining: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    maintaining = broker.maintain().catch((err: unknown) => log.error('maintenance.failed', { err }));
  }, maintenanceMs);
  timer.unref();

  let http: Awaited<ReturnType<typeof listen>>;
  try {
    http = await listen(broker.app.fetch, {
      hostname: config.host,
      port: config.port,
      bodyTimeout: config.http.bodyTimeout,
    });
  } catch (err) {
    const message = listenFailure(err, config.host, config.port);
    if (!message) throw err;
    process.stderr.write(`errand: ${message}\n`);
    await broker.close();
    process.exit(2);
  }
  // The management listener (README "Metrics and traces"): /metrics alone, on its own address.
  let management: Awaited<ReturnType<typeof listen>> | null = null;
  const { listener } = config.metrics;
  if (broker.managementApp && listener) {
    try {
      management = await listen(broker.managementApp.fetch, {
        hostname: listener.host,
        port: listener.port,
        bodyTimeout: config.http.bodyTimeout,
      });
    } catch (err) {
      const message = listenFailure(err, listener.host, listener.port, 'ERRAND_METRICS');
      if (!message) throw err;
      process.stderr.write(`errand: ${message}\n`);
      await broker.close();
      process.exit(2);
    }
    log.info('metrics.listening', { host: listener.host, port: management.port });
  }
  log.info('broker.started', { issuer: config.issuer, port: http.port, db: config.db.url.replace(/\?.*$/, '') });
  void (async () => {
    const link = await broker.bootstrapLink();
    const lines = [
      '',
      `  Errand is running.`,
      `  Issuer:    ${config.issuer}`,
      `  Metadata:  ${config.issuer}/.well-known/oauth-authorization-server`,
      `  Admin:     ${config.issuer}/admin`,
      link
        ? `  First administrator: open this one-time setup link (valid 24 h, printed again on restart):\n             ${link}`
        : '  Sign in at the admin URL with an administrator account.',
      '',
    ];
    process.stderr.write(`${lines.join('\n')}\n`);
  })().catch((err: unknown) => log.error('bootstrap.failed', { err }));

  // Graceful stop (README "Shutdown"): stop accepting, answer what is in flight, end the streams,
  // commit and checkpoint the database, all within ERRAND_SHUTDOWN_TIMEOUT.
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    const started = Date.now();
    const boundMs = config.shutdown.timeout * 1000;
    let step = 'draining';
    log.info('broker.stopping', { signal, timeout: config.shutdown.timeout });
    setTimeout(() => {
      log.error('broker.stop_timed_out', { step, ms: Date.now() - started });
      process.exit(1);
    }, boundMs).unref();
    clearInterval(timer);
    broker.endStreams();
    // Scrapes are not worth waiting for: the management listener closes at once.
    management?.destroy();
    management?.server.close();
    const report = await http.drain({ deadline: started + boundMs - Math.min(CLOSE_RESERVE_MS, boundMs / 4) });
    if (!report.drained) {
      // Out of time: name what was still open, then close it unanswered.
      log.error('broker.drain_timed_out', {
        ms: report.ms,
        openRequests: report.openRequests,
        requests: report.requests,
        connections: report.connections,
      });
      http.destroy();
    }
    step = 'closing the database';
    await maintaining;
    await broker.close();
    // The spans still buffered go out before the process ends.
    step = 'flushing traces';
    await tracing?.shutdown(Math.max(0, Math.min(TRACE_FLUSH_MS, started + boundMs - Date.now() - 100)));
    log.info('broker.stopped', { signal, ms: Date.now() - started, clean: report.drained });
    process.exit(report.drained ? 0 : 1);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** What to do about a listen error a person can fix (the address is taken or not allowed), else null. */
function listenFailure(err: unknown, host: string, port: number, prefix = 'ERRAND'): string | null {
  const code = (err as NodeJS.ErrnoException).code;
  const at = `port ${port} on ${host}`;
  if (code === 'EADDRINUSE') return `${at} is already in use; set ${prefix}_PORT or stop the other process`;
  if (code === 'EACCES') {
    return `${at} may not be opened by this user (EACCES); set ${prefix}_PORT to a port above 1023 or grant the right to bind it`;
  }
  if (code === 'EADDRNOTAVAIL') {
    return `cannot listen on ${host} (EADDRNOTAVAIL): this machine has no such address; set ${prefix}_HOST to one of its addresses`;
  }
  return null;
}

main().catch((err: unknown) => {
  process.stderr.write(`errand: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
