import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ServerType, serve } from '@hono/node-server';
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { type Broker, buildBroker } from '../broker.js';
import { loadConfig } from '../config.js';
import type { Clock } from '../core/ports.js';
import { hashPassword } from '../identity/passwords.js';
import { createLogger } from '../log.js';
import { newId } from '../tokens/random.js';

/** Real time plus an offset the test can move forward. */
export class TestClock implements Clock {
  offset = 0;
  now(): number {
    return Math.floor(Date.now() / 1000) + this.offset;
  }
  advance(seconds: number): void {
    this.offset += seconds;
  }
}

export interface TestBroker {
  url: string;
  dir: string;
  broker: Broker;
  clock: TestClock;
  logs: string[];
  close(): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv: Server = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const address = srv.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Starts the real broker on an ephemeral port with a fresh database in a temp directory. */
export async function startBroker(
  env: Record<string, string> = {},
  opts: { dir?: string; clock?: TestClock } = {},
): Promise<TestBroker> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'errand-test-'));
  const port = await freePort();
  const config = loadConfig({
    ERRAND_PORT: String(port),
    ERRAND_DATA_DIR: dir,
    ERRAND_LOG_LEVEL: 'debug',
    ...env,
  });
  const logs: string[] = [];
  const log = createLogger({ level: 'debug', write: (line) => logs.push(line) });
  const clock = opts.clock ?? new TestClock();
  const broker = await buildBroker(config, { log, clock });
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: broker.app.fetch, hostname: '127.0.0.1', port }, () => resolve(s));
  });
  return {
    url: config.issuer,
    dir,
    broker,
    clock,
    logs,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      broker.close();
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A cookie-keeping fetch, as a browser would be, that never follows redirects by itself. */
export class Browser {
  private readonly cookies = new Map<string, string>();

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (!pair || eq < 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  async postForm(url: string, form: Record<string, string>): Promise<Response> {
    return this.fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  }
}

/** The value of a hidden form input in a rendered page. */
export function hiddenInput(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!match?.[1]) throw new Error(`no hidden input ${name} in page`);
  return match[1];
}

/** Creates a user directly in the store (test setup, not the behaviour under test). */
export async function createUser(
  tb: TestBroker,
  role: 'user' | 'admin' = 'user',
  username = `u${Date.now()}${Math.random().toString(36).slice(2, 6)}`,
) {
  const password = `pw-${newId('x')}`;
  const id = newId('usr');
  await tb.broker.deps.users.insert({
    id,
    username,
    displayName: null,
    passwordHash: await hashPassword(password),
    role,
    createdAt: tb.clock.now(),
    disabledAt: null,
    failedSignins: 0,
    lockedUntil: null,
  });
  return { id, username, password };
}

/** An admin API session: signs in through POST /api/session and keeps the cookie and CSRF token. */
export async function adminApi(tb: TestBroker) {
  const admin = await createUser(tb, 'admin');
  const browser = new Browser();
  const res = await browser.fetch(`${tb.url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: admin.username, password: admin.password }),
  });
  if (res.status !== 200) throw new Error(`admin sign-in failed: ${res.status} ${await res.text()}`);
  const { csrf_token: csrf } = (await res.json()) as { csrf_token: string };
  const call = async (method: string, path: string, body?: unknown) =>
    browser.fetch(`${tb.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  return { admin, browser, csrf, call };
}

export interface TestAgent {
  clientId: string;
  privateKey: CryptoKey;
  publicJwk: Record<string, unknown>;
  kid: string;
}

/** Registers a resource through the admin API. */
export async function addResource(api: Awaited<ReturnType<typeof adminApi>>, url: string, scopes: string[]) {
  const res = await api.call('POST', '/api/admin/resources', { url, name: `Resource ${url}`, scopes });
  if (res.status !== 201) throw new Error(`resource creation failed: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Registers a private_key_jwt agent through the admin API, holding its key in memory. */
export async function addAgent(
  api: Awaited<ReturnType<typeof adminApi>>,
  body: Record<string, unknown> = {},
): Promise<TestAgent> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = newId('k');
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const res = await api.call('POST', '/api/admin/clients', {
    kind: 'agent',
    name: 'test agent',
    jwks: { keys: [publicJwk] },
    grant_types: ['client_credentials'],
    ...body,
  });
  if (res.status !== 201) throw new Error(`agent creation failed: ${res.status} ${await res.text()}`);
  const created = (await res.json()) as { client_id: string };
  return { clientId: created.client_id, privateKey, publicJwk, kid };
}

/** Signs a client assertion; every claim and header can be overridden to build attacks. */
export async function clientAssertion(
  agent: TestAgent,
  aud: string,
  over: { claims?: Record<string, unknown>; header?: Record<string, unknown>; key?: CryptoKey } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: agent.clientId,
    sub: agent.clientId,
    aud,
    jti: newId('j'),
    iat: now,
    exp: now + 60,
    ...over.claims,
  })
    .setProtectedHeader({ alg: 'ES256', kid: agent.kid, typ: 'client-authentication+jwt', ...over.header })
    .sign(over.key ?? agent.privateKey);
}

/** POSTs a form to a broker endpoint. */
export async function postForm(
  url: string,
  form: Record<string, string | string[]>,
  headers: Record<string, string> = {},
) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: body.toString(),
  });
}
