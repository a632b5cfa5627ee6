import { serve } from '@hono/node-server';
import { buildBroker, StartupError } from './broker.js';
import { ConfigError, loadConfig, maintenanceIntervalMs } from './config.js';
import { createLogger } from './log.js';

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
  const timer = setInterval(() => {
    broker.maintain().catch((err: unknown) => log.error('maintenance.failed', { err }));
  }, maintenanceMs);
  timer.unref();

  const server = serve({ fetch: broker.app.fetch, hostname: config.host, port: config.port }, (info) => {
    log.info('broker.started', { issuer: config.issuer, port: info.port, db: config.db.url.replace(/\?.*$/, '') });
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
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('broker.stopping', { signal });
    clearInterval(timer);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    server.close(() => {
      broker.close();
      log.info('broker.stopped', {});
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`errand: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
