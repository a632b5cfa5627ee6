import { type ServerType, serve } from '@hono/node-server';
import { Client, InsufficientScopeError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  agentClient,
  delegateViaCiba,
  exchange,
  GRANT_EXCHANGE,
  TT_JWT,
} from '../../../broker/test/delegation-fixtures.js';
import {
  addAgent,
  addResource,
  adminApi,
  createUser,
  discover,
  freePort,
  insecure,
  startBroker,
  type TestAgent,
  type TestBroker,
} from '../../../broker/test/fixtures.js';
import { structured } from '../../errand/test/mcp-fixtures.js';
import { createNotesServer, type NotesServer } from '../notes-server.js';

/**
 * Tool-level grants (RFC 9396 `mcp_tool`) enforced at the example notes server, through both MCP
 * client SDKs: a token limited to some tools calls only those, whatever its scopes allow.
 */

let tb: TestBroker;
let notes: NotesServer;
let server: ServerType;
let notesUrl: string;
let as: oauth.AuthorizationServer;
let restrictedAgent: TestAgent;
let restrictedCredential: string;
/** A task token with scope notes:read notes:write, limited to list_notes and read_note. */
let restricted: string;
/** A task token with scope notes:read notes:write and no tool restriction. */
let unrestricted: string;
let user: string;

beforeAll(async () => {
  tb = await startBroker();
  const api = await adminApi(tb);
  const port = await freePort();
  notesUrl = `http://127.0.0.1:${port}/mcp`;
  await addResource(api, notesUrl, ['notes:read', 'notes:write', 'notes:delete']);
  notes = createNotesServer({ issuer: tb.url, resource: notesUrl });
  server = await new Promise((resolve) => {
    const s = serve({ fetch: notes.app.fetch, hostname: '127.0.0.1', port }, () => resolve(s));
  });
  as = await discover(tb);
  const person = await createUser(tb);
  user = person.id;
  const ask = { scope: 'openid notes:read notes:write', resource: notesUrl };
  restrictedAgent = await addAgent(api, { name: 'reader', grant_types: undefined });
  ({ credential: restrictedCredential } = await delegateViaCiba(tb, as, restrictedAgent, person, {
    ...ask,
    authorization_details: JSON.stringify([
      { type: 'mcp_tool', locations: [notesUrl], actions: ['list_notes', 'read_note'] },
    ]),
  }));
  restricted = (
    await exchange(tb, as, restrictedAgent, { subject_token: restrictedCredential, subject_token_type: TT_JWT })
  ).access_token;
  const writer = await addAgent(api, { name: 'writer', grant_types: undefined });
  const { credential } = await delegateViaCiba(tb, as, writer, person, ask);
  unrestricted = (await exchange(tb, as, writer, { subject_token: credential, subject_token_type: TT_JWT }))
    .access_token;
});
afterAll(async () => {
  await new Promise<void>((r) => server?.close(() => r()));
  await tb?.close();
});

/** A fetch that remembers every refused response, to look at what the client library was told. */
function recordingFetch() {
  const refused: { status: number; challenge: string; body: Record<string, unknown> }[] = [];
  const fetchFn = async (input: string | URL | Request, init?: RequestInit) => {
    const res = await fetch(input, init);
    // JSON-RPC goes by POST; a stateless server answers the optional GET stream with 405.
    if (init?.method === 'POST' && res.status >= 400) {
      refused.push({
        status: res.status,
        challenge: res.headers.get('www-authenticate') ?? '',
        body: (await res.clone().json()) as Record<string, unknown>,
      });
    }
    return res;
  };
  return { refused, fetchFn };
}

interface Session {
  call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>>;
  refused: ReturnType<typeof recordingFetch>['refused'];
}

/** `@modelcontextprotocol/client` 2.x with a fixed bearer token. */
async function modern(token: string): Promise<Session> {
  const { refused, fetchFn } = recordingFetch();
  const client = new Client({ name: 'tool-grants-modern', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(notesUrl), {
      authProvider: { token: async () => token },
      fetch: fetchFn,
    }),
  );
  return { refused, call: async (name, args) => structured(await client.callTool({ name, arguments: args })) };
}

/** `@modelcontextprotocol/sdk` 1.x with a fixed bearer token. */
async function legacy(token: string): Promise<Session> {
  const { refused, fetchFn } = recordingFetch();
  const client = new LegacyClient({ name: 'tool-grants-legacy', version: '1.0.0' });
  await client.connect(
    new LegacyTransport(new URL(notesUrl), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
      fetch: fetchFn,
    }),
  );
  return { refused, call: async (name, args) => structured(await client.callTool({ name, arguments: args })) };
}

