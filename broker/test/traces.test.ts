import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { delegateViaCiba, delegationWorld, GRANT_EXCHANGE, TT_JWT } from './delegation-fixtures.js';
import {
  clientAssertion,
  dbEnv,
  freePort,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

/**
 * OpenTelemetry traces (README "Metrics and traces"): the real broker runs as its own process with
 * the standard OTEL_* variables pointing at a small OTLP/HTTP receiver here. The world (agent,
 * user, delegation) is set up by an in-process broker on the same database and issuer; the traced
 * process then serves the exchanges. Spans are batched for ten minutes, so only the flush at
 * shutdown can deliver them.
 */

const ROOT = join(import.meta.dirname, '..', '..');
const NOTES = 'https://notes.example.test/mcp';
const ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: OtlpValue }[];
  status?: { code?: number };
}
interface OtlpExport {
  resourceSpans: {
    resource: { attributes: { key: string; value: OtlpValue }[] };
    scopeSpans: { spans: OtlpSpan[] }[];
  }[];
}

/** OTLP span kinds (opentelemetry-proto trace.proto `SpanKind`). */
const KIND = { internal: 1, server: 2, client: 3 } as const;
const STATUS_ERROR = 2;

/** OTLP/JSON ids are hex; a receiver may also see base64 from other exporters. */
const hex = (id: string | undefined) =>
  id === undefined || id === '' ? undefined : /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex');

function attrs(span: { attributes: { key: string; value: OtlpValue }[] }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of span.attributes ?? []) {
    out[key] =
      value.stringValue ??
      (value.intValue !== undefined ? Number(value.intValue) : undefined) ??
      value.boolValue ??
      value.doubleValue;
  }
  return out;
}

