import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CryptoKey,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  jwtVerify,
  SignJWT,
} from 'jose';
import * as oauth from 'oauth4webapi';
import { expect } from 'vitest';
import { type Db, openDb } from '../../db/open.js';
import { dropTestDatabase, testDatabaseUrl } from '../../e2e/postgres/databases.js';
import { type Broker, buildBroker } from '../broker.js';
import { loadConfig } from '../config.js';
import type { Clock, MonotonicClock } from '../core/ports.js';
import { listen } from '../http/server.js';
import { hashPassword } from '../identity/passwords.js';
import { createLogger } from '../log.js';
import type { ClientAdmission } from '../services/admission.js';
import { newId } from '../tokens/random.js';

/** oauth4webapi option that lets it talk to the broker over plain http on loopback. */
export const insecure = { [oauth.allowInsecureRequests]: true } as const;

/**
 * Real time plus an offset the test can move. `advance` is time passing (the monotonic clock moves
 * with it); `jump` steps the wall clock alone, as NTP, an operator or a resumed VM does.
 */
export class TestClock implements Clock, MonotonicClock {
  /** Seconds the wall clock is ahead of real time. */
  offset = 0;
  /** Seconds of passed time added by `advance`, which the monotonic clock sees too. */
  private passed = 0;
  now(): number {
    return Math.floor(Date.now() / 1000) + this.offset;
  }
  advance(seconds: number): void {
    this.offset += seconds;
    this.passed += seconds;
  }
  jump(seconds: number): void {
    this.offset += seconds;
  }
  nowMs(): number {
    return performance.now() + this.passed * 1000;
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

/**
 * The database settings of a broker whose data directory is `dir`: in postgres mode
 * (`npm run test:postgres`) ERRAND_DB_URL of the test database keyed by `dir`, the same one
 * startBroker gives an in-process broker on that directory; nothing in embedded mode, where the
 * broker keeps its file in `dir`. Spread it into the environment of spawned broker processes.
 */
export async function dbEnv(dir: string): Promise<Record<string, string>> {
  const url = await testDatabaseUrl(dir);
  return url ? { ERRAND_DB_URL: url } : {};
}

/**
 * Two handles on one new database (a file in a temp directory, or in the PostgreSQL run a server
 * database): two nodes' connections. What to undo afterwards is pushed onto `cleanup`.
 */
export async function twoDbHandles(cleanup: (() => Promise<unknown> | unknown)[]): Promise<[Db, Db]> {
  const dir = mkdtempSync(join(tmpdir(), 'errand-handles-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const url = (await dbEnv(dir)).ERRAND_DB_URL ?? `file:${dir}/errand.db`;
  const a = await openDb(url);
  cleanup.push(() => a.close());
  const b = await openDb(url);
  cleanup.push(() => b.close());
  return [a, b];
}

/**
 * Waits until a broker started as a child process (`broker/main.ts`) answers `/readyz` with 200.
 * Throws with the last answer and the child's output when it exits or is not ready in time
 * (generous by default: processes compiling TypeScript at once on a loaded machine start slowly).
 */
export async function waitChildReady(
  url: string,
  child: ChildProcess,
  output: string[],
  opts: { name?: string; timeoutMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let last = 'no answer';
  while (Date.now() < deadline && child.exitCode === null) {
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) return;
      last = `${res.status} ${await res.text()}`;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const why = child.exitCode === null ? 'did not become ready' : `exited with code ${child.exitCode}`;
  throw new Error(`${opts.name ?? `broker at ${url}`} ${why} (last /readyz: ${last}):\n${output.join('')}`);
}

/**
 * Starts the real broker on an ephemeral port with a fresh database: a file in a temp directory, or
 * in postgres mode a database of its own on the test server, keyed by the directory (so a broker
 * restarted on the same `opts.dir` finds its data again). The database is dropped on close when the
 * directory was made here; a given `opts.dir` belongs to the test, and so does its database.
 */
export async function startBroker(
  env: Record<string, string> = {},
  opts: { dir?: string; clock?: TestClock; admission?: ClientAdmission } = {},
): Promise<TestBroker> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'errand-test-'));
  const cleanUp = async () => {
    if (opts.dir) return;
    await dropTestDatabase(dir);
    rmSync(dir, { recursive: true, force: true });
  };
  const port = await freePort();
  let broker: Broker;
  let server: Awaited<ReturnType<typeof listen>>['server'];
  let config: ReturnType<typeof loadConfig>;
  const logs: string[] = [];
  const clock = opts.clock ?? new TestClock();
  try {
    config = loadConfig({
      ERRAND_PORT: String(port),
      ERRAND_DATA_DIR: dir,
      ERRAND_LOG_LEVEL: 'debug',
      ...(await dbEnv(dir)),
      ...env,
    });
    const log = createLogger({ level: 'debug', write: (line) => logs.push(line) });
    broker = await buildBroker(config, {
      log,
      clock,
      monotonic: clock,
      ...(opts.admission ? { admission: opts.admission } : {}),
    });
    ({ server } = await listen(broker.app.fetch, {
      hostname: '127.0.0.1',
      port: config.port,
      bodyTimeout: config.http.bodyTimeout,
    }));
  } catch (err) {
    await cleanUp();
    throw err;
  }
  return {
    url: config.issuer,
    dir,
    broker,
    clock,
    logs,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await broker.close();
      await cleanUp();
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

/** Registers a resource through the admin API (`extra`: more fields, such as `public`). */
export async function addResource(
  api: Awaited<ReturnType<typeof adminApi>>,
  url: string,
  scopes: string[],
  extra: Record<string, unknown> = {},
) {
  const res = await api.call('POST', '/api/admin/resources', { url, name: `Resource ${url}`, scopes, ...extra });
  if (res.status !== 201) throw new Error(`resource creation failed: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Registers a public (token_endpoint_auth_method none) MCP client for the code and refresh grants. */
export async function addPublicClient(
  api: Awaited<ReturnType<typeof adminApi>>,
  name: string,
  redirectUris: string[],
): Promise<oauth.Client> {
  const res = await api.call('POST', '/api/admin/clients', {
    kind: 'mcp_client',
    name,
    token_endpoint_auth_method: 'none',
    redirect_uris: redirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
  });
  if (res.status !== 201) throw new Error(`client creation failed: ${res.status} ${await res.text()}`);
  const { client_id } = (await res.json()) as { client_id: string };
  return { client_id, token_endpoint_auth_method: 'none' };
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

/**
 * Signs an RFC 8693 actor token for `agent`: a client assertion's claims, typed `actor+jwt`. Every
 * claim and header can be overridden, as with `clientAssertion`.
 */
export async function actorToken(
  agent: TestAgent,
  aud: string,
  over: { claims?: Record<string, unknown>; header?: Record<string, unknown>; key?: CryptoKey } = {},
): Promise<string> {
  return clientAssertion(agent, aud, { ...over, header: { typ: 'actor+jwt', ...over.header } });
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

/** The broker's authorization server metadata, discovered and validated by oauth4webapi. */
export async function discover(tb: TestBroker): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(tb.url);
  return oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
  );
}

/** Verifies an RFC 9068 access token against the published JWKS for one audience. */
export async function verifyAccessToken(
  as: oauth.AuthorizationServer,
  token: string,
  audience: string,
  issuer: string = as.issuer,
) {
  const jwks = (await (await fetch(as.jwks_uri!)).json()) as JSONWebKeySet;
  return jwtVerify(token, createLocalJWKSet(jwks), { issuer, audience, typ: 'at+jwt' });
}

/** Absolute URL of a response's Location header (relative ones resolve against the broker). */
export function redirectLocation(tb: TestBroker, res: Response): string {
  const loc = res.headers.get('location');
  if (!loc) throw new Error(`expected a redirect, got ${res.status}`);
  return new URL(loc, tb.url).toString();
}

type SignInUser = { username: string; password: string };

/**
 * Follows an authorization request to the consent page in a browser, signing in through the real
 * sign-in form on the way. Without `browser` a fresh one is used, which has no session and so must be
 * sent to sign in; a given browser signs in only when the broker asks it to.
 */
export async function openConsentInBrowser(
  tb: TestBroker,
  user: SignInUser,
  authorizeUrl: string | URL,
  opts: { browser?: Browser } = {},
) {
  const browser = opts.browser ?? new Browser();
  const start = await browser.fetch(authorizeUrl.toString());
  expect(start.status).toBe(303);
  const consentUrl = redirectLocation(tb, start);
  expect(consentUrl.startsWith(`${tb.url}/authorize/consent?request=`)).toBe(true);
  expect(new URL(consentUrl).pathname).toBe('/authorize/consent');
  let consent = await browser.fetch(consentUrl);
  if (!opts.browser) expect(consent.status).toBe(303);
  if (consent.status === 303) {
    const signInUrl = redirectLocation(tb, consent);
    expect(new URL(signInUrl).pathname).toBe('/signin');
    const signInPage = await browser.fetch(signInUrl);
    expect(signInPage.status).toBe(200);
    const html = await signInPage.text();
    const signedIn = await browser.postForm(`${tb.url}/signin`, {
      username: user.username,
      password: user.password,
      _csrf: hiddenInput(html, '_csrf'),
      next: hiddenInput(html, 'next'),
    });
    expect(signedIn.status).toBe(303);
    expect(redirectLocation(tb, signedIn)).toBe(consentUrl);
    consent = await browser.fetch(consentUrl);
  }
  expect(consent.status).toBe(200);
  return { browser, consentUrl, consent, consentPage: await consent.text() };
}

/** Submits the consent form of a rendered consent page; returns the response (a 303 to the client when all is well). */
export async function submitConsent(
  tb: TestBroker,
  browser: Browser,
  consentPage: string,
  decision: 'approve' | 'deny',
): Promise<Response> {
  return browser.postForm(`${tb.url}/authorize/consent`, {
    _csrf: hiddenInput(consentPage, '_csrf'),
    request: hiddenInput(consentPage, 'request'),
    decision,
  });
}

/**
 * Drives the real sign-in and consent pages (see openConsentInBrowser) and answers the consent with
 * `decision`. Returns the redirect back to the client as `callback`, with the consent page and responses.
 */
export async function approveInBrowser(
  tb: TestBroker,
  user: SignInUser,
  authorizeUrl: string | URL,
  opts: { decision?: 'approve' | 'deny'; browser?: Browser } = {},
) {
  const opened = await openConsentInBrowser(tb, user, authorizeUrl, opts);
  const decided = await submitConsent(tb, opened.browser, opened.consentPage, opts.decision ?? 'approve');
  expect(decided.status).toBe(303);
  return { ...opened, decided, callback: new URL(decided.headers.get('location')!) };
}
