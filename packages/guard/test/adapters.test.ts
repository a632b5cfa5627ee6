import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { accessOf, createGuard, type Guard, guardFetch, guardMcpFetch } from '@errand/guard';
import {
  type GuardedRequest,
  protectedResourceMetadataHandler,
  requestAccess,
  requireAccess,
  requireMcpAccess,
} from '@errand/guard/node';
import { type ServerType, serve } from '@hono/node-server';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer as LegacyMcpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport as LegacyServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { McpServer, WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/server';
import express from 'express';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { z } from 'zod';
import {
  agentClient,
  delegateViaCiba,
  delegationWorld,
  exchange,
  TT_JWT,
} from '../../../broker/test/delegation-fixtures.js';
import { dpopFetch, proofKey } from '../../../broker/test/dpop-fixtures.js';
import { addAgent, startBroker, type TestAgent, type TestBroker } from '../../../broker/test/fixtures.js';

/**
 * The guard's adapters beyond Hono, each in front of a real server and against tokens from a real
 * broker: a Fetch handler (an MCP server on the 2.x SDK's Web Standard Streamable HTTP transport,
 * no Hono), Node's own `http` server (an MCP server on the 1.x SDK transport, no framework), and
 * Express (the 1.x SDK transport, the way most MCP servers are written). Real 1.x and 2.x MCP
 * clients call them; raw requests check the refusals.
 */

const SCOPES = ['notes:read', 'notes:write'];
const TOOL_SCOPES = { list_notes: 'notes:read', write_note: 'notes:write' };
const insecure = { [oauth.allowInsecureRequests]: true };

interface Target {
  name: string;
  resource: string;
  guard: Guard;
  close: () => Promise<void>;
}

let tb: TestBroker;
let as: oauth.AuthorizationServer;
let agent: TestAgent;
const targets: Target[] = [];
/** Per resource: notes:read only, notes:read+write, and notes:read+write with only list_notes granted. */
const tokens = new Map<string, { read: string; write: string; listOnly: string }>();

/** The 2.x SDK server: the tools answer with the user the guard verified (from the MCP AuthInfo). */
function modernServer(): McpServer {
  const server = new McpServer({ name: 'adapter-test', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.registerTool('list_notes', { inputSchema: z.object({}) }, async (_args, ctx) => ({
    content: [{ type: 'text' as const, text: JSON.stringify({ user: accessOf(ctx.http?.authInfo)?.sub }) }],
  }));
  server.registerTool('write_note', { inputSchema: z.object({}) }, async () => ({
    content: [{ type: 'text' as const, text: '{"written":true}' }],
  }));
  return server;
}

/** The 1.x SDK server, the same tools. */
function legacyServer(): LegacyMcpServer {
  const server = new LegacyMcpServer({ name: 'adapter-test', version: '1.0.0' });
  server.registerTool('list_notes', { inputSchema: {} }, async (_args, extra) => ({
    content: [{ type: 'text' as const, text: JSON.stringify({ user: accessOf(extra.authInfo)?.sub }) }],
  }));
  server.registerTool('write_note', { inputSchema: {} }, async () => ({
    content: [{ type: 'text' as const, text: '{"written":true}' }],
  }));
  return server;
}

/** Serves one MCP request with the 1.x transport (stateless, one server per request). */
async function handleLegacy(req: GuardedRequest, res: import('node:http').ServerResponse): Promise<void> {
  const server = legacyServer();
  const transport = new LegacyServerTransport({ enableJsonResponse: true });
  res.on('close', () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
const closeServer = (server: Server | ServerType) => () =>
  new Promise<void>((resolve) => {
    (server as Server).closeAllConnections?.();
    server.close(() => resolve());
  });

/** A Fetch handler (here behind @hono/node-server's `serve({ fetch })`; any Fetch server would do). */
async function startFetchTarget(): Promise<Target> {
  let handler: (req: Request) => Promise<Response> = async () => new Response(null, { status: 503 });
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: (req) => handler(req), hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const guard = createGuard({ issuer: tb.url, resource: `${origin}/mcp`, scopesSupported: SCOPES });
  const api = guardFetch(guard, (_req, access) => Response.json({ user: access.sub, scopes: access.scopes }), {
    scopes: ['notes:write'],
  });
  const mcp = guardMcpFetch(
    guard,
    async (req, ctx) => {
      const transport = new WebStandardStreamableHTTPServerTransport({ enableJsonResponse: true });
      await modernServer().connect(transport);
      return transport.handleRequest(req, ctx);
    },
    { toolScopes: TOOL_SCOPES },
  );
  handler = async (req) => (new URL(req.url).pathname.startsWith('/api/') ? api(req) : mcp(req));
  return { name: 'Fetch + MCP SDK 2.x', resource: `${origin}/mcp`, guard, close: closeServer(server) };
}

/** Node's own http server: the middleware chained by hand, the 1.x transport reading what the guard read. */
async function startNodeTarget(): Promise<Target> {
  let guard: Guard | undefined;
  const server = createServer((req: GuardedRequest, res) => {
    const g = guard!;
    const fail = (err: unknown) => {
      res.writeHead(500).end(String(err));
    };
    void protectedResourceMetadataHandler(g)(req, res, () => {
      if (req.url?.startsWith('/api/')) {
        void requireAccess(g, { scopes: ['notes:write'] })(req, res, (err) => {
          if (err) return fail(err);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ user: req.auth?.extra.access.sub, scopes: req.auth?.scopes }));
        });
        return;
      }
      void requireMcpAccess(g, { toolScopes: TOOL_SCOPES })(req, res, (err) =>
        err ? fail(err) : handleLegacy(req, res).catch(fail),
      );
    });
  });
  const origin = await listen(server);
  guard = createGuard({ issuer: tb.url, resource: `${origin}/mcp`, scopesSupported: SCOPES });
  return { name: 'Node http + MCP SDK 1.x', resource: `${origin}/mcp`, guard, close: closeServer(server) };
}

/** Express 5 with express.json(): the guard takes the parsed body; the 1.x transport gets it too. */
async function startExpressTarget(): Promise<Target> {
  const app = express();
  const server = createServer(app);
  const origin = await listen(server);
  const guard = createGuard({ issuer: tb.url, resource: `${origin}/mcp`, scopesSupported: SCOPES });
  app.use(express.json());
  app.use(protectedResourceMetadataHandler(guard));
  app.post('/api/notes', requireAccess(guard, { scopes: ['notes:write'] }), (req, res) => {
    const access = requestAccess(req);
    res.json({ user: access?.sub, scopes: access?.scopes });
  });
  app.all('/mcp', requireMcpAccess(guard, { toolScopes: TOOL_SCOPES }), (req, res) => handleLegacy(req, res));
  return { name: 'Express + MCP SDK 1.x', resource: `${origin}/mcp`, guard, close: closeServer(server) };
}

/** A client_credentials token for `resource` (the agent's own authority), DPoP-bound when `dpop` is given. */
async function ownToken(resource: string, scope: string, dpop?: oauth.DPoPHandle): Promise<string> {
  const [client, auth] = agentClient(tb, agent);
  const res = await oauth.clientCredentialsGrantRequest(
    as,
    client,
    auth,
    new URLSearchParams({ resource, scope }),
    dpop ? { ...insecure, DPoP: dpop } : insecure,
  );
  return (await oauth.processClientCredentialsResponse(as, client, res)).access_token;
}

beforeAll(async () => {
  tb = await startBroker({ ERRAND_CIBA_INTERVAL: '1' });
  targets.push(await startFetchTarget(), await startNodeTarget(), await startExpressTarget());
  const resources = Object.fromEntries(targets.map((t) => [t.resource, SCOPES]));
  const w = await delegationWorld(tb, { agents: 1, resources });
  as = w.as;
  agent = await addAgent(w.api, { name: 'own authority', scope: SCOPES, grant_types: undefined });
  // A delegation whose tokens may call list_notes only (RFC 9396 mcp_tool), on every target.
  const all = targets.map((t) => t.resource);
  const details = all.map((r) => ({ type: 'mcp_tool', locations: [r], actions: ['list_notes'] }));
  const asked = { scope: `openid ${SCOPES.join(' ')}`, resource: all, authorization_details: JSON.stringify(details) };
  const { credential } = await delegateViaCiba(tb, w.as, w.agents[0]!, w.user, asked);
  for (const t of targets) {
    const listOnly = await exchange(tb, w.as, w.agents[0]!, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: t.resource,
    });
    tokens.set(t.resource, {
      read: await ownToken(t.resource, 'notes:read'),
      write: await ownToken(t.resource, 'notes:read notes:write'),
      listOnly: listOnly.access_token,
    });
  }
});
afterAll(async () => {
  for (const t of targets) await t.close();
  await tb?.close();
});

const MCP_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
};
const toolCall = (name: string) =>
  JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const apiUrl = (t: Target) => `${new URL(t.resource).origin}/api/notes`;