let tb: TestBroker;
let agent: TestAgent;
let credential: string;
let delegationId: string;
let receiver: Server;
let docs: Server;
const exports: { path: string; contentType: string; body: OtlpExport }[] = [];
let child: ChildProcess;
/** The traced process's stdout: its JSON log lines. */
const stdout: string[] = [];
let childUrl: string;
let managementUrl: string;
const output: string[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      exports.push({
        path: req.url ?? '',
        contentType: req.headers['content-type'] ?? '',
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport,
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  docs = createServer((_req, res) => res.writeHead(404).end());
  await new Promise<void>((resolve) => docs.listen(0, '127.0.0.1', resolve));

  tb = await startBroker();
  const world = await delegationWorld(tb, { agents: 1 });
  agent = world.agents[0]!;
  ({ credential, delegationId } = await delegateViaCiba(tb, world.as, agent, world.user, {
    scope: 'openid notes:read',
    resource: NOTES,
  }));

  const [port, managementPort] = [await freePort(), await freePort()];
  childUrl = `http://127.0.0.1:${port}`;
  managementUrl = `http://127.0.0.1:${managementPort}`;
  child = spawn(process.execPath, ['--import', 'tsx', 'broker/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      ERRAND_PORT: String(port),
      ERRAND_ISSUER: tb.url,
      ERRAND_DATA_DIR: tb.dir,
      ...(await dbEnv(tb.dir)),
      ERRAND_LOG_LEVEL: 'info',
      ERRAND_FETCH_ALLOW_PRIVATE: 'true',
      ERRAND_METRICS_PORT: String(managementPort),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '600000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => {
    output.push(d.toString());
    stdout.push(d.toString());
  });
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the broker exited: ${output.join('')}`);
    if (Date.now() > deadline) throw new Error(`the broker did not become ready: ${output.join('')}`);
    const ready = await fetch(`${childUrl}/readyz`).catch(() => null);
    if (ready?.status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
}, 90_000);

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await new Promise<void>((resolve) => receiver?.close(() => resolve()));
  await new Promise<void>((resolve) => docs?.close(() => resolve()));
  await tb?.close();
});

describe('traces over OTLP/HTTP', () => {
  test('request, exchange, storage and fetch spans, continuing the caller trace, with ids and no secrets', async () => {
    const sent: string[] = [credential];
    const exchangeAt = async (scope: string, headers: Record<string, string> = {}) => {
      const assertion = await clientAssertion(agent, tb.url);
      sent.push(assertion);
      return postForm(
        `${childUrl}/token`,
        {
          grant_type: GRANT_EXCHANGE,
          subject_token: credential,
          subject_token_type: TT_JWT,
          resource: NOTES,
          scope,
          client_assertion_type: ASSERTION,
          client_assertion: assertion,
        },
        headers,
      );
    };
    const callerTrace = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const issued = await exchangeAt('notes:read', { traceparent: `00-${callerTrace}-${callerSpan}-01` });
    expect(issued.status).toBe(200);
    const body = (await issued.json()) as { access_token: string; task_id: string };
    sent.push(body.access_token);
    const denied = await exchangeAt('notes:read notes:delete');
    expect(denied.status).toBe(400);
    const docsOrigin = `http://127.0.0.1:${(docs.address() as AddressInfo).port}`;
    const cimd = await postForm(`${childUrl}/token`, {
      grant_type: 'client_credentials',
      client_id: `${docsOrigin}/client.json`,
    });
    expect(cimd.status).toBeGreaterThanOrEqual(400);

    // The management listener serves /metrics (loopback, no token set); the main listener does not.
    const scraped = await fetch(`${managementUrl}/metrics`);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toMatch(
      /^errand_tokens_issued_total\{grant_type="urn:ietf:params:oauth:grant-type:token-exchange"\} 1$/m,
    );
    expect((await fetch(`${childUrl}/metrics`)).status).toBe(404);
    expect((await fetch(`${managementUrl}/token`)).status).toBe(404);

    // Nothing is exported before the stop: the batch delay is ten minutes.
    expect(exports).toHaveLength(0);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(exports.length).toBeGreaterThan(0);
    expect(exports.every((e) => e.path === '/v1/traces' && e.contentType.startsWith('application/json'))).toBe(true);

    const resources = exports.flatMap((e) => e.body.resourceSpans);
    expect(attrs(resources[0]!.resource)['service.name']).toBe('errand');
    const spans = resources
      .flatMap((r) => r.scopeSpans.flatMap((s) => s.spans))
      .map((s) => ({
        ...s,
        traceId: hex(s.traceId)!,
        spanId: hex(s.spanId)!,
        parentSpanId: hex(s.parentSpanId),
        a: attrs(s),
      }));

    // The server span continues the caller's trace (W3C traceparent).
    const server = spans.find((s) => s.traceId === callerTrace && s.kind === KIND.server);
    expect(server).toBeDefined();
    expect(server!.parentSpanId).toBe(callerSpan);
    expect(server!.name).toBe('POST /token');
    expect(server!.a).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/token',
      'http.response.status_code': 200,
      'errand.client_id': agent.clientId,
    });

    // The exchange decision is its child, and names the task, the client and the delegation.
    const decision = spans.find((s) => s.name === 'errand.exchange' && s.parentSpanId === server!.spanId);
    expect(decision).toBeDefined();
    expect(decision!.kind).toBe(KIND.internal);
    expect(decision!.a).toMatchObject({
      'errand.client_id': agent.clientId,
      'errand.task_id': body.task_id,
      'errand.delegation_id': delegationId,
      'errand.exchange.outcome': 'issued',
    });
    // Its storage writes are its children, with the size of the group commit they went out in.
    const writes = spans.filter((s) => s.name === 'db.write' && s.parentSpanId === decision!.spanId);
    expect(writes.length).toBeGreaterThan(0);
    for (const w of writes) expect(w.a['errand.group_commit.size']).toBeGreaterThanOrEqual(1);

    // A denial says why, and is marked failed with the OAuth error code.
    const refusal = spans.find((s) => s.name === 'errand.exchange' && s.a['errand.exchange.outcome'] === 'denied');
    expect(refusal).toBeDefined();
    expect(refusal!.a).toMatchObject({
      'errand.denial_reason': 'scope_exceeds_parent',
      'error.type': 'invalid_scope',
      'errand.delegation_id': delegationId,
    });
    expect(refusal!.status?.code).toBe(STATUS_ERROR);
    const refusedRequest = spans.find((s) => s.spanId === refusal!.parentSpanId);
    expect(refusedRequest).toMatchObject({ kind: KIND.server, name: 'POST /token' });
    expect(refusedRequest!.a['http.response.status_code']).toBe(400);
    expect(refusedRequest!.traceId).not.toBe(callerTrace);

    // The request's log lines name its trace.
    const requestId = issued.headers.get('x-request-id');
    const lines = stdout
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const access = lines.find((l) => l.event === 'http.request' && l.requestId === requestId);
    expect(access).toMatchObject({ route: '/token', status: 200, traceId: callerTrace });
    expect(server!.a['errand.request_id']).toBe(requestId);

    // An outbound fetch is a client span under its request, naming the host only.
    const fetchSpan = spans.find((s) => s.name === 'errand.fetch');
    expect(fetchSpan).toBeDefined();
    expect(fetchSpan!.kind).toBe(KIND.client);
    expect(fetchSpan!.a).toMatchObject({ 'errand.fetch.kind': 'client_metadata', 'server.address': '127.0.0.1' });
    expect(spans.find((s) => s.spanId === fetchSpan!.parentSpanId)?.kind).toBe(KIND.server);

    // No attribute anywhere carries a token, an assertion or the credential.
    const everything = JSON.stringify(spans.map((s) => s.attributes));
    for (const secret of sent) {
      expect(everything).not.toContain(secret);
      // Not even a large piece of one (a JWT's signature, say).
      expect(everything).not.toContain(secret.split('.').pop()!);
    }
  }, 60_000);
});
