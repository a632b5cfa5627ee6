import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditEvents, clients, issuedTokens } from '../../db/schema/index.js';
import {
  addAgent,
  addResource,
  adminApi,
  clientAssertion,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

let tb: TestBroker;
let agent: TestAgent;
const RESOURCE = 'https://hostile.example.test/api';

beforeAll(async () => {
  tb = await startBroker({ ERRAND_MAX_BODY_BYTES: '4096' });
  const api = await adminApi(tb);
  await addResource(api, RESOURCE, ['read']);
  agent = await addAgent(api, { scope: ['read'] });
});
afterAll(() => tb.close());

async function counts() {
  const q = tb.broker.deps.db.q;
  return {
    tokens: (await q.select().from(issuedTokens)).length,
    clients: (await q.select().from(clients)).length,
    events: (await q.select().from(auditEvents)).length,
  };
}

/** Every rejection: a 4xx, the spec's JSON error shape, no stack trace, nothing written. */
async function expectRejected(res: Response, code?: string, status?: number) {
  expect(res.status).toBeGreaterThanOrEqual(400);
  expect(res.status).toBeLessThan(500);
  if (status) expect(res.status).toBe(status);
  const text = await res.text();
  expect(text).not.toMatch(/\bat .*\.(ts|js):\d+/);
  const body = JSON.parse(text) as { error: string; error_description: string };
  expect(typeof body.error).toBe('string');
  expect(typeof body.error_description).toBe('string');
  if (code) expect(body.error).toBe(code);
}

describe('hostile and malformed requests', () => {
  test('token endpoint: malformed bodies get invalid_request and write nothing', async () => {
    const before = await counts();
    const url = `${tb.url}/token`;
    await expectRejected(
      await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"grant_type":"client_credentials"}',
      }),
      'invalid_request',
    );
    await expectRejected(
      await fetch(url, { method: 'POST', body: 'grant_type=client_credentials' }),
      'invalid_request',
    );
    await expectRejected(await postForm(url, {}), 'invalid_request');
    await expectRejected(
      await postForm(url, { grant_type: 'password', username: 'a', password: 'b' }),
      'unsupported_grant_type',
    );
    await expectRejected(await postForm(url, { grant_type: 'implicit' }), 'unsupported_grant_type');
    const dup = new URLSearchParams([
      ['grant_type', 'client_credentials'],
      ['grant_type', 'client_credentials'],
    ]);
    await expectRejected(
      await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: dup }),
      'invalid_request',
    );
    const dupScope = new URLSearchParams([
      ['grant_type', 'client_credentials'],
      ['scope', 'read'],
      ['scope', 'read'],
      ['resource', RESOURCE],
    ]);
    dupScope.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    dupScope.set('client_assertion', await clientAssertion(agent, tb.url));
    // URLSearchParams.set collapsed scope; append the duplicate again explicitly.
    dupScope.append('scope', 'read');
    await expectRejected(
      await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: dupScope,
      }),
      'invalid_request',
    );
    await expectRejected(
      await postForm(url, { grant_type: 'client_credentials', client_assertion_type: 'x', client_assertion: 'y' }),
      'invalid_request',
    );
    await expectRejected(
      await postForm(url, {
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: '\u0000\u0001garbage',
      }),
      'invalid_client',
    );
    await expectRejected(
      await postForm(url, { grant_type: 'authorization_code', code: 'x', client_id: 'nobody' }),
      'invalid_client',
    );
    await expectRejected(
      await postForm(url, { grant_type: 'client_credentials', [`p${'x'.repeat(100)}`]: '1' }),
      'invalid_request',
    );
    expect(await counts()).toEqual(before);
  });

  test('the NUL character (which PostgreSQL text cannot hold) is invalid_request, never a 500, on either database', async () => {
    const before = await counts();
    await expectRejected(
      await fetch(`${tb.url}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_name: 'notes\u0000app',
          redirect_uris: ['http://127.0.0.1:9/cb'],
          token_endpoint_auth_method: 'none',
        }),
      }),
      'invalid_request',
      400,
    );
    await expectRejected(
      await fetch(`${tb.url}/api/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'ad\u0000min', password: 'x' }),
      }),
      'invalid_request',
      400,
    );
    const after = await counts();
    expect({ tokens: after.tokens, clients: after.clients }).toEqual({
      tokens: before.tokens,
      clients: before.clients,
    });
    expect(tb.logs.some((l) => l.includes('"request.failed"'))).toBe(false);
  });

  test('oversized bodies are refused with 413 before parsing', async () => {
    const before = await counts();
    const big = `grant_type=client_credentials&pad=${'a'.repeat(10_000)}`;
    for (const path of ['/token', '/revoke', '/introspect']) {
      await expectRejected(
        await fetch(`${tb.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: big,
        }),
        'invalid_request',
        413,
      );
    }
    await expectRejected(
      await fetch(`${tb.url}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'], client_name: 'x'.repeat(10_000) }),
      }),
      'invalid_request',
      413,
    );
    // A chunked body without Content-Length is cut off too.
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(new TextEncoder().encode('a'.repeat(1000)));
        controller.close();
      },
    });
    await expectRejected(
      await fetch(`${tb.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: stream,
        duplex: 'half',
      } as RequestInit),
      'invalid_request',
      413,
    );
    expect(await counts()).toEqual(before);
  });

  test('registration: malformed JSON and wrong shapes get invalid_client_metadata', async () => {
    const before = await counts();
    const reg = (body: string, type = 'application/json') =>
      fetch(`${tb.url}/register`, { method: 'POST', headers: { 'content-type': type }, body });
    await expectRejected(await reg('{"redirect_uris":'), 'invalid_client_metadata');
    await expectRejected(await reg('[]'), 'invalid_client_metadata');
    await expectRejected(await reg('"x"'), 'invalid_client_metadata');
    await expectRejected(await reg('{"redirect_uris":"http://127.0.0.1/cb"}'), 'invalid_redirect_uri');
    await expectRejected(await reg('{"redirect_uris":["javascript:alert(1)"]}'), 'invalid_redirect_uri');
    await expectRejected(await reg('redirect_uris=x', 'application/x-www-form-urlencoded'), 'invalid_client_metadata');
    expect(await counts()).toEqual(before);
  });

  test('unknown paths, including under /.well-known, are JSON 404s (discovery fallbacks rely on it)', async () => {
    for (const path of ['/.well-known/openid-federation', '/.well-known/oauth-protected-resource', '/nope']) {
      const res = await fetch(`${tb.url}${path}`);
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
    }
  });

  test('CORS preflight for discovery allows MCP-Protocol-Version', async () => {
    const res = await fetch(`${tb.url}/.well-known/oauth-authorization-server`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'mcp-protocol-version',
      },
    });
    expect(res.status).toBeLessThan(300);
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('mcp-protocol-version');
  });

  test('health and readiness', async () => {
    expect((await fetch(`${tb.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${tb.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  test('no log line carries a token, assertion or secret', async () => {
    const assertion = await clientAssertion(agent, tb.url);
    const res = await postForm(`${tb.url}/token`, {
      grant_type: 'client_credentials',
      resource: RESOURCE,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    const { access_token: token } = (await res.json()) as { access_token: string };
    const logs = tb.logs.join('');
    expect(logs).not.toContain(token);
    expect(logs).not.toContain(assertion);
    expect(logs).not.toContain(assertion.split('.')[2]!);
  });
});
