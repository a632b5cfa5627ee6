import { randomUUID } from 'node:crypto';
import { TaskState } from '@a2a-js/sdk';
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import type { Message as V03Message, Task as V03Task } from 'a2a-sdk-v03';
import {
  A2AClient as V03A2AClient,
  ClientFactory as V03ClientFactory,
  ClientFactoryOptions as V03ClientFactoryOptions,
  JsonRpcTransportFactory as V03JsonRpcTransportFactory,
} from 'a2a-sdk-v03/client';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentClient, introspector, userApi } from '../../broker/test/delegation-fixtures.js';
import { dpopFetch, proofKey } from '../../broker/test/dpop-fixtures.js';
import { insecure, startBroker, type TestBroker } from '../../broker/test/fixtures.js';
import { agentToken, ERRAND_SCOPES, mcpWorld, NOTES } from '../../mcp-server/errand/test/mcp-fixtures.js';
import { bearerFetch, isTask, skillRequest, tokenArtifact } from './a2a-fixtures.js';

let tb: TestBroker;
let world: Awaited<ReturnType<typeof mcpWorld>>;
let endpoint: string;
let token: string;
let introspect: Awaited<ReturnType<typeof introspector>>;
let asks = 0;

beforeAll(async () => {
  tb = await startBroker();
  world = await mcpWorld(tb);
  endpoint = `${tb.url}/a2a`;
  token = await agentToken(tb, world.as, world.agent, endpoint, ERRAND_SCOPES);
  introspect = await introspector(tb, world.api, [NOTES]);
});
afterAll(() => tb.close());

/** A delegation for the agent, asked for over raw A2A and approved by the user. */
async function approvedDelegation(): Promise<string> {
  asks += 1;
  const res = await raw({
    method: 'SendMessage',
    params: skillMessage('request_delegation', {
      user: world.user.username,
      resources: [NOTES],
      scopes: ['notes:read'],
      expires_in: 3600 + asks,
    }),
  });
  const reply = res.json.result?.message as { parts: { data?: { delegation_id?: string } }[] };
  const delegationId = reply.parts.find((p) => p.data)?.data?.delegation_id;
  if (!delegationId) throw new Error(`no delegation: ${JSON.stringify(res.json)}`);
  const me = await userApi(tb, world.user);
  expect((await me.call('POST', `/api/me/delegations/${delegationId}/approve`, {})).status).toBe(200);
  return delegationId;
}

/** The 1.0 JSON form of a message calling a skill. */
function skillMessage(skill: string, args: Record<string, unknown>) {
  return {
    message: {
      messageId: randomUUID(),
      role: 'ROLE_USER',
      parts: [{ data: { skill, arguments: args }, mediaType: 'application/json' }],
    },
  };
}

type RpcJson = { id?: unknown; result?: Record<string, unknown>; error?: { code: number; message: string } };

/** A raw POST to the endpoint: `body` is sent as is when it is a string. */
async function raw(body: Record<string, unknown> | string, headers: Record<string, string> = {}, bearer = token) {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify({ jsonrpc: '2.0', id: 7, ...body }),
  });
  return { res, json: (await res.json()) as RpcJson };
}