/** A raw JSON-RPC POST (a single message or a batch), below the client libraries. */
function rawPost(authorization: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(notesUrl, {
    method: 'POST',
    headers: {
      authorization,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...headers,
    },
    body: JSON.stringify(body),
  });
}
const toolCall = (id: number, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

describe.each([
  ['@modelcontextprotocol/client 2.x', modern],
  ['@modelcontextprotocol/sdk 1.x', legacy],
])('through %s', (_name, connect) => {
  test('a token limited to list_notes and read_note calls those; write_note is 403 insufficient_scope naming it', async () => {
    expect(decodeJwt(restricted).scope).toBe('notes:read notes:write');
    const seeded = notes.notebook.add(user, 'seed', 'from the test', 'test');
    const session = await connect(restricted);
    expect((await session.call('list_notes', {})).notes).toContainEqual(seeded);
    expect((await session.call('read_note', { id: seeded.id })).note).toEqual(seeded);

    const before = notes.notebook.list(user).length;
    const error = await session.call('write_note', { title: 'injected', body: 'x' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).not.toBeNull();
    if (connect === modern) {
      expect(error).toBeInstanceOf(InsufficientScopeError);
      expect((error as InsufficientScopeError).errorDescription).toBe(
        'the token does not grant tool write_note at this resource',
      );
    }
    expect(session.refused).toHaveLength(1);
    const [refusal] = session.refused;
    expect(refusal!.status).toBe(403);
    expect(refusal!.challenge).toMatch(/^Bearer error="insufficient_scope"/);
    expect(refusal!.challenge).toContain(
      'error_description="the token does not grant tool write_note at this resource"',
    );
    expect(refusal!.challenge).toContain('scope="notes:write"');
    expect(refusal!.challenge).toContain(`resource_metadata="${notes.guard.metadataUrl}"`);
    expect(refusal!.body).toEqual({
      error: 'insufficient_scope',
      error_description: 'the token does not grant tool write_note at this resource',
    });
    expect(notes.notebook.list(user)).toHaveLength(before);
  });

  test('a token without a tool restriction calls every tool its scopes allow, and no other', async () => {
    const session = await connect(unrestricted);
    const written = (await session.call('write_note', { title: 'plan', body: 'step 1' })).note as { id: string };
    expect(written).toMatchObject({ title: 'plan', body: 'step 1' });
    expect((await session.call('read_note', { id: written.id })).note).toEqual(written);
    expect((await session.call('list_notes', {})).notes).toContainEqual(written);
    await expect(session.call('delete_note', { id: written.id })).rejects.toThrow();
    expect(session.refused.map((r) => [r.status, r.body.error_description])).toEqual([
      [403, 'this operation needs scope notes:delete'],
    ]);
    expect(notes.notebook.list(user)).toContainEqual(written);
  });
});

describe('batches and raw requests', () => {
  test('a batch mixing an allowed and a forbidden tool is refused whole; nothing in it runs', async () => {
    const before = notes.notebook.list(user).length;
    const res = await rawPost(`Bearer ${restricted}`, [
      toolCall(1, 'list_notes'),
      toolCall(2, 'write_note', { title: 'batched', body: 'x' }),
    ]);
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toContain(
      'error="insufficient_scope", error_description="the token does not grant tool write_note at this resource"',
    );
    expect(notes.notebook.list(user)).toHaveLength(before);
    // The scope side too: an unrestricted token's batch with a tool its scope does not cover.
    const scoped = await rawPost(`Bearer ${unrestricted}`, [
      toolCall(1, 'write_note', { title: 'batched', body: 'x' }),
      toolCall(2, 'delete_note', { id: 'n1' }),
    ]);
    expect(scoped.status).toBe(403);
    expect(scoped.headers.get('www-authenticate')).toContain('scope="notes:write notes:delete"');
    expect(notes.notebook.list(user)).toHaveLength(before);
  });

  test('a tool the server does not list, and a body the guard cannot read, are refused before anything runs', async () => {
    const unknown = await rawPost(`Bearer ${unrestricted}`, toolCall(1, 'constructor'));
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toEqual({
      error: 'invalid_request',
      error_description: 'tool constructor is not offered at this resource',
    });
    // Restricted tokens are refused by their grant first.
    const notGranted = await rawPost(`Bearer ${restricted}`, toolCall(1, 'shell'));
    expect(notGranted.status).toBe(403);
    const garbled = await fetch(notesUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${restricted}`, 'content-type': 'text/plain' },
      body: '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"write_note"',
    });
    expect(garbled.status).toBe(400);
    expect(await garbled.json()).toEqual({
      error: 'invalid_request',
      error_description: 'the request body must be JSON-RPC (JSON)',
    });
  });

  test('a DPoP-bound tool-limited token: no proof or Bearer is 401; with a proof, the grant still decides', async () => {
    const [client, auth] = agentClient(tb, restrictedAgent);
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const body = new URLSearchParams({ subject_token: restrictedCredential, subject_token_type: TT_JWT });
    const requestToken = () =>
      oauth.genericTokenEndpointRequest(as, client, auth, GRANT_EXCHANGE, body, { ...insecure, DPoP });
    const bound = (await oauth.processGenericTokenEndpointResponse(as, client, await requestToken())).access_token;
    expect(decodeJwt(bound).cnf).toBeDefined();

    const noProof = await rawPost(`DPoP ${bound}`, toolCall(1, 'list_notes'));
    expect(noProof.status).toBe(401);
    expect(noProof.headers.get('www-authenticate')).toContain('error="invalid_dpop_proof"');
    const asBearer = await rawPost(`Bearer ${bound}`, toolCall(1, 'list_notes'));
    expect(asBearer.status).toBe(401);
    expect(asBearer.headers.get('www-authenticate')).toContain('error="invalid_token"');

    const withProof = (name: string, args: Record<string, unknown> = {}) =>
      oauth.protectedResourceRequest(
        bound,
        'POST',
        new URL(notesUrl),
        new Headers({
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25',
        }),
        JSON.stringify(toolCall(1, name, args)),
        { ...insecure, DPoP },
      );
    expect((await withProof('list_notes')).status).toBe(200);
    // oauth4webapi surfaces a challenged response as an error carrying the parsed challenge.
    const write = await withProof('write_note', { title: 'x', body: 'y' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(write).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const challenged = write as oauth.WWWAuthenticateChallengeError;
    expect(challenged.status).toBe(403);
    expect(challenged.cause[0]?.parameters).toMatchObject({
      error: 'insufficient_scope',
      error_description: 'the token does not grant tool write_note at this resource',
    });
  });
});
