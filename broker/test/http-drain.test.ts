import { Agent, type IncomingHttpHeaders, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, test } from 'vitest';
import { readServerSentEvents } from '../../packages/guard/src/sse.js';
import { type HttpServer, listen } from '../http/server.js';
import { addAgent, adminApi, clientAssertion, startBroker, type TestBroker } from './fixtures.js';

/** The HTTP side of a graceful stop, step by step, on a real server (the process-level run is shutdown.test.ts). */

const servers: HttpServer[] = [];
const brokers: TestBroker[] = [];
afterAll(async () => {
  for (const s of servers) s.destroy();
  for (const b of brokers) await b.close();
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  socket: Socket;
}

function get(url: string, agent: Agent | false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent });
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, socket: req.socket! }));
    });
    req.end();
  });
}

function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** A server whose `/slow` answers only when released and whose `/stuck` never does. */
async function gatedServer() {
  let release = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const http = await listen(
    async (req) => {
      const path = new URL(req.url).pathname;
      if (path === '/slow') await gate;
      if (path === '/stuck') await new Promise(() => {});
      return new Response(`ok ${path}`);
    },
    { hostname: '127.0.0.1', port: 0, bodyTimeout: 5 },
  );
  servers.push(http);
  return { http, base: `http://127.0.0.1:${http.port}`, release };
}

const closedSocket = (s: Socket) =>
  new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

describe('draining the HTTP server', () => {
  test('refuses new connections, answers in-flight and late keep-alive requests with Connection: close, closes idle ones', async () => {
    const { http, base, release } = await gatedServer();
    const busy = new Agent({ keepAlive: true, maxSockets: 1 });
    const idle = new Agent({ keepAlive: true, maxSockets: 1 });
    const late = new Agent({ keepAlive: true, maxSockets: 1 });
    const idleAnswer = await get(`${base}/fast`, idle);
    const lateFirst = await get(`${base}/fast`, late);
    expect(idleAnswer.headers.connection).toBe('keep-alive');
    const inFlight = get(`${base}/slow`, busy);
    await new Promise((r) => setTimeout(r, 100));

    const draining = http.drain({ deadline: Date.now() + 10_000, keepAliveGraceMs: 500 });
    expect(await refused(http.port)).toBe('ECONNREFUSED');
    // A request on a connection that was idle when the stop began: answered, and told to go elsewhere.
    const lateAnswer = await get(`${base}/fast`, late);
    expect(lateAnswer.socket).toBe(lateFirst.socket);
    expect([lateAnswer.status, lateAnswer.body, lateAnswer.headers.connection]).toEqual([200, 'ok /fast', 'close']);
    // The request in flight completes, also with Connection: close.
    release();
    const slow = await inFlight;
    expect([slow.status, slow.body, slow.headers.connection]).toEqual([200, 'ok /slow', 'close']);
    // The connection nobody used again is closed after the grace.
    await closedSocket(idleAnswer.socket);

    const report = await draining;
    expect(report).toMatchObject({ drained: true, openRequests: 0, requests: [], connections: 0 });
    for (const a of [busy, idle, late]) a.destroy();
  });

  test('past the deadline the report names what is still open, and destroy closes it', async () => {
    const { http, base } = await gatedServer();
    const stuck = get(`${base}/stuck?secret=not-logged`, false).catch((err: NodeJS.ErrnoException) => err.code);
    await new Promise((r) => setTimeout(r, 100));
    const report = await http.drain({ deadline: Date.now() + 300 });
    expect(report).toMatchObject({
      drained: false,
      openRequests: 1,
      requests: [{ method: 'GET', path: '/stuck' }],
      connections: 1,
    });
    http.destroy();
    expect(await stuck).toBe('ECONNRESET');
  });
});

describe('revocation push streams when the broker stops', () => {
  test('an open stream ends with a reconnect notice; a new one is refused with 503 and Retry-After', async () => {
    const tb = await startBroker();
    brokers.push(tb);
    const resource = 'https://notes.example.test/mcp';
    const rs = await addAgent(await adminApi(tb), {
      kind: 'resource_server',
      name: resource,
      resources: [resource],
      grant_types: ['client_credentials'],
    });
    const open = async () =>
      fetch(`${tb.url}/events/revocations`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: await clientAssertion(rs, tb.url),
          audience: resource,
        }).toString(),
      });
    const res = await open();
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('event: ready')) text += decoder.decode((await reader.read()).value);

    tb.broker.endStreams();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    expect(text).toContain(': the broker is shutting down; reconnect\nretry: 1000\n\n');
    // The guard's parser sees the end of a complete stream, no error.
    const events = [];
    for await (const e of readServerSentEvents(new Response(text).body!)) events.push(e.event);
    expect(events).toEqual(['ready']);

    const again = await open();
    expect(again.status).toBe(503);
    expect(again.headers.get('retry-after')).toBe('1');
    expect(await again.json()).toMatchObject({ error: 'temporarily_unavailable' });
  });
});