describe('A2A 0.3 clients (a2a-sdk 0.3, unmodified)', () => {
  test('ClientFactory resolves the card, sends a skill message, gets and cancels the task', async () => {
    const delegationId = await approvedDelegation();
    const factory = new V03ClientFactory(
      V03ClientFactoryOptions.createFrom(V03ClientFactoryOptions.default, {
        transports: [new V03JsonRpcTransportFactory({ fetchImpl: bearerFetch(token) })],
      }),
    );
    const client = await factory.createFromUrl(tb.url);
    const card = await client.getAgentCard();
    expect(card).toMatchObject({
      url: endpoint,
      preferredTransport: 'JSONRPC',
      protocolVersion: expect.stringMatching(/^0\.3/),
    });
    expect(card.securitySchemes?.errand_agent).toMatchObject({
      type: 'oauth2',
      flows: { clientCredentials: { tokenUrl: `${tb.url}/token` } },
    });

    const sent = (await client.sendMessage({
      message: {
        kind: 'message',
        messageId: randomUUID(),
        role: 'user',
        parts: [
          {
            kind: 'data',
            data: { skill: 'issue_task_token', arguments: { delegation_id: delegationId, resource: NOTES } },
          },
        ],
      },
    })) as V03Task | V03Message;
    if (sent.kind !== 'task') throw new Error(`expected a task: ${JSON.stringify(sent)}`);
    expect(sent.status.state).toBe('working');
    const part = sent.artifacts?.[0]?.parts[0];
    if (part?.kind !== 'data') throw new Error('the task has no token artifact');
    const issued = part.data as { task_id: string; access_token: string };
    expect((await introspect(issued.access_token)).active).toBe(true);

    expect(await client.getTask({ id: sent.id })).toMatchObject({ id: sent.id, status: { state: 'working' } });
    expect(await client.cancelTask({ id: sent.id })).toMatchObject({ id: sent.id, status: { state: 'canceled' } });
    expect((await tb.broker.deps.tasks.get(issued.task_id))?.state).toBe('canceled');
    expect((await introspect(issued.access_token)).active).toBe(false);
  });

  test('streaming: message/stream yields the task; tasks/resubscribe on it answers over SSE', async () => {
    const delegationId = await approvedDelegation();
    const factory = new V03ClientFactory(
      V03ClientFactoryOptions.createFrom(V03ClientFactoryOptions.default, {
        transports: [new V03JsonRpcTransportFactory({ fetchImpl: bearerFetch(token) })],
      }),
    );
    const client = await factory.createFromUrl(tb.url);
    const events: { kind: string }[] = [];
    for await (const event of client.sendMessageStream({
      message: {
        kind: 'message',
        messageId: randomUUID(),
        role: 'user',
        parts: [
          {
            kind: 'data',
            data: { skill: 'issue_task_token', arguments: { delegation_id: delegationId, resource: NOTES } },
          },
        ],
      },
    })) {
      events.push(event);
    }
    const task = events[0] as V03Task;
    expect(task).toMatchObject({ kind: 'task', status: { state: 'working' } });

    // The first event of a resubscription is the task as it stands.
    const stream = client.resubscribeTask({ id: task.id });
    const first = await stream.next();
    await stream.return?.(undefined);
    expect(first.value).toMatchObject({ kind: 'task', id: task.id, status: { state: 'working' } });
    expect(await client.cancelTask({ id: task.id })).toMatchObject({ status: { state: 'canceled' } });
  });

  test('a DPoP-bound token, with a fresh proof per request, works through the 0.3 client', async () => {
    const key = await proofKey();
    const [oauthClient, auth] = agentClient(tb, world.agent);
    const res = await oauth.clientCredentialsGrantRequest(
      world.as,
      oauthClient,
      auth,
      new URLSearchParams({ resource: endpoint, scope: ERRAND_SCOPES }),
      { ...insecure, DPoP: oauth.DPoP(oauthClient, key.pair) },
    );
    const bound = await oauth.processClientCredentialsResponse(world.as, oauthClient, res);
    expect(bound.token_type).toBe('dpop');
    const factory = new V03ClientFactory(
      V03ClientFactoryOptions.createFrom(V03ClientFactoryOptions.default, {
        transports: [
          new V03JsonRpcTransportFactory({ fetchImpl: dpopFetch(bound.access_token, key, () => tb.clock.now()) }),
        ],
      }),
    );
    const client = await factory.createFromUrl(tb.url);
    const reply = await client.sendMessage({
      message: {
        kind: 'message',
        messageId: randomUUID(),
        role: 'user',
        parts: [{ kind: 'data', data: { skill: 'issue_task_token', arguments: {} } }],
      },
    });
    // No delegation named: a refusal saying what is missing, which shows the call was authorized.
    expect(reply).toMatchObject({ kind: 'message', role: 'agent' });
    expect(JSON.stringify(reply)).toContain('delegation_id');
  });

  test('A2AClient.fromCardUrl finds the endpoint in the card and round-trips a message', async () => {
    const client = await V03A2AClient.fromCardUrl(`${tb.url}/.well-known/agent-card.json`, {
      fetchImpl: bearerFetch(token),
    });
    const res = await client.sendMessage({
      message: {
        kind: 'message',
        messageId: randomUUID(),
        role: 'user',
        parts: [{ kind: 'data', data: { skill: 'issue_task_token', arguments: {} } }],
      },
    });
    if ('error' in res) throw new Error(`JSON-RPC error: ${JSON.stringify(res.error)}`);
    expect(res.result).toMatchObject({
      kind: 'message',
      role: 'agent',
      parts: expect.arrayContaining([expect.objectContaining({ kind: 'data' })]),
    });
  });
});

