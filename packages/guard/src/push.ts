import { randomUUID } from 'node:crypto';
import { CAEP_SESSION_REVOKED, CLIENT_ASSERTION_TYPE, canonicalizeResource, JWT_TYP, PATHS } from '@errand/protocol';
import { type CryptoKey, type KeyObject, SignJWT } from 'jose';
import { z } from 'zod';
import { readServerSentEvents } from './sse.js';

/** Errand's push channel, relative to the issuer. */
export const REVOCATION_EVENTS_PATH = PATHS.revocationEvents;
/** CAEP 1.0 `session-revoked`: the event Errand sends for each revoked token. */

/** Credentials of the resource-server client that opens the push channel (`private_key_jwt`). */
export interface PushOptions {
  clientId: string;
  privateKey: CryptoKey | KeyObject;
  kid: string;
  /** Signing algorithm of `privateKey` (default ES256). */
  alg?: string;
}

/** One revocation learnt over the push channel. */
export interface RevokedNotice {
  jti: string;
  taskId: string | null;
  /** When the broker revoked it (epoch seconds). */
  at: number;
}

const RevokedSetSchema = z.object({
  iss: z.string(),
  iat: z.number(),
  aud: z.string(),
  jti: z.string(),
  events: z.object({
    [CAEP_SESSION_REVOKED]: z.object({
      subject: z.object({ format: z.literal('opaque'), id: z.string().min(1).max(256) }),
      task_id: z.string().nullable().optional(),
      event_timestamp: z.number().optional(),
    }),
  }),
});

export interface PushDeps {
  issuer: string;
  resource: string;
  fetch: typeof fetch;
  now: () => number;
  clockSkew: number;
  /** How long a revoked `jti` is remembered when its token's `exp` is not known yet (seconds). */
  retain: number;
  /** Seconds of silence (no event, no heartbeat) after which the stream is presumed dead. */
  idleTimeout?: number;
}

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;

/**
 * The guard's end of Errand's revocation push channel: one long-lived SSE response carrying
 * SSF/CAEP `session-revoked` events for this resource's tokens. Revoked `jti`s are kept until the
 * token could no longer pass `exp` anyway. Lost connections are reopened with jittered backoff; the
 * status list covers whatever was missed meanwhile.
 */
export class RevocationPush {
  private readonly revoked = new Map<string, number>();
  private readonly listeners = new Set<(notice: RevokedNotice) => void>();
  private readonly stop = new AbortController();
  private running = false;
  private waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private lastPrune = 0;
  connected = false;

  constructor(
    private readonly deps: PushDeps,
    private readonly creds: PushOptions,
  ) {}

