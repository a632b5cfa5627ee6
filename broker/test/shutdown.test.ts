import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { Agent, type IncomingHttpHeaders, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, describe, expect, test } from 'vitest';
import { openDb } from '../../db/open.js';
import { issuedTokens } from '../../db/schema/index.js';
import { ClientStore } from '../../db/stores/client-store.js';
import { postgresMode } from '../../e2e/postgres/databases.js';
import type { Client } from '../core/client.js';
import { clientAssertion, freePort, type TestAgent } from './fixtures.js';

/**
 * SIGTERM and SIGINT stop the real broker process gracefully: under sustained keep-alive load with
 * a revocation push stream open, every request sent is answered (or refused before it is sent),
 * the stream ends cleanly, every token handed out is in the database, and the process exits 0.
 */

const ROOT = join(import.meta.dirname, '..', '..');
const RESOURCE = 'https://notes.example.test/api';
const WORKERS = 8;
const LOAD_MS = 2000;

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Broker {
  url: string;
  dir: string;
  child: ChildProcess;
  /** Parsed JSON log lines. */
  logs: { event?: string; [k: string]: unknown }[];
  exited: Promise<{ code: number | null; at: number }>;
}

async function newAgent(clientId: string, kind: 'agent' | 'resource_server') {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = `${clientId}-k1`;
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256' };
  const agent: TestAgent = { clientId, privateKey, publicJwk, kid };
  const client: Client = {
    id: clientId,
    kind,
    name: clientId,
    ownerId: null,
    source: 'admin',
    status: 'active',
    authMethod: 'private_key_jwt',
    secretHash: null,
    jwks: { keys: [publicJwk] },
    jwksUri: null,
    redirectUris: [],
    grantTypes: ['client_credentials'],
    scope: kind === 'agent' ? ['read'] : [],
    resources: kind === 'resource_server' ? [RESOURCE] : [],
    applicationType: null,
    metadata: {},
    createdAt: 0,
    lastUsedAt: null,
    expiresAt: null,
    cachedUntil: null,
  };
  return { agent, client };
}

/** A fresh data directory with a resource, an agent and the resource's server, set up before start. */
async function seed(dir: string) {
  const db = await openDb(`file:${join(dir, 'errand.db')}`);
  const clients = new ClientStore(db);
  await clients.insertResource({ id: 'res_notes', url: RESOURCE, name: 'notes', scopes: ['read'], createdAt: 0 });
  const worker = await newAgent('cli_worker', 'agent');
  const listener = await newAgent('cli_listener', 'resource_server');
  await clients.insert(worker.client);
  await clients.insert(listener.client);
  await db.close();
  return { worker: worker.agent, listener: listener.agent };
}

async function startProcess(env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'errand-stop-'));
  dirs.push(dir);
  const agents = await seed(dir);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['--conditions=@errand/source', '--import', 'tsx', 'broker/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      ERRAND_PORT: String(port),
      ERRAND_ISSUER: url,
      ERRAND_DATA_DIR: dir,
      ERRAND_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const logs: Broker['logs'] = [];
  let partial = '';
  child.stdout?.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line));
  });
  child.stderr?.resume();
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.once('exit', (code) => resolve({ code, at: Date.now() })),
  );
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (i > 300) throw new Error('the broker did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  const broker: Broker = { url, dir, child, logs, exited };
  return { broker, ...agents };
}

type Outcome =
  | { kind: 'answered'; status: number; headers: IncomingHttpHeaders; body: string; at: number }
  | { kind: 'failed'; code: string; reusedSocket: boolean; at: number };

/** One POST over `agent`; resolves with how it ended, never rejects. */
function post(url: string, form: Record<string, string>, agent: Agent): Promise<Outcome> {
  return new Promise((resolve) => {
    const body = new URLSearchParams(form).toString();
    const req = request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
    });
    let settled = false;
    const fail = (err: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      resolve({ kind: 'failed', code: err.code ?? err.message, reusedSocket: req.reusedSocket, at: Date.now() });
    };
    req.on('error', fail);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('error', fail);
      res.on('end', () => {
        if (settled) return;
        settled = true;
        resolve({ kind: 'answered', status: res.statusCode ?? 0, headers: res.headers, body: text, at: Date.now() });
      });
    });
    req.end(body);
  });
}

/** Opens the revocation push stream on its own connection; resolves once `ready` has arrived. */
function openPushStream(url: string, assertion: string) {
  const body = new URLSearchParams({
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
    audience: RESOURCE,
  }).toString();
  let text = '';
  let onReady: () => void;
  const ready = new Promise<void>((r) => {
    onReady = r;
  });
  const ended = new Promise<{ clean: boolean; error?: string; at: number }>((resolve) => {
    const req = request(`${url}/events/revocations`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/event-stream' },
    });
    req.on('error', (err) => resolve({ clean: false, error: err.message, at: Date.now() }));
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
        if (text.includes('event: ready')) onReady();
      });
      res.on('aborted', () => resolve({ clean: false, error: 'aborted', at: Date.now() }));
      res.on('error', (err) => resolve({ clean: false, error: err.message, at: Date.now() }));
      res.on('end', () => resolve({ clean: true, at: Date.now() }));
    });
    req.end(body);
  });
  return { ready, ended, text: () => text };
}

