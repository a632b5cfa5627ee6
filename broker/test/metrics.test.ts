import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readServerSentEvents } from '../../packages/guard/src/sse.js';
import { listen } from '../http/server.js';
import { delegateViaCiba, delegationWorld, exchange, exchangeRaw, TT_JWT, userApi } from './delegation-fixtures.js';
import { addAgent, clientAssertion, postForm, startBroker, type TestAgent, type TestBroker } from './fixtures.js';

/**
 * GET /metrics (README "Metrics and traces"): off by default, guarded by a bearer token, and every
 * family moves when the thing it counts happens. Scrapes are parsed from the text format.
 */

const NOTES = 'https://notes.example.test/mcp';
const ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const TOKEN = `mt-${'4f9c2a7b1e'.repeat(4)}`;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (samples only; comments skipped). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

let tb: TestBroker;
let off: TestBroker;
let world: Awaited<ReturnType<typeof delegationWorld>>;
let agent: TestAgent;
let rs: TestAgent;
let docs: Server;
let docsOrigin: string;
/** An agent key published at the documents server's /jwks.json. */
let published: { privateKey: CryptoKey; publicJwk: Record<string, unknown>; kid: string };
const open: AbortController[] = [];

beforeAll(async () => {
  tb = await startBroker({ ERRAND_METRICS_TOKEN: TOKEN, ERRAND_FETCH_ALLOW_PRIVATE: 'true' });
  off = await startBroker();
  world = await delegationWorld(tb, { agents: 1 });
  agent = world.agents[0]!;
  rs = await addAgent(world.api, {
    kind: 'resource_server',
    name: 'notes server',
    resources: [NOTES],
    grant_types: ['client_credentials'],
  });
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  published = {
    privateKey,
    kid: 'published-1',
    publicJwk: { ...(await exportJWK(publicKey)), kid: 'published-1', alg: 'ES256' },
  };
  // Client ID Metadata Documents for the outbound-fetch counters (one answers, one is missing) and a key set.
  docs = createServer((req, res) => {
    if (req.url === '/found.json') res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    else if (req.url === '/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [published.publicJwk] }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => docs.listen(0, '127.0.0.1', resolve));
  docsOrigin = `http://127.0.0.1:${(docs.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const a of open) a.abort();
  await new Promise<void>((resolve) => docs?.close(() => resolve()));
  await off?.close();
  await tb?.close();
});

async function scrape(): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`${tb.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, samples: parseMetrics(text) };
}

/** The value of one series (0 when absent); labels not named are summed over. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}

async function valueNow(name: string, labels: Record<string, string> = {}): Promise<number> {
  return value((await scrape()).samples, name, labels);
}

describe('/metrics is off or guarded', () => {
  test('off by default: 404, as for any path nothing serves', async () => {
    const res = await fetch(`${off.url}/metrics`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: 'not_found' });
    const withToken = await fetch(`${off.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(withToken.status).toBe(404);
    expect(off.broker.managementApp).toBeNull();
  });

  test('with a token: 401 without it, with a wrong one, with another scheme; 200 with it', async () => {
    const refused = [
      {},
      { authorization: `Bearer ${TOKEN.slice(0, -1)}x` },
      { authorization: `Bearer ${TOKEN}extra` },
      { authorization: 'Bearer short' },
      { authorization: `Basic ${Buffer.from(`metrics:${TOKEN}`).toString('base64')}` },
      { authorization: TOKEN },
    ];
    for (const headers of refused) {
      const res = await fetch(`${tb.url}/metrics`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      const body = await res.text();
      expect(JSON.parse(body)).toMatchObject({ error: 'invalid_token' });
      expect(body).not.toContain('errand_');
    }
    const { samples } = await scrape();
    expect(samples.some((s) => s.name === 'errand_http_requests_total')).toBe(true);
    // Node's process metrics come with Errand's own.
    expect(samples.some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true);
  });
});

describe('each family moves with what it counts', () => {
  test('requests by route pattern and status class, with a latency histogram; never the path', async () => {
    const labels = { method: 'GET', route: '/api/me/delegations/:id', status_class: '4xx' };
    const before = await scrape();
    const me = await userApi(tb, world.user);
    const res = await me.call('GET', '/api/me/delegations/dlg_lookslikeanid42?token=query-secret-77');
    expect(res.status).toBe(404);
    await fetch(`${tb.url}/no/such/path/abc123`);
    const after = await scrape();
    expect(value(after.samples, 'errand_http_requests_total', labels)).toBe(
      value(before.samples, 'errand_http_requests_total', labels) + 1,
    );
    expect(value(after.samples, 'errand_http_request_duration_seconds_count', labels)).toBe(
      value(before.samples, 'errand_http_request_duration_seconds_count', labels) + 1,
    );
    expect(
      value(after.samples, 'errand_http_request_duration_seconds_bucket', { ...labels, le: '+Inf' }),
    ).toBeGreaterThanOrEqual(1);
    expect(value(after.samples, 'errand_http_requests_total', { route: '(no route)', status_class: '4xx' })).toBe(
      value(before.samples, 'errand_http_requests_total', { route: '(no route)', status_class: '4xx' }) + 1,
    );
    expect(after.text).not.toMatch(/lookslikeanid42|query-secret-77|abc123/);
  });

  test('tokens by grant type, denials by reason, active tasks and delegations, group commits', async () => {
    const ciba = 'urn:openid:params:grant-type:ciba';
    const te = 'urn:ietf:params:oauth:grant-type:token-exchange';
    const before = (await scrape()).samples;
    const { credential, delegationId } = await delegateViaCiba(tb, world.as, agent, world.user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    const task = await exchange(tb, world.as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      scope: 'notes:read',
    });
    const denied = await exchangeRaw(tb, world.as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      scope: 'notes:read notes:delete',
    });
    expect(denied.status).toBe(400);
    const after = (await scrape()).samples;
    const moved = (name: string, labels: Record<string, string> = {}) =>
      value(after, name, labels) - value(before, name, labels);
    expect(moved('errand_tokens_issued_total', { grant_type: ciba })).toBe(1);
    expect(moved('errand_tokens_issued_total', { grant_type: te })).toBe(1);
    expect(moved('errand_exchange_denials_total', { reason: 'scope_exceeds_parent' })).toBe(1);
    expect(moved('errand_exchange_denials_total')).toBe(1);
    expect(moved('errand_active_tasks')).toBe(1);
    expect(moved('errand_active_delegations')).toBe(1);
    expect(moved('errand_db_group_commit_size_count')).toBeGreaterThan(0);
    expect(moved('errand_db_group_commit_size_sum')).toBeGreaterThanOrEqual(moved('errand_db_group_commit_size_count'));
    expect(moved('errand_db_group_commit_duration_seconds_count')).toBe(moved('errand_db_group_commit_size_count'));

    // Labels never carry ids or secrets: none of this flow's ids or tokens appear anywhere.
    const { text } = await scrape();
    for (const secret of [
      credential,
      task.access_token,
      task.task_id,
      delegationId,
      agent.clientId,
      world.user.id,
      world.user.username,
      world.user.password,
      TOKEN,
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toMatch(/\b(tsk|dlg|usr|cli|grt|req)_[0-9a-f]{6,}/);
  });

  test('push subscribers and delivery latency: a stream opens, a task end reaches it, the stream closes', async () => {
    const { credential } = await delegateViaCiba(tb, world.as, agent, world.user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    const task = await exchange(tb, world.as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      scope: 'notes:read',
    });
    const subscribers = await valueNow('errand_revocation_push_subscribers');
    const delivered = await valueNow('errand_revocation_push_delivery_seconds_count');
    const tasks = await valueNow('errand_active_tasks');

    const abort = new AbortController();
    open.push(abort);
    const stream = await fetch(`${tb.url}/events/revocations`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_assertion_type: ASSERTION,
        client_assertion: await clientAssertion(rs, tb.url),
        audience: NOTES,
      }).toString(),
      signal: abort.signal,
    });
    expect(stream.status).toBe(200);
    const events = readServerSentEvents(stream.body!);
    expect((await events.next()).value).toMatchObject({ event: 'ready' });
    expect(await valueNow('errand_revocation_push_subscribers')).toBe(subscribers + 1);

    const ended = await postForm(`${tb.url}/tasks/${task.task_id}/end`, {
      state: 'completed',
      client_assertion_type: ASSERTION,
      client_assertion: await clientAssertion(agent, tb.url),
    });
    expect(ended.status).toBe(200);
    expect((await events.next()).value).toMatchObject({ event: 'revoked' });
    await expect.poll(() => valueNow('errand_revocation_push_delivery_seconds_count')).toBe(delivered + 1);
    expect(await valueNow('errand_active_tasks')).toBe(tasks - 1);

    abort.abort();
    await expect.poll(() => valueNow('errand_revocation_push_subscribers')).toBe(subscribers);
  });

  test('outbound fetches by kind and outcome: a metadata document found, one missing', async () => {
    const ok = { kind: 'client_metadata', outcome: 'ok' };
    const missing = { kind: 'client_metadata', outcome: 'status' };
    const before = (await scrape()).samples;
    for (const path of ['/found.json', '/missing.json']) {
      const res = await postForm(`${tb.url}/token`, {
        grant_type: 'client_credentials',
        client_id: `${docsOrigin}${path}`,
      });
      expect(res.status).toBeGreaterThanOrEqual(400);
    }
    const after = await scrape();
    expect(value(after.samples, 'errand_outbound_fetches_total', ok)).toBe(
      value(before, 'errand_outbound_fetches_total', ok) + 1,
    );
    expect(value(after.samples, 'errand_outbound_fetches_total', missing)).toBe(
      value(before, 'errand_outbound_fetches_total', missing) + 1,
    );
    expect(value(after.samples, 'errand_outbound_fetch_duration_seconds_count', { kind: 'client_metadata' })).toBe(
      value(before, 'errand_outbound_fetch_duration_seconds_count', { kind: 'client_metadata' }) + 2,
    );
    // The fetched URL (a client id) is not a label.
    expect(after.text).not.toContain(docsOrigin);
    expect(after.text).not.toContain('found.json');
  });

  test('outbound fetches of an agent key set (jwks_uri) count as jwks', async () => {
    const jwks = { kind: 'jwks', outcome: 'ok' };
    const before = await valueNow('errand_outbound_fetches_total', jwks);
    const res = await world.api.call('POST', '/api/admin/clients', {
      kind: 'agent',
      name: 'agent with a key set URL',
      jwks_uri: `${docsOrigin}/jwks.json`,
      grant_types: ['client_credentials'],
      scope: ['notes:read'],
    });
    expect(res.status).toBe(201);
    const clientId = ((await res.json()) as { client_id: string }).client_id;
    const token = await postForm(`${tb.url}/token`, {
      grant_type: 'client_credentials',
      scope: 'notes:read',
      resource: NOTES,
      client_assertion_type: ASSERTION,
      client_assertion: await clientAssertion({ clientId, ...published }, tb.url),
    });
    expect(token.status).toBe(200);
    expect(await valueNow('errand_outbound_fetches_total', jwks)).toBeGreaterThan(before);
    expect(await valueNow('errand_tokens_issued_total', { grant_type: 'client_credentials' })).toBeGreaterThanOrEqual(
      1,
    );
  });

  test('the management listener serves /metrics alone, and asks for the token when one is set', async () => {
    const managed = await startBroker({ ERRAND_METRICS_PORT: '0', ERRAND_METRICS_TOKEN: TOKEN });
    const app = managed.broker.managementApp;
    expect(app).not.toBeNull();
    const http = await listen(app!.fetch, { hostname: '127.0.0.1', port: 0, bodyTimeout: 5 });
    try {
      const base = `http://127.0.0.1:${http.port}`;
      expect((await fetch(`${base}/metrics`)).status).toBe(401);
      expect((await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      const ok = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('errand_active_tasks');
      expect((await fetch(`${base}/token`, { method: 'POST' })).status).toBe(404);
      expect((await fetch(`${base}/.well-known/oauth-authorization-server`)).status).toBe(404);
    } finally {
      http.destroy();
      await new Promise<void>((resolve) => http.server.close(() => resolve()));
      await managed.close();
    }
  });

  test('every label value comes from a small fixed vocabulary', async () => {
    const { samples } = await scrape();
    const errand = samples.filter((s) => s.name.startsWith('errand_'));
    expect(errand.length).toBeGreaterThan(0);
    for (const s of errand) {
      for (const [k, v] of Object.entries(s.labels)) {
        if (k === 'route') expect(v).toMatch(/^(\(no route\)|\/[A-Za-z0-9/_.:*-]*)$/);
        else expect(v, `${s.name} ${k}`).toMatch(/^[A-Za-z0-9_.:+-]{1,80}$/);
      }
    }
  });
});
