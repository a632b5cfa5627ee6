import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  addResource,
  adminApi,
  approveInBrowser,
  createUser,
  discover,
  insecure,
  postForm,
  startBroker,
  type TestBroker,
  verifyAccessToken,
} from './fixtures.js';

/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): the client_id is an URL,
 * the broker fetches the document under its SSRF rules. Documents are served by a local node:http server.
 */

const RESOURCE = 'https://notes.example.test/mcp';
const REDIRECT = 'http://127.0.0.1:53682/callback';
const MAX_BYTES = 2048;

type User = Awaited<ReturnType<typeof createUser>>;
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A local HTTP server with per-path handlers that counts every request it receives. */
interface DocServer {
  origin: string;
  port: number;
  routes: Map<string, Handler>;
  hits: Map<string, number>;
  /** TCP connections open now, and the most ever open at once. */
  connections: { open: number; peak: number };
  total(): number;
  close(): Promise<void>;
}

async function docServer(host = '127.0.0.1'): Promise<DocServer> {
  const routes = new Map<string, Handler>();
  const hits = new Map<string, number>();
  const connections = { open: 0, peak: 0 };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const handler = routes.get(path) ?? routes.get('*');
    if (handler) handler(req, res);
    else res.writeHead(404).end();
  });
  server.on('connection', (socket) => {
    connections.open += 1;
    connections.peak = Math.max(connections.peak, connections.open);
    socket.on('close', () => {
      connections.open -= 1;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://${host}:${port}`,
    port,
    routes,
    hits,
    connections,
    total: () => [...hits.values()].reduce((a, b) => a + b, 0),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(body: unknown, headers: Record<string, string> = {}): Handler {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  };
}

function metadata(clientId: string, extra: Record<string, unknown> = {}) {
  return {
    client_id: clientId,
    client_name: 'Document Client',
    client_uri: 'https://docclient.example.test/',
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    ...extra,
  };
}

function authorizeUrl(tb: TestBroker, clientId: string, extra: Record<string, string> = {}): URL {
  const url = new URL(`${tb.url}/authorize`);
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: REDIRECT,
    response_type: 'code',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
    scope: 'notes:read',
    resource: RESOURCE,
    state: 'xyz',
    ...extra,
  }).toString();
  return url;
}

/** The generic description of a document host that failed, however it failed. */
const FETCH_FAILED = 'the client metadata document could not be fetched';

/** An /authorize that Errand must refuse on its own page: 400, HTML, no redirect anywhere. */
async function expectErrorPage(tb: TestBroker, clientId: string): Promise<string> {
  const res = await fetch(authorizeUrl(tb, clientId), { redirect: 'manual' });
  expect(res.status).toBe(400);
  expect(res.headers.get('location')).toBeNull();
  expect(res.headers.get('content-type')).toMatch(/^text\/html/);
  const page = await res.text();
  expect(page).toContain('Authorization request refused');
  return page;
}

async function expectConsentRedirect(tb: TestBroker, clientId: string): Promise<void> {
  const res = await fetch(authorizeUrl(tb, clientId), { redirect: 'manual' });
  expect(res.status).toBe(303);
  expect(new URL(res.headers.get('location')!, tb.url).pathname).toBe('/authorize/consent');
}

describe('client ID metadata documents (private fetches allowed for the test)', () => {
  let tb: TestBroker;
  let as: oauth.AuthorizationServer;
  let docs: DocServer;
  let elsewhere: DocServer;
  let user: User;

  beforeAll(async () => {
    tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true', ERRAND_CIMD_MAX_BYTES: String(MAX_BYTES) });
    const api = await adminApi(tb);
    // Public: metadata-document clients start quarantined (quarantine.test.ts covers that); these tests are about fetching.
    await addResource(api, RESOURCE, ['notes:read', 'notes:write'], { public: true });
    user = await createUser(tb);
    docs = await docServer();
    elsewhere = await docServer();
    as = await discover(tb);
  });
  afterAll(async () => {
    await tb.close();
    await docs.close();
    await elsewhere.close();
  });

  test('discovery says metadata documents are supported', () => {
    expect(as.client_id_metadata_document_supported).toBe(true);
  });

  test('a URL client_id works end to end (PKCE, sign-in, consent showing the host, token) and is cached', async () => {
    const clientId = `${docs.origin}/client.json`;
    docs.routes.set('/client.json', json(metadata(clientId), { 'cache-control': 'public, max-age=300' }));
    const client: oauth.Client = { client_id: clientId, token_endpoint_auth_method: 'none' };

    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = authorizeUrl(tb, clientId, { code_challenge: await oauth.calculatePKCECodeChallenge(verifier), state });
    const { callback, consentPage } = await approveInBrowser(tb, user, url);
    expect(consentPage).toContain('Document Client');
    const publishedBy = /Published by<\/dt>\s*<dd>([^<]*)<\/dd>/.exec(consentPage);
    expect(publishedBy?.[1]).toBe(`127.0.0.1:${docs.port}`);

    const params = oauth.validateAuthResponse(as, client, callback, state);
    const tokenRes = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      oauth.None(),
      params,
      REDIRECT,
      verifier,
      insecure,
    );
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, tokenRes);
    expect(tokens.scope).toBe('notes:read');
    const { payload } = await verifyAccessToken(as, tokens.access_token, RESOURCE, tb.url);
    expect(payload).toMatchObject({ sub: user.id, client_id: clientId });

    // authorize and token both resolved the client, but the document was fetched once.
    expect(docs.hits.get('/client.json')).toBe(1);
    await expectConsentRedirect(tb, clientId);
    expect(docs.hits.get('/client.json')).toBe(1);

    // Past max-age the document is fetched again.
    tb.clock.advance(301);
    try {
      await expectConsentRedirect(tb, clientId);
      expect(docs.hits.get('/client.json')).toBe(2);
    } finally {
      tb.clock.advance(-301);
    }
  });

  test('a no-store document is fetched once for 20 concurrent requests, and kept for ERRAND_CIMD_MIN_CACHE_TTL', async () => {
    const clientId = `${docs.origin}/no-store.json`;
    docs.routes.set('/no-store.json', json(metadata(clientId), { 'cache-control': 'no-store' }));
    const res = await Promise.all(
      Array.from({ length: 20 }, () => fetch(authorizeUrl(tb, clientId), { redirect: 'manual' })),
    );
    expect(res.map((r) => r.status)).toEqual(Array(20).fill(303));
    expect(docs.hits.get('/no-store.json')).toBe(1);
    await expectConsentRedirect(tb, clientId);
    expect(docs.hits.get('/no-store.json')).toBe(1);
    // max-age=0 is no different; past the floor (60 s by default) the document is fetched again.
    tb.clock.advance(61);
    try {
      await expectConsentRedirect(tb, clientId);
      expect(docs.hits.get('/no-store.json')).toBe(2);
    } finally {
      tb.clock.advance(-61);
    }
  });

  test('a document whose client_id differs from its URL is refused on the error page', async () => {
    const clientId = `${docs.origin}/mismatch.json`;
    docs.routes.set('/mismatch.json', json(metadata(`${docs.origin}/other.json`)));
    const page = await expectErrorPage(tb, clientId);
    expect(page).toContain('client_id must equal the document URL');
    expect(await tb.broker.deps.clients.get(clientId)).toBeNull();
  });

  test('a redirect from the document URL is not followed', async () => {
    const clientId = `${docs.origin}/moved.json`;
    const target = `${elsewhere.origin}/moved.json`;
    elsewhere.routes.set('/moved.json', json(metadata(clientId)));
    docs.routes.set('/moved.json', (_req, res) => {
      res.writeHead(302, { location: target }).end();
    });
    const page = await expectErrorPage(tb, clientId);
    expect(page).toContain(FETCH_FAILED);
    expect(tb.logs.some((l) => l.includes('client.metadata_rejected') && l.includes('redirect'))).toBe(true);
    expect(docs.hits.get('/moved.json')).toBe(1);
    expect(elsewhere.total()).toBe(0);
  });

  test('a document larger than ERRAND_CIMD_MAX_BYTES is refused (declared or streamed)', async () => {
    const declared = `${docs.origin}/large.json`;
    docs.routes.set('/large.json', json(metadata(declared, { padding: 'x'.repeat(MAX_BYTES) })));
    expect(await expectErrorPage(tb, declared)).toContain(FETCH_FAILED);

    const streamed = `${docs.origin}/large-chunked.json`;
    docs.routes.set('/large-chunked.json', (_req, res) => {
      const body = JSON.stringify(metadata(streamed, { padding: 'x'.repeat(MAX_BYTES) }));
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      for (let i = 0; i < body.length; i += 256) res.write(body.slice(i, i + 256));
      res.end();
    });
    expect(await expectErrorPage(tb, streamed)).toContain(FETCH_FAILED);
    expect(tb.logs.filter((l) => l.includes(`${MAX_BYTES}-byte limit`))).toHaveLength(2);
    expect(await tb.broker.deps.clients.get(declared)).toBeNull();
    expect(await tb.broker.deps.clients.get(streamed)).toBeNull();
  });

  test('a document carrying a shared secret, or asking for client_secret_basic, is refused', async () => {
    const withSecret = `${docs.origin}/secret.json`;
    docs.routes.set('/secret.json', json(metadata(withSecret, { client_secret: 'hunter2hunter2' })));
    expect(await expectErrorPage(tb, withSecret)).toContain('client_secret');

    const basic = `${docs.origin}/basic.json`;
    docs.routes.set('/basic.json', json(metadata(basic, { token_endpoint_auth_method: 'client_secret_basic' })));
    expect(await expectErrorPage(tb, basic)).toContain('client_secret_basic');
  });

  test('a document with a client_credentials grant or a bad redirect URI is refused', async () => {
    const cc = `${docs.origin}/cc.json`;
    docs.routes.set('/cc.json', json(metadata(cc, { grant_types: ['client_credentials'] })));
    await expectErrorPage(tb, cc);

    const badRedirect = `${docs.origin}/bad-redirect.json`;
    docs.routes.set(
      '/bad-redirect.json',
      json(metadata(badRedirect, { redirect_uris: ['http://evil.example.test/cb'] })),
    );
    await expectErrorPage(tb, badRedirect);
  });

  test('a document that is not JSON, or not served as JSON, is refused', async () => {
    const html = `${docs.origin}/html.json`;
    docs.routes.set('/html.json', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(JSON.stringify(metadata(html)));
    });
    await expectErrorPage(tb, html);

    const garbage = `${docs.origin}/garbage.json`;
    docs.routes.set('/garbage.json', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"client_id": ');
    });
    await expectErrorPage(tb, garbage);
  });

  test('a redirect_uri not listed in the document is refused on the error page', async () => {
    const clientId = `${docs.origin}/listed.json`;
    docs.routes.set('/listed.json', json(metadata(clientId)));
    const res = await fetch(authorizeUrl(tb, clientId, { redirect_uri: 'http://127.0.0.1:9/elsewhere' }), {
      redirect: 'manual',
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
  });

  test('a failed fetch is remembered for ERRAND_CIMD_FAILURE_TTL, then the fixed document is fetched', async () => {
    const clientId = `${docs.origin}/flaky.json`;
    docs.routes.set('/flaky.json', (_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('internal secret detail');
    });
    const page = await expectErrorPage(tb, clientId);
    expect(page).toContain(FETCH_FAILED);
    expect(page).not.toContain('HTTP 500');
    expect(page).not.toContain('internal secret detail');
    expect(await tb.broker.deps.clients.get(clientId)).toBeNull();

    // Fixed at once, but the failure is still remembered: answered without fetching.
    docs.routes.set('/flaky.json', json(metadata(clientId), { 'cache-control': 'max-age=600' }));
    expect(await expectErrorPage(tb, clientId)).toContain(FETCH_FAILED);
    expect(docs.hits.get('/flaky.json')).toBe(1);

    tb.clock.advance(31);
    try {
      await expectConsentRedirect(tb, clientId);
      expect(docs.hits.get('/flaky.json')).toBe(2);
    } finally {
      tb.clock.advance(-31);
    }
  });

  test('a metadata URL with a fragment, credentials, dot segments or no path is refused without any fetch', async () => {
    const before = docs.total();
    for (const clientId of [
      `${docs.origin}/client.json#x`,
      `http://user:pw@127.0.0.1:${docs.port}/client.json`,
      `${docs.origin}/a/../client.json`,
      `${docs.origin}/`,
    ]) {
      await expectErrorPage(tb, clientId);
    }
    expect(docs.total()).toBe(before);
  });
});