  /**
   * Starts the channel (once) and resolves when it is live; rejects when the next attempt fails.
   * The channel keeps retrying with backoff, except after a 4xx on its first attempt (a
   * configuration problem); calling `connect()` again then starts over.
   */
  connect(): Promise<void> {
    if (this.stop.signal.aborted) return Promise.reject(new Error('the revocation push channel is closed'));
    if (this.connected) return Promise.resolve();
    const waiting = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.running) {
      this.running = true;
      void this.run().finally(() => {
        this.running = false;
      });
    }
    return waiting;
  }

  /** Subscribes to revocations; returns the unsubscribe. */
  onRevoked(listener: (notice: RevokedNotice) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether `jti` was revoked; `exp` (the token's) lets the entry be dropped once the token is dead anyway. */
  isRevoked(jti: string, exp?: number): boolean {
    const until = this.revoked.get(jti);
    if (until === undefined) return false;
    if (exp !== undefined) this.revoked.set(jti, exp + this.deps.clockSkew);
    return true;
  }

  /** Closes the channel for good. */
  close(): void {
    this.stop.abort();
    this.connected = false;
    this.settle(new Error('the revocation push channel is closed'));
  }

  private settle(err?: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) err ? w.reject(err) : w.resolve();
  }

  private async run(): Promise<void> {
    let first = true;
    let backoff = MIN_BACKOFF_MS;
    while (!this.stop.signal.aborted) {
      let sawReady = false;
      try {
        await this.openOnce(() => {
          sawReady = true;
          backoff = MIN_BACKOFF_MS;
          this.connected = true;
          this.settle();
        });
        if (!sawReady) throw new Error('the revocation stream closed before it was ready');
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        this.connected = false;
        this.settle(this.stop.signal.aborted ? new Error('the revocation push channel is closed') : e);
        // The broker refused our credentials or audience from the start: retrying will not help.
        if (first && !sawReady && e instanceof RefusedError) return;
      }
      first = false;
      this.connected = false;
      if (this.stop.signal.aborted) return;
      if (!sawReady) backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      await sleep(backoff / 2 + Math.random() * (backoff / 2), this.stop.signal);
    }
  }

  private async openOnce(onReady: () => void): Promise<void> {
    const attempt = new AbortController();
    const onStop = () => attempt.abort();
    this.stop.signal.addEventListener('abort', onStop, { once: true });
    const idleMs = (this.deps.idleTimeout ?? 45) * 1000;
    let idle = setTimeout(() => attempt.abort(), idleMs);
    try {
      const res = await this.deps.fetch(`${this.deps.issuer}${REVOCATION_EVENTS_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/event-stream' },
        body: new URLSearchParams({
          client_assertion_type: CLIENT_ASSERTION_TYPE.jwtBearer,
          client_assertion: await this.assertion(),
          audience: this.deps.resource,
        }).toString(),
        redirect: 'error',
        signal: attempt.signal,
      });
      if (res.status >= 400 && res.status < 500)
        throw new RefusedError(`the revocation stream was refused (${res.status})`);
      if (res.status !== 200 || !res.body) throw new Error(`the revocation stream answered ${res.status}`);
      const onActivity = () => {
        clearTimeout(idle);
        idle = setTimeout(() => attempt.abort(), idleMs);
      };
      for await (const message of readServerSentEvents(res.body, onActivity, attempt.signal)) {
        if (message.event === 'ready') onReady();
        else if (message.event === 'revoked') this.receive(message.data);
      }
    } finally {
      clearTimeout(idle);
      this.stop.signal.removeEventListener('abort', onStop);
      attempt.abort();
    }
  }

  private receive(data: string): void {
    let parsed: z.infer<typeof RevokedSetSchema>;
    try {
      parsed = RevokedSetSchema.parse(JSON.parse(data));
    } catch {
      return;
    }
    if (parsed.iss !== this.deps.issuer || canonicalizeResource(parsed.aud) !== this.deps.resource) return;
    const event = parsed.events[CAEP_SESSION_REVOKED];
    const now = this.deps.now();
    this.prune(now);
    // The token's exp is not in the event: keep the jti for the longest a token can live.
    this.revoked.set(event.subject.id, now + this.deps.retain);
    const notice = { jti: event.subject.id, taskId: event.task_id ?? null, at: event.event_timestamp ?? parsed.iat };
    for (const listener of this.listeners) {
      try {
        listener(notice);
      } catch {
        // A listener's failure is its own; the revocation is recorded regardless.
      }
    }
  }

  private prune(now: number): void {
    if (now - this.lastPrune < 60) return;
    this.lastPrune = now;
    for (const [jti, until] of this.revoked) if (until < now) this.revoked.delete(jti);
  }

  private assertion(): Promise<string> {
    const now = Math.floor(this.deps.now());
    // RFC 7523bis: aud is the issuer alone; typ marks a client-authentication JWT.
    return new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: this.creds.alg ?? 'ES256', kid: this.creds.kid, typ: JWT_TYP.clientAuthentication })
      .setIssuer(this.creds.clientId)
      .setSubject(this.creds.clientId)
      .setAudience(this.deps.issuer)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(this.creds.privateKey);
  }
}

/** The broker answered 4xx: a configuration problem, not an outage. */
class RefusedError extends Error {}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export { CAEP_SESSION_REVOKED };
