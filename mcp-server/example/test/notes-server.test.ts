import { type ServerType, serve } from '@hono/node-server';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { userApi } from '../../../broker/test/delegation-fixtures.js';
import {
  actorToken,
  addAgent,
  addResource,
  adminApi,
  createUser,
  discover,
  freePort,
  startBroker,
  type TestBroker,
} from '../../../broker/test/fixtures.js';
import { newId } from '../../../broker/tokens/random.js';
import {
  agentToken,
  compileJsonSchema,
  ERRAND_SCOPES,
  legacyClient,
  resultText,
  structured,
} from '../../errand/test/mcp-fixtures.js';
import { createNotesServer, type NotesServer } from '../notes-server.js';

let tb: TestBroker;
let notes: NotesServer;
let notesServer: ServerType;
let notesUrl: string;

beforeAll(async () => {
  // A long status-list ttl: if the example server learns of an ended task quickly, it was pushed.
  tb = await startBroker({ ERRAND_STATUS_LIST_TTL: '60' });
  const api = await adminApi(tb);
  const port = await freePort();
  notesUrl = `http://127.0.0.1:${port}/mcp`;
  await addResource(api, notesUrl, ['notes:read', 'notes:write', 'notes:delete']);
  // The notes server is a resource_server client at Errand, with its own key, for the push channel.
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = newId('k');
  const rs = await api.call('POST', '/api/admin/clients', {
    kind: 'resource_server',
    name: 'example notes',
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] },
    grant_types: ['client_credentials'],
    resources: [notesUrl],
  });
  const { client_id: clientId } = (await rs.json()) as { client_id: string };
  notes = createNotesServer({ issuer: tb.url, resource: notesUrl, push: { clientId, privateKey, kid } });
  notesServer = await new Promise((resolve) => {
    const s = serve({ fetch: notes.app.fetch, hostname: '127.0.0.1', port }, () => resolve(s));
  });
  await notes.guard.connect();
});
afterAll(async () => {
  notes?.guard.close();
  await new Promise<void>((r) => notesServer?.close(() => r()));
  await tb?.close();
});

/** An MCP client for the notes server presenting a task token. */
async function notesClient(token: string): Promise<Client> {
  const client = new Client({ name: 'notes-test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(notesUrl), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

/** A raw tools/call below the client libraries, to look at status codes and challenges. */
async function rawCall(token: string, name: string, args: Record<string, unknown> = {}) {
  return fetch(notesUrl, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } }),
  });
}