describe('outbound fetches that unauthenticated requests cause are bounded', () => {
  let tb: TestBroker;
  let hostA: DocServer;
  let hostB: DocServer;
  /** Requests the slow handler holds, answered when the test lets them go. */
  const held: ServerResponse[] = [];
  const slow: Handler = (_req, res) => {
    held.push(res);
  };

  beforeAll(async () => {
    tb = await startBroker({
      ERRAND_FETCH_ALLOW_PRIVATE: 'true',
      ERRAND_FETCH_TIMEOUT_MS: '1000',
      ERRAND_FETCH_MAX_PER_HOST: '3',
      ERRAND_FETCH_MAX_CONCURRENT: '5',
    });
    // Two hosts: 127.0.0.1 and 127.0.0.2 are both loopback, but different hosts to Errand.
    hostA = await docServer('127.0.0.1');
    hostB = await docServer('127.0.0.2');
  });
  afterAll(async () => {
    for (const res of held.splice(0)) res.destroy();
    await tb.close();
    await hostA.close();
    await hostB.close();
  });

  /** An unauthenticated token request naming `clientId`: the broker must resolve the client first. */
  const tokenRequest = (clientId: string) =>
    postForm(`${tb.url}/token`, {
      grant_type: 'authorization_code',
      client_id: clientId,
      code: 'nope',
      redirect_uri: REDIRECT,
      code_verifier: 'x'.repeat(43),
    });

  test('40 concurrent requests naming slow documents open at most the per-host and total caps; the rest fail at once', async () => {
    hostA.routes.set('*', slow);
    hostB.routes.set('*', slow);
    const ids = Array.from({ length: 40 }, (_, i) => `${i % 2 ? hostB.origin : hostA.origin}/slow-${i}.json`);
    let settled = 0;
    const pending = ids.map((id) =>
      tokenRequest(id).then(async (res) => {
        settled += 1;
        return { status: res.status, body: (await res.json()) as Record<string, string> };
      }),
    );
    // The 35 beyond the caps are answered while the 5 fetches are still held by the hosts.
    await expect.poll(() => settled, { timeout: 2000 }).toBe(35);
    expect(held).toHaveLength(5);
    expect(hostA.connections.peak).toBeLessThanOrEqual(3);
    expect(hostB.connections.peak).toBeLessThanOrEqual(3);
    expect(hostA.connections.open + hostB.connections.open).toBe(5);
    expect(hostA.total() + hostB.total()).toBe(5);
    for (const res of held.splice(0)) res.writeHead(404).end();
    const answers = await Promise.all(pending);
    expect(answers.every((a) => a.status === 401 && a.body.error === 'invalid_client')).toBe(true);
    const busy = answers.filter((a) => a.body.error_description?.includes('too many outbound fetches'));
    expect(busy).toHaveLength(35);
    expect(hostA.total() + hostB.total()).toBe(5);
  });

  test('a refused connection, a timeout and an HTTP error read the same to the caller; the logs tell them apart', async () => {
    hostA.routes.set('/error.json', (_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{}');
    });
    hostA.routes.set('/silent.json', (_req, res) => {
      held.push(res);
    });
    const closed = await docServer('127.0.0.1');
    await closed.close();
    const descriptions: string[] = [];
    for (const id of [`${closed.origin}/refused.json`, `${hostA.origin}/silent.json`, `${hostA.origin}/error.json`]) {
      const res = await tokenRequest(id);
      expect(res.status).toBe(401);
      const body = (await res.json()) as { error: string; error_description: string };
      expect(body.error).toBe('invalid_client');
      descriptions.push(body.error_description);
    }
    expect(new Set(descriptions)).toEqual(new Set([FETCH_FAILED]));
    const rejected = tb.logs.filter((l) => l.includes('client.metadata_rejected')).join('\n');
    expect(rejected).toContain('"reason":"network"');
    expect(rejected).toContain('"reason":"timeout"');
    expect(rejected).toContain('"reason":"status"');
  });
});

