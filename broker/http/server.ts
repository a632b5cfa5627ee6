import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';

/** How long Node waits for a request's headers (its own default), before the body time limit starts. */
const HEADERS_TIMEOUT_MS = 60_000;
/** After a stop begins, how long a keep-alive connection may stay idle before it is closed. */
const KEEP_ALIVE_GRACE_MS = 1000;
/** Requests named in the report of a drain that ran out of time. */
const MAX_REPORTED = 20;

type Fetch = (request: Request, env: { incoming: IncomingMessage; outgoing: ServerResponse }) => unknown;

export interface ListenOptions {
  hostname: string;
  port: number;
  /** Seconds a client has to send a request body once its headers are in (see `bodyDeadline`). */
  bodyTimeout: number;
}

/** A request still being answered. */
export interface OpenRequest {
  method: string;
  path: string;
  ageMs: number;
}

export interface DrainReport {
  /** Every connection closed before the deadline. */
  drained: boolean;
  ms: number;
  /** Requests still open at the deadline (none when drained): how many, and the first few. */
  openRequests: number;
  requests: OpenRequest[];
  /** Connections still open at the deadline. */
  connections: number;
}

export interface HttpServer {
  readonly server: Server;
  readonly port: number;
  /**
   * Stops the HTTP side gracefully. New connections are refused at once. Requests in flight, and
   * any request that still arrives on an open keep-alive connection, are answered with
   * `Connection: close`, so each connection ends after its next answer; a connection left idle for
   * the keep-alive grace is closed. Resolves when the last connection has closed, or at `deadline`
   * (epoch ms) with what was still open. Long-lived streams must be ended by their owners.
   */
  drain(opts: { deadline: number; keepAliveGraceMs?: number }): Promise<DrainReport>;
  /** Closes every connection still open, answered or not (after a drain that ran out of time). */
  destroy(): void;
}

/**
 * Serves `fetch` on Node's HTTP server with bounded request reading, and keeps track of requests
 * and connections so that the server can be drained.
 *
 * ```ts
 * const http = await listen(app.fetch, { hostname: '127.0.0.1', port: 8787, bodyTimeout: 15 });
 * process.on('SIGTERM', async () => { const report = await http.drain({ deadline: Date.now() + 20_000 }); … });
 * ```
 */
export async function listen(fetch: Fetch, opts: ListenOptions): Promise<HttpServer> {
  const inFlight = new Map<ServerResponse, { method: string; path: string; startedAt: number }>();
  const sockets = new Set<Socket>();
  let draining = false;

  const tracked: Fetch = (request, env) => {
    const { incoming, outgoing } = env;
    inFlight.set(outgoing, {
      method: incoming.method ?? '',
      path: (incoming.url ?? '').replace(/\?.*$/, ''),
      startedAt: Date.now(),
    });
    outgoing.once('close', () => inFlight.delete(outgoing));
    // RFC 9112 §9.6: the client learns from the answer itself not to send on this connection again.
    if (draining) outgoing.setHeader('Connection', 'close');
    return fetch(request, env);
  };
  const server = createAdaptorServer({
    fetch: tracked as Parameters<typeof createAdaptorServer>[0]['fetch'],
    hostname: opts.hostname,
    serverOptions: {
      headersTimeout: HEADERS_TIMEOUT_MS,
      // A backstop only: the app answers a slow body with 408 first (`bodyDeadline`).
      requestTimeout: HEADERS_TIMEOUT_MS + opts.bodyTimeout * 1000,
      connectionsCheckingInterval: 5000,
    },
  }) as Server;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.hostname, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;

  return {
    server,
    port,
    async drain({ deadline, keepAliveGraceMs = KEEP_ALIVE_GRACE_MS }) {
      const started = Date.now();
      draining = true;
      // net.Server#close stops accepting and calls back once the last connection has closed. Not
      // http.Server#close: it also drops the idle keep-alive connections at once, and a client may
      // be writing its next request on one of them at that moment (a reset, not an answer).
      const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
      for (const outgoing of inFlight.keys()) {
        if (!outgoing.headersSent) outgoing.setHeader('Connection', 'close');
      }
      // Answers whose headers already went out as keep-alive (streams) leave an idle connection:
      // it is closed once idle this long, like the ones idle now.
      // A short bound shortens the grace, so that idle connections never run the drain out of time.
      const graceMs = Math.min(keepAliveGraceMs, Math.max(0, (deadline - started) / 2));
      server.keepAliveTimeout = Math.max(1, graceMs);
      const grace = setTimeout(() => server.closeIdleConnections(), graceMs);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        closed.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), Math.max(0, deadline - Date.now()));
        }),
      ]);
      clearTimeout(grace);
      clearTimeout(timer);
      const now = Date.now();
      const requests = timedOut
        ? [...inFlight.values()]
            .slice(0, MAX_REPORTED)
            .map((r) => ({ method: r.method, path: r.path, ageMs: now - r.startedAt }))
        : [];
      return {
        drained: !timedOut,
        ms: now - started,
        openRequests: timedOut ? inFlight.size : 0,
        requests,
        connections: timedOut ? sockets.size : 0,
      };
    },
    destroy() {
      for (const socket of sockets) socket.destroy();
    },
  };
}