describe('an agent works through Errand’s MCP tools and the example notes server', () => {
  test('task token in, narrower sub-agent token, end_task pushed to the tool server', async () => {
    const api = await adminApi(tb);
    // Agents registered with a scope list may only ask for those scopes.
    const scope = ['errand:delegate', 'errand:tasks', 'notes:read', 'notes:write'];
    const agent = await addAgent(api, { name: 'planner', scope, grant_types: undefined });
    const helper = await addAgent(api, { name: 'helper', scope, grant_types: undefined });
    const user = await createUser(tb);
    const as = await discover(tb);

    // The agent talks to Errand over MCP with a token for Errand's own MCP endpoint.
    const errandToken = await agentToken(tb, as, agent, `${tb.url}/mcp`, ERRAND_SCOPES);
    const { client: errand } = await legacyClient(tb, errandToken);
    const asked = structured(
      await errand.callTool({
        name: 'request_delegation',
        arguments: { user: user.username, resources: [notesUrl], scopes: ['notes:read', 'notes:write'], max_depth: 1 },
      }),
    );
    expect(asked).toMatchObject({ status: 'pending' });
    const me = await userApi(tb, user);
    expect((await me.call('POST', `/api/me/delegations/${asked.delegation_id}/approve`, {})).status).toBe(200);

    const task = structured(
      await errand.callTool({
        name: 'start_task',
        arguments: { delegation_id: asked.delegation_id, resource: notesUrl },
      }),
    );
    expect(task.scope).toBe('notes:read notes:write');
    const taskToken = task.access_token as string;

    // The task token works at the notes server.
    const planner = await notesClient(taskToken);
    const written = structured(
      await planner.callTool({ name: 'write_note', arguments: { title: 'plan', body: 'step 1' } }),
    );
    expect(written.note).toMatchObject({ title: 'plan', author: agent.clientId });
    expect(structured(await planner.callTool({ name: 'list_notes', arguments: {} })).notes).toHaveLength(1);

    // A sub-agent gets a read-only token: reading works, writing is refused with the scope it lacks.
    const sub = structured(
      await errand.callTool({
        name: 'delegate_to_subagent',
        arguments: {
          task_id: task.task_id,
          sub_agent_id: helper.clientId,
          actor_token: await actorToken(helper, tb.url),
          scope: 'notes:read',
        },
      }),
    );
    expect(decodeJwt(sub.access_token as string).act).toEqual({ sub: helper.clientId, act: { sub: agent.clientId } });
    const helperClient = await notesClient(sub.access_token as string);
    expect(structured(await helperClient.callTool({ name: 'list_notes', arguments: {} })).notes).toHaveLength(1);
    const refused = await rawCall(sub.access_token as string, 'write_note', { title: 'x', body: 'y' });
    expect(refused.status).toBe(403);
    const challenge = refused.headers.get('www-authenticate') ?? '';
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="notes:write"');
    expect(challenge).toContain(
      `resource_metadata="http://127.0.0.1:${new URL(notesUrl).port}/.well-known/oauth-protected-resource/mcp"`,
    );

    // end_task: the notes server learns it over the push channel, well under a second.
    const revoked = new Promise<number>((resolve) => {
      const off = notes.guard.onRevoked(() => {
        off();
        resolve(performance.now());
      });
    });
    const endedAt = performance.now();
    const ended = structured(await errand.callTool({ name: 'end_task', arguments: { task_id: task.task_id } }));
    expect(ended.state).toBeDefined();
    const latency = (await revoked) - endedAt;
    expect(latency).toBeLessThan(1000);
    // The status list could not have told it yet (ttl 60 s, fetched before the end): the push did.
    const after = await rawCall(taskToken, 'list_notes');
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect((await rawCall(sub.access_token as string, 'list_notes')).status).toBe(401);
  });

  test('a token for another audience is refused: no passthrough', async () => {
    const api = await adminApi(tb);
    const agent = await addAgent(api, { name: 'outsider', scope: ['errand:delegate', 'errand:tasks'] });
    const errandToken = await agentToken(tb, await discover(tb), agent, `${tb.url}/mcp`, ERRAND_SCOPES);
    const res = await rawCall(errandToken, 'list_notes');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  test('no token: 401 with the resource metadata and a scope hint; the metadata names the resource exactly', async () => {
    const res = await fetch(notesUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(
      /^Bearer .*resource_metadata="[^"]+\/\.well-known\/oauth-protected-resource\/mcp"/,
    );
    const prm = (await (
      await fetch(`http://127.0.0.1:${new URL(notesUrl).port}/.well-known/oauth-protected-resource/mcp`)
    ).json()) as Record<string, unknown>;
    expect(prm).toMatchObject({ resource: notesUrl, authorization_servers: [tb.url] });
    expect(prm.scopes_supported).not.toContain('offline_access');
  });
});

describe('tool results reach the official MCP clients', () => {
  /** A task token for the notes server, from a delegation Errand's MCP tools obtained and a user approved. */
  async function notesTaskToken(): Promise<string> {
    const api = await adminApi(tb);
    const agent = await addAgent(api, {
      name: 'reader',
      scope: ['errand:delegate', 'errand:tasks', 'notes:read', 'notes:write', 'notes:delete'],
      grant_types: undefined,
    });
    const user = await createUser(tb);
    const { client: errand } = await legacyClient(
      tb,
      await agentToken(tb, await discover(tb), agent, `${tb.url}/mcp`, ERRAND_SCOPES),
    );
    const asked = structured(
      await errand.callTool({
        name: 'request_delegation',
        arguments: {
          user: user.username,
          resources: [notesUrl],
          scopes: ['notes:read', 'notes:write', 'notes:delete'],
        },
      }),
    );
    expect(
      (await (await userApi(tb, user)).call('POST', `/api/me/delegations/${asked.delegation_id}/approve`, {})).status,
    ).toBe(200);
    const task = structured(
      await errand.callTool({
        name: 'start_task',
        arguments: { delegation_id: asked.delegation_id, resource: notesUrl },
      }),
    );
    await errand.close();
    return task.access_token as string;
  }

  test('a refusal is an isError result with its reason, through SDK 1.x (output validation on) and 2.x', async () => {
    const token = await notesTaskToken();
    const legacy = await notesClient(token);
    const modern = new ModernClient({ name: 'notes-test-modern', version: '1.0.0' });
    await modern.connect(new ModernTransport(new URL(notesUrl), { authProvider: { token: async () => token } }));
    // SDK 1.x validates structured content only for tools it has listed.
    const { tools } = await legacy.listTools();
    await modern.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['delete_note', 'list_notes', 'read_note', 'write_note']);
    for (const tool of tools) {
      expect(() => compileJsonSchema(tool.inputSchema as Record<string, unknown>), tool.name).not.toThrow();
      expect(() => compileJsonSchema(tool.outputSchema as Record<string, unknown>), tool.name).not.toThrow();
    }
    const refusals: [string, Record<string, unknown>, RegExp][] = [
      ['read_note', { id: 'n404' }, /no note n404/],
      ['read_note', { id: 7 }, /Input validation error/],
      ['write_note', { title: '', body: 'x' }, /Input validation error/],
      ['delete_note', {}, /Input validation error/],
    ];
    for (const client of [legacy, modern]) {
      for (const [name, args, reason] of refusals) {
        const result = await client.callTool({ name, arguments: args });
        expect(result.isError, name).toBe(true);
        expect(resultText(result), name).toMatch(reason);
      }
      const written = await client.callTool({ name: 'write_note', arguments: { title: 't', body: 'b' } });
      expect(written.isError).toBeFalsy();
      const id = (structured(written).note as { id: string }).id;
      expect(structured(await client.callTool({ name: 'read_note', arguments: { id } })).note).toMatchObject({ id });
    }
    await legacy.close();
    await modern.close();
  });
});