describe('A2A 1.0 clients (@a2a-js/sdk 1.3, default options)', () => {
  test('resolves the combined card, sends a skill message, gets and cancels the task', async () => {
    const delegationId = await approvedDelegation();
    const factory = new ClientFactory(
      ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
        transports: [new JsonRpcTransportFactory({ fetchImpl: bearerFetch(token) })],
      }),
    );
    const client = await factory.createFromUrl(tb.url);
    expect(client.protocolVersion).toBe('1.0');
    const started = await client.sendMessage(
      skillRequest('issue_task_token', { delegation_id: delegationId, resource: NOTES }),
    );
    if (!isTask(started)) throw new Error('expected a task');
    const issued = tokenArtifact(started);
    expect((await client.getTask({ tenant: '', id: started.id })).status?.state).toBe(TaskState.TASK_STATE_WORKING);
    const canceled = await client.cancelTask({ tenant: '', id: started.id, metadata: undefined });
    expect(canceled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    expect((await introspect(issued.access_token)).active).toBe(false);
  });
});

describe('JSON-RPC over raw HTTP', () => {
  test('1.0 method names without an A2A-Version header are answered as 1.0', async () => {
    const sent = await raw({ method: 'SendMessage', params: skillMessage('issue_task_token', {}) });
    expect(sent.json.error).toBeUndefined();
    expect(sent.json.result?.message).toMatchObject({ role: 'ROLE_AGENT' });
    const missing = await raw({ method: 'GetTask', params: { id: randomUUID() } });
    expect(missing.json.error?.code).toBe(-32001);
  });

  test('an unparsable body is -32700; a body that is not a JSON-RPC request is -32600', async () => {
    const parse = await raw('{"jsonrpc": "2.0", "method": ');
    expect(parse.res.status).toBe(200);
    expect(parse.json).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32700 } });
    const invalid: [string, string][] = [
      ['[]', 'an empty batch'],
      ['42', 'a number'],
      ['"SendMessage"', 'a string'],
      ['{"id": 1, "method": "GetTask", "params": {"id": "x"}}', 'no jsonrpc member'],
      ['{"jsonrpc": "1.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}', 'jsonrpc not "2.0"'],
      ['{"jsonrpc": "2.0", "id": 1}', 'no method'],
      ['{"jsonrpc": "2.0", "id": 1, "method": 5}', 'a method that is not a string'],
      ['{"jsonrpc": "2.0", "id": {"a": 1}, "method": "GetTask", "params": {"id": "x"}}', 'an object id'],
      ['{"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": "x"}', 'params not structured'],
    ];
    for (const [body, what] of invalid) {
      for (const headers of [{}, { 'a2a-version': '1.0' }]) {
        const { res, json } = await raw(body, headers);
        expect(res.status, what).toBe(200);
        expect(json.error?.code, `${what} ${JSON.stringify(headers)}: ${JSON.stringify(json)}`).toBe(-32600);
        expect(json.error?.message).toEqual(expect.any(String));
      }
    }
  });

  test('invalid messages are -32602 with a message naming the field (1.0 and 0.3)', async () => {
    const v1 = { 'a2a-version': '1.0' };
    const cases: [Record<string, unknown>, Record<string, string>, RegExp][] = [
      [{ method: 'SendMessage', params: { message: { messageId: 'm1', role: 'ROLE_USER', parts: [] } } }, v1, /parts/],
      [{ method: 'SendMessage', params: { message: { messageId: 'm2', parts: [{ text: 'hi' }] } } }, v1, /role/],
      [{ method: 'SendMessage', params: { message: { messageId: 'm2b', parts: [{ text: 'hi' }] } } }, {}, /role/],
      [{ method: 'GetTask', params: { id: 'x', historyLength: -1 } }, v1, /historyLength/],
      [
        { method: 'message/send', params: { message: { kind: 'message', messageId: 'm3', role: 'user', parts: [] } } },
        {},
        /parts/,
      ],
      [
        {
          method: 'message/send',
          params: { message: { kind: 'message', messageId: 'm4', parts: [{ kind: 'text', text: 'hi' }] } },
        },
        {},
        /role/,
      ],
      [{ method: 'tasks/get', params: { id: 'x', historyLength: -3 } }, {}, /historyLength/],
      [{ method: 'GetTask', params: ['x'] }, {}, /params must be an object/],
    ];
    for (const [body, headers, field] of cases) {
      const { json } = await raw(body, headers);
      expect(json.error?.code, JSON.stringify({ body, json })).toBe(-32602);
      expect(json.error?.message).toMatch(field);
    }
  });
});
