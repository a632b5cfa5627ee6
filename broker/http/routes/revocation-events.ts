import { CAEP_SESSION_REVOKED, canonicalizeResource, PATHS } from '@errand/protocol';
import { Hono } from 'hono';
import { type SSEStreamingApi, streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { OAuthError } from '../../core/errors.js';
import type { Metrics } from '../../core/metrics.js';
import type { ClientAuthenticator } from '../../identity/client-auth.js';
import type { RevocationEvent } from '../../services/tasks.js';
import { newId } from '../../tokens/random.js';
import { authenticateClient } from '../middleware/client-auth.js';
import { parseParams, readForm } from '../params.js';
import { type StreamLimit, tooManyStreams } from '../stream-limit.js';
import type { AppEnv } from '../types.js';

/** Where resource servers (the guard) open the push channel. */
export const REVOCATION_EVENTS_PATH = PATHS.revocationEvents;
/** CAEP 1.0 §3.1 event type; Errand sends it per revoked access token (subject = its `jti`). */

const HEARTBEAT_MS = 15_000;
/**
 * The last words of a stream ended because the process is stopping: a comment saying so, and the
 * reconnection delay (HTML Living Standard §9.2.6 `retry`, in ms) for EventSource-style clients.
 */
const SHUTDOWN_NOTICE = ': the broker is shutting down; reconnect\nretry: 1000\n\n';

// `audience` is multi-valued on the wire (RFC 8693); here exactly one resource is named.
const StreamParams = z.object({
  audience: z.array(z.string().min(1).max(2048)).length(1, 'name exactly one resource'),
});

export interface RevocationEventDeps {
  auth: ClientAuthenticator;
  issuer: string;
  onRevoked(listener: (events: RevocationEvent[]) => void): () => void;
  /** Open streams per client and in total; a stream beyond them is refused with 429. */
  streams: StreamLimit;
  /** Aborted when the process starts to stop: open streams end with a reconnect notice, new ones get 503. */
  stopping: AbortSignal;
  heartbeatMs?: number;
  /** Counts open streams and how long events take to reach them (README "Metrics and traces"). */
  metrics?: Pick<Metrics, 'pushSubscribers' | 'pushDelivered'>;
}

/** The SSF/CAEP `session-revoked` SET payload for one revoked token (sent unsigned over the stream). */
export function sessionRevokedSet(issuer: string, audience: string, e: RevocationEvent) {
  return {
    iss: issuer,
    iat: e.at,
    aud: audience,
    jti: newId('evt'),
    events: {
      [CAEP_SESSION_REVOKED]: {
        subject: { format: 'opaque', id: e.jti },
        task_id: e.taskId,
        event_timestamp: e.at,
      },
    },
  };
}

/**
 * The revocation push channel (OpenID CAEP `session-revoked` events, README "Revocation push"): a resource-server client opens a server-sent event
 * stream for one of its resources and receives a `revoked` event for each of that resource's
 * tokens the moment the task ending them commits. The status list stays the bound for everyone
 * else; this only makes revocation sub-second for servers that listen.
 */
export function revocationEventRoutes(deps: RevocationEventDeps) {
  return new Hono<AppEnv>().post(REVOCATION_EVENTS_PATH, async (c) => {
    if (deps.stopping.aborted) {
      throw new OAuthError('temporarily_unavailable', 'the broker is shutting down; reconnect', {
        headers: { 'Retry-After': '1' },
      });
    }
    const form = await readForm(c);
    const auth = await authenticateClient(c, form, deps.auth);
    // Like introspection (RFC 7662 §2.1): who learns about revocations must prove who it is.
    if (auth.method === 'none') {
      throw new OAuthError('invalid_client', 'the revocation event stream requires client authentication');
    }
    const p = parseParams(StreamParams, form);
    const audience = canonicalizeResource(p.audience[0]!);
    const owned = auth.client.resources.map(canonicalizeResource);
    if (auth.client.kind !== 'resource_server' || audience === null || !owned.includes(audience)) {
      throw new OAuthError('invalid_request', 'audience is not a resource this client speaks for', { status: 403 });
    }
    const log = c.var.log;
    const clientId = auth.client.id;
    const release = deps.streams.acquire(clientId);
    if (!release) {
      log.info('revocation_stream.refused', { clientId, audience, reason: 'stream_limit' });
      throw tooManyStreams();
    }
    const serve = async (stream: SSEStreamingApi) => {
      let sending: Promise<unknown> = stream.writeSSE({ event: 'ready', data: JSON.stringify({ aud: audience }) });
      const send = (write: (s: SSEStreamingApi) => Promise<unknown>) => {
        sending = sending.then(() => write(stream)).catch(() => undefined);
      };
      // Delivery is timed from when the revocation was written (in this process or another on the database).
      const unsubscribe = deps.onRevoked((events) => {
        for (const e of events) {
          if (canonicalizeResource(e.audience) !== audience) continue;
          const data = JSON.stringify(sessionRevokedSet(deps.issuer, audience, e));
          send(async (s) => {
            await s.writeSSE({ event: 'revoked', data });
            if (!s.aborted) deps.metrics?.pushDelivered(Math.max(0, Date.now() - e.writtenMs) / 1000);
          });
        }
      });
      deps.metrics?.pushSubscribers(1);
      const heartbeat = setInterval(() => send((s) => s.write(': heartbeat\n\n')), deps.heartbeatMs ?? HEARTBEAT_MS);
      log.info('revocation_stream.opened', { clientId, audience });
      let stop = () => {};
      try {
        await new Promise<void>((resolve) => {
          stop = resolve;
          stream.onAbort(resolve);
          c.req.raw.signal.addEventListener('abort', () => resolve(), { once: true });
          deps.stopping.addEventListener('abort', stop, { once: true });
          if (stream.aborted || c.req.raw.signal.aborted || deps.stopping.aborted) resolve();
        });
        // Ended by the stop, not the client: say so after whatever was already queued.
        if (!stream.aborted && deps.stopping.aborted) {
          send((s) => s.write(SHUTDOWN_NOTICE));
          await sending;
        }
      } finally {
        deps.stopping.removeEventListener('abort', stop);
        clearInterval(heartbeat);
        unsubscribe();
        deps.metrics?.pushSubscribers(-1);
        log.info('revocation_stream.closed', {
          clientId,
          audience,
          ...(deps.stopping.aborted ? { reason: 'shutdown' } : {}),
        });
      }
    };
    c.header('X-Accel-Buffering', 'no');
    return streamSSE(c, async (stream) => {
      try {
        await serve(stream);
      } finally {
        release();
      }
    });
  });
}