// Seeds the embedded file before start and checks its WAL checkpoint on the way out.
describe.skipIf(postgresMode()).each(['SIGTERM', 'SIGINT'] as const)('%s under sustained keep-alive load', (signal) => {
  test('drains: every request answered or refused unsent, the push stream ends cleanly, no token lost, exit 0', async () => {
    const { broker, worker, listener } = await startProcess({ ERRAND_SHUTDOWN_TIMEOUT: '20' });
    const stream = openPushStream(broker.url, await clientAssertion(listener, broker.url));
    await stream.ready;

    const outcomes: Outcome[] = [];
    let inFlight = 0;
    const workers = Array.from({ length: WORKERS }, async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (;;) {
          const form = {
            grant_type: 'client_credentials',
            resource: RESOURCE,
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: await clientAssertion(worker, broker.url),
          };
          inFlight += 1;
          const outcome = await post(`${broker.url}/token`, form, agent);
          inFlight -= 1;
          outcomes.push(outcome);
          // The broker is gone (or broke a request): this worker is done.
          if (outcome.kind === 'failed' || outcome.status !== 200) return;
        }
      } finally {
        agent.destroy();
      }
    });

    await new Promise((r) => setTimeout(r, LOAD_MS));
    const beforeSignal = outcomes.length;
    const inFlightAtSignal = inFlight;
    const signalledAt = Date.now();
    broker.child.kill(signal);
    const { code, at: exitedAt } = await broker.exited;
    await Promise.all(workers);
    const streamEnd = await stream.ended;

    const answered = outcomes.filter((o) => o.kind === 'answered');
    const failed = outcomes.filter((o) => o.kind === 'failed');
    const afterSignal = answered.filter((o) => o.at >= signalledAt);
    const stopped = broker.logs.find((l) => l.event === 'broker.stopped');
    console.log(
      `${signal}: ${beforeSignal} requests answered before the signal, ${inFlightAtSignal} in flight at it, ` +
        `${afterSignal.length} answered after it (${afterSignal.filter((o) => o.headers.connection === 'close').length} with Connection: close), ` +
        `${failed.length} failed (${failed.map((o) => o.code).join(', ') || 'none'}); time to drain under load: ${exitedAt - signalledAt} ms from the signal to exit ` +
        `(broker.stopped says ${String(stopped?.ms)} ms)`,
    );

    expect(beforeSignal).toBeGreaterThan(WORKERS);
    expect(code).toBe(0);
    expect(stopped).toMatchObject({ signal, clean: true });
    // Every request sent got a whole answer, all of them 200; the only failures are connections
    // refused before a byte was sent, never a reset of a request in flight.
    for (const o of answered) expect(o.status, o.body).toBe(200);
    for (const o of failed) expect(o.code).toBe('ECONNREFUSED');
    // The push stream ended as a complete response, telling the client to reconnect.
    expect(streamEnd).toMatchObject({ clean: true });
    expect(stream.text()).toContain(': the broker is shutting down; reconnect');
    expect(broker.logs.some((l) => l.event === 'revocation_stream.closed' && l.reason === 'shutdown')).toBe(true);

    // Every token a worker received is in the database, and the WAL was checkpointed on the way out.
    const wal = join(broker.dir, 'errand.db-wal');
    expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0);
    const jtis = answered.map((o) => (JSON.parse(o.body) as { access_token: string }).access_token.split('.')[1]!);
    const received = jtis.map((p) => (JSON.parse(Buffer.from(p, 'base64url').toString()) as { jti: string }).jti);
    const db = await openDb(`file:${join(broker.dir, 'errand.db')}`);
    try {
      const stored = new Set((await db.q.select({ jti: issuedTokens.jti }).from(issuedTokens)).map((r) => r.jti));
      expect(received.filter((jti) => !stored.has(jti))).toEqual([]);
    } finally {
      await db.close();
    }
  }, 90_000);
});

// Seeds the embedded file before start.
describe.skipIf(postgresMode())('a stop that runs out of time', () => {
  test('names the request still open, closes it and the database, and exits 1 within the bound', async () => {
    const { broker } = await startProcess({ ERRAND_SHUTDOWN_TIMEOUT: '2', ERRAND_BODY_TIMEOUT: '120' });
    // A request whose body never comes stays in flight through the whole stop.
    const port = Number(new URL(broker.url).port);
    const socket = connect(port, '127.0.0.1');
    const socketClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `POST /token HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ng`,
    );
    await new Promise((r) => setTimeout(r, 300));

    const signalledAt = Date.now();
    broker.child.kill('SIGTERM');
    const { code, at } = await broker.exited;
    await socketClosed;
    console.log(`out of time: exited ${code} after ${at - signalledAt} ms (bound 2 s)`);

    expect(code).toBe(1);
    expect(at - signalledAt).toBeLessThan(10_000);
    const timedOut = broker.logs.find((l) => l.event === 'broker.drain_timed_out');
    expect(timedOut).toMatchObject({ openRequests: 1, requests: [{ method: 'POST', path: '/token' }] });
    expect(broker.logs.find((l) => l.event === 'broker.stopped')).toMatchObject({ clean: false });
    const wal = join(broker.dir, 'errand.db-wal');
    expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0);
  }, 60_000);
});
