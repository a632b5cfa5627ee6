import { createGuard, type Guard } from '@errand/guard';
import {
  type GuardEnv,
  type GuardMcpEnv,
  guardMcpMiddleware,
  guardMiddleware,
  protectedResourceMetadataRoute,
} from '@errand/guard/hono';
import { type ServerType, serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { delegateViaCiba, delegationWorld, exchange, TT_JWT } from '../../../broker/test/delegation-fixtures.js';
import { startBroker, type TestBroker } from '../../../broker/test/fixtures.js';

/**
 * The guard and tool-level grants (RFC 9396 `mcp_tool`): what a verified token allows, requiring a
 * tool, and the MCP middleware reading JSON-RPC bodies, against tokens from the real broker.
 */

const SCOPES = ['notes:read', 'notes:write'];
const TOOL_SCOPES = { list_notes: 'notes:read', read_note: 'notes:read', write_note: ['notes:write'], ping: [] };

let tb: TestBroker;
let server: ServerType;
let origin: string;
let resource: string;
let guard: Guard;
/** Scope notes:read notes:write, tools list_notes and read_note only. */
let restricted: string;
/** Scope notes:read notes:write, no tool restriction. */
let unrestricted: string;

beforeAll(async () => {
  tb = await startBroker();
  let app = new Hono();
  server = await new Promise((resolve) => {
    const s = serve({ fetch: (req) => app.fetch(req), hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const address = server.address();
  origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  resource = `${origin}/mcp`;
  guard = createGuard({ issuer: tb.url, resource, scopesSupported: SCOPES });

  const mcp = new Hono<GuardMcpEnv>();
  mcp.route('/', protectedResourceMetadataRoute(guard));
  const guarded = guardMcpMiddleware(guard, { toolScopes: TOOL_SCOPES, scopes: ['notes:read'], maxBodyBytes: 2048 });
  mcp.all('/mcp', guarded, async (c) =>
    // The handler still reads the original body: the guard read a copy.
    c.json({ tools: c.var.auth.tools, parsed: c.var.parsedBody ?? null, raw: await c.req.text() }),
  );
  const rest = new Hono<GuardEnv>();
  rest.post('/api/write', guardMiddleware(guard, { scopes: ['notes:write'], tools: ['write_note'] }), (c) =>
    c.json({ written: true }),
  );
  mcp.route('/', rest as unknown as Hono<GuardMcpEnv>);
  app = mcp as unknown as Hono;

  const w = await delegationWorld(tb, { agents: 2, resources: { [resource]: SCOPES } });
  const ask = { scope: `openid ${SCOPES.join(' ')}`, resource };
  const tools = [{ type: 'mcp_tool', locations: [resource], actions: ['read_note', 'list_notes'] }];
  const token = async (i: number, extra: Record<string, string>) => {
    const agent = w.agents[i]!;
    const { credential } = await delegateViaCiba(tb, w.as, agent, w.user, { ...ask, ...extra });
    return (await exchange(tb, w.as, agent, { subject_token: credential, subject_token_type: TT_JWT })).access_token;
  };
  restricted = await token(0, { authorization_details: JSON.stringify(tools) });
  unrestricted = await token(1, {});
});
afterAll(async () => {
  await new Promise<void>((r) => server?.close(() => r()));
  await tb?.close();
});

const request = (token: string) => ({ authorization: `Bearer ${token}`, method: 'POST', url: resource });
const jsonRpc = (token: string, body: string, method = 'POST') =>
  fetch(resource, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(method === 'GET' ? {} : { body }),
  });
const call = (id: number, name: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name } });

describe('Guard.verify and tool grants', () => {
  test('a verified token says which tools it may call here; mayCallTool answers per tool', async () => {
    const limited = await guard.verify(request(restricted));
    expect(limited).toMatchObject({ ok: true, tools: ['list_notes', 'read_note'] });
    if (!limited.ok) return;
    expect(guard.mayCallTool(limited, 'read_note')).toBe(true);
    expect(guard.mayCallTool(limited, 'write_note')).toBe(false);
    const open = await guard.verify(request(unrestricted));
    expect(open).toMatchObject({ ok: true, tools: null });
    if (open.ok) expect(guard.mayCallTool(open, 'write_note')).toBe(true);
  });

  test('verify({ tools }) refuses a tool the grant leaves out with 403 insufficient_scope naming it', async () => {
    expect(await guard.verify(request(restricted), { scopes: ['notes:read'], tools: ['list_notes'] })).toMatchObject({
      ok: true,
    });
    const refused = await guard.verify(request(restricted), { scopes: ['notes:write'], tools: ['write_note', 'ping'] });
    expect(refused).toMatchObject({
      ok: false,
      status: 403,
      error: 'insufficient_scope',
      description: 'the token does not grant tools write_note, ping at this resource',
    });
    if (!refused.ok) {
      expect(refused.wwwAuthenticate).toBe(
        'Bearer error="insufficient_scope", error_description="the token does not grant tools write_note, ping at this resource",' +
          ` scope="notes:write", resource_metadata="${guard.metadataUrl}"`,
      );
    }
    expect(await guard.verify(request(unrestricted), { tools: ['write_note', 'ping'] })).toMatchObject({ ok: true });
  });

  test('guardMiddleware({ tools }) on a route that is one tool', async () => {
    const post = (token: string) =>
      fetch(`${origin}/api/write`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    const refused = await post(restricted);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({
      error: 'insufficient_scope',
      error_description: 'the token does not grant tool write_note at this resource',
    });
    expect((await post(unrestricted)).status).toBe(200);
  });
});

describe('guardMcpMiddleware', () => {
  test('tool calls need their scopes and grant; other messages the base scopes; the handler sees the same body', async () => {
    const body = JSON.stringify([
      call(1, 'list_notes'),
      call(2, 'ping'),
      { jsonrpc: '2.0', method: 'tools/list', id: 3 },
    ]);
    const open = await jsonRpc(unrestricted, body);
    expect(open.status).toBe(200);
    expect(await open.json()).toEqual({ tools: null, parsed: JSON.parse(body), raw: body });
    // ping needs no scope of its own, but this token's grant does not name it.
    const limited = await jsonRpc(restricted, body);
    expect(limited.status).toBe(403);
    expect(((await limited.json()) as { error_description: string }).error_description).toBe(
      'the token does not grant tool ping at this resource',
    );
    const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} });
    expect(await (await jsonRpc(restricted, init)).json()).toMatchObject({ tools: ['list_notes', 'read_note'] });
  });

  test('GET and an empty DELETE carry no call and pass; an oversized or unreadable body is refused', async () => {
    expect((await jsonRpc(restricted, '', 'GET')).status).toBe(200);
    expect((await jsonRpc(restricted, '', 'DELETE')).status).toBe(200);
    const big = await jsonRpc(unrestricted, JSON.stringify({ ...call(1, 'list_notes'), pad: 'x'.repeat(4096) }));
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({
      error: 'invalid_request',
      error_description: 'the request body must not exceed 2048 bytes',
    });
    const broken = await jsonRpc(unrestricted, '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"write_note"}');
    expect(broken.status).toBe(400);
    expect(await broken.json()).toMatchObject({ error: 'invalid_request' });
  });

  test('the challenge names a few of many refused tools, shortened', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `${i}${'x'.repeat(150)}`);
    const res = await jsonRpc(restricted, JSON.stringify(names.map((n, i) => call(i, n))));
    expect(res.status).toBe(403);
    const { error_description: description } = (await res.json()) as { error_description: string };
    expect(description).toBe(
      `the token does not grant tools ${names
        .slice(0, 5)
        .map((n) => `${n.slice(0, 64)}...`)
        .join(', ')} and 3 more at this resource`,
    );
    expect((res.headers.get('www-authenticate') ?? '').length).toBeLessThan(600);
  });

  test('no token: 401 with the scopes the call needs as the hint', async () => {
    const res = await fetch(resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(call(1, 'write_note')),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer scope="notes:read notes:write", resource_metadata="${guard.metadataUrl}"`,
    );
  });
});