const textOf = (result: unknown) =>
  JSON.parse((result as { content: { text: string }[] }).content[0]!.text) as Record<string, unknown>;

describe.each([0, 1, 2])('guard adapter %#', (i) => {
  const t = () => targets[i]!;
  const tok = () => tokens.get(t().resource)!;

  test('serves RFC 9728 metadata at the resource path, with CORS for browser clients', async () => {
    const res = await fetch(`${new URL(t().resource).origin}/.well-known/oauth-protected-resource/mcp`);
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(await res.json()).toMatchObject({ resource: t().resource, authorization_servers: [tb.url] });
    const preflight = await fetch(`${new URL(t().resource).origin}/.well-known/oauth-protected-resource/mcp`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' },
    });
    expect(preflight.status).toBe(204);
  });

  test('no token: 401 with the resource_metadata challenge and no error code (RFC 6750 §3.1)', async () => {
    for (const res of [
      await fetch(apiUrl(t()), { method: 'POST' }),
      await fetch(t().resource, { method: 'POST', headers: MCP_HEADERS, body: toolCall('list_notes') }),
    ]) {
      expect(res.status).toBe(401);
      const challenge = res.headers.get('www-authenticate') ?? '';
      expect(challenge).toMatch(/^Bearer /);
      expect(challenge).toContain(`resource_metadata="${t().guard.metadataUrl}"`);
      expect(challenge).not.toContain('error=');
    }
  });

  test('a token for another resource is refused: invalid_token', async () => {
    const other = tokens.get(targets[(i + 1) % targets.length]!.resource)!.write;
    const res = await fetch(apiUrl(t()), { method: 'POST', headers: bearer(other) });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'invalid_token' });
    const mcp = await fetch(t().resource, {
      method: 'POST',
      headers: { ...MCP_HEADERS, ...bearer(other) },
      body: toolCall('list_notes'),
    });
    expect(mcp.status).toBe(401);
    expect(mcp.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
  });

  test('a route or tool needing a wider scope: 403 insufficient_scope naming the scope', async () => {
    const res = await fetch(apiUrl(t()), { method: 'POST', headers: bearer(tok().read) });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: 'insufficient_scope' });
    expect(res.headers.get('www-authenticate')).toMatch(/error="insufficient_scope".*scope="notes:write"/);
    const mcp = await fetch(t().resource, {
      method: 'POST',
      headers: { ...MCP_HEADERS, ...bearer(tok().read) },
      body: toolCall('write_note'),
    });
    expect(mcp.status).toBe(403);
    expect(mcp.headers.get('www-authenticate')).toMatch(/scope="notes:write"/);
    // The write scope opens the route.
    const ok = await fetch(apiUrl(t()), { method: 'POST', headers: bearer(tok().write) });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ scopes: SCOPES });
  });

  test('a tool the token does not grant (RFC 9396 mcp_tool) is refused even with the scope', async () => {
    const res = await fetch(t().resource, {
      method: 'POST',
      headers: { ...MCP_HEADERS, ...bearer(tok().listOnly) },
      body: toolCall('write_note'),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({
      error: 'insufficient_scope',
      error_description: expect.stringMatching(/does not grant tool write_note/),
    });
    const unknown = await fetch(t().resource, {
      method: 'POST',
      headers: { ...MCP_HEADERS, ...bearer(tok().write) },
      body: toolCall('drop_tables'),
    });
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({ error: 'invalid_request' });
  });

  test('a DPoP-bound token: accepted with its proof, refused when sent as Bearer', async () => {
    const key = await proofKey();
    const [client] = agentClient(tb, agent);
    const bound = await ownToken(t().resource, 'notes:read notes:write', oauth.DPoP(client, key.pair));
    const withProof = dpopFetch(bound, key, () => tb.clock.now());
    const ok = await withProof(apiUrl(t()), { method: 'POST' });
    expect(ok.status).toBe(200);
    const downgraded = await fetch(apiUrl(t()), { method: 'POST', headers: bearer(bound) });
    expect(downgraded.status).toBe(401);
    expect(downgraded.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token"/);
    const mcp = await fetch(t().resource, {
      method: 'POST',
      headers: { ...MCP_HEADERS, ...bearer(bound) },
      body: toolCall('list_notes'),
    });
    expect(mcp.status).toBe(401);
  });

  test('real MCP clients (SDK 1.x and 2.x) call a granted tool and are refused the others', async () => {
    const legacy = new LegacyClient({ name: 'adapter-test-legacy', version: '1.0.0' });
    await legacy.connect(
      new LegacyTransport(new URL(t().resource), { requestInit: { headers: bearer(tok().listOnly) } }),
    );
    const modern = new ModernClient({ name: 'adapter-test-modern', version: '1.0.0' });
    await modern.connect(
      new ModernTransport(new URL(t().resource), { authProvider: { token: async () => tok().listOnly } }),
    );
    for (const client of [legacy, modern]) {
      const listed = await client.callTool({ name: 'list_notes', arguments: {} });
      expect(textOf(listed).user).toMatch(/^usr_/);
      await expect(client.callTool({ name: 'write_note', arguments: {} })).rejects.toThrow(/insufficient.scope/i);
    }
    await legacy.close();
    await modern.close();
  });
});