describe('client ID metadata documents with the default SSRF rules', () => {
  let tb: TestBroker;
  let docs: DocServer;

  beforeAll(async () => {
    tb = await startBroker();
    const api = await adminApi(tb);
    await addResource(api, RESOURCE, ['notes:read']);
    docs = await docServer();
  });
  afterAll(async () => {
    await tb.close();
    await docs.close();
  });

  test('https://127.0.0.1/… and https://localhost/… client_ids are refused as forbidden addresses', async () => {
    for (const clientId of [
      'https://127.0.0.1/client.json',
      `https://127.0.0.1:${docs.port}/client.json`,
      'https://localhost/client.json',
      'https://[::1]/client.json',
      'https://169.254.169.254/latest/meta-data.json',
      'https://10.0.0.1/client.json',
    ]) {
      const page = await expectErrorPage(tb, clientId);
      expect(page, clientId).toContain('forbidden address');
      expect(await tb.broker.deps.clients.get(clientId)).toBeNull();
    }
    expect(docs.total()).toBe(0);
  });

  test('a plain-http client_id is not treated as a metadata document at all', async () => {
    const clientId = `${docs.origin}/client.json`;
    docs.routes.set('/client.json', json(metadata(clientId)));
    const page = await expectErrorPage(tb, clientId);
    expect(page).toContain('not registered');
    expect(docs.total()).toBe(0);
  });
});
