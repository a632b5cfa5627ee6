import { randomUUID } from 'node:crypto';
import { type AgentCard, type StreamResponse, type Task, TaskState, verifyAgentCardSignature } from '@a2a-js/sdk';
import type { Client } from '@a2a-js/sdk/client';
import { type CryptoKey, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { introspector, userApi } from '../../broker/test/delegation-fixtures.js';
import { actorToken, startBroker, type TestBroker } from '../../broker/test/fixtures.js';
import { agentToken, ERRAND_SCOPES, mcpWorld, NOTES } from '../../mcp-server/errand/test/mcp-fixtures.js';
import { a2aClient, expectRpcError, isTask, replyData, skillRequest, tokenArtifact } from './a2a-fixtures.js';

let tb: TestBroker;
let world: Awaited<ReturnType<typeof mcpWorld>>;
let endpoint: string;
let token: string;
let client: Client;
let introspect: Awaited<ReturnType<typeof introspector>>;

/** A raw JSON-RPC POST, below the SDK client. */
async function rpc(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, ...body }),
  });
  return { res, json: (await res.json()) as { result?: Record<string, unknown>; error?: { code: number } } };
}

let asks = 0;

/** Asks for a (new: each ask differs) delegation over A2A and approves it as the user; returns its id. */
async function approvedDelegation(a2a: Client, extra: Record<string, unknown> = {}): Promise<string> {
  asks += 1;
  const ask = {
    user: world.user.username,
    resources: [NOTES],
    scopes: ['notes:read', 'notes:write'],
    // A repeat of the same ask within the CIBA request lifetime would return the same delegation.
    expires_in: 3600 + asks,
    ...extra,
  };
  const asked = replyData(await a2a.sendMessage(skillRequest('request_delegation', ask)));
  expect(asked).toMatchObject({ status: 'pending', approval_url: `${tb.url}/my/requests` });
  const me = await userApi(tb, world.user);
  const approved = await me.call('POST', `/api/me/delegations/${asked.delegation_id as string}/approve`, {});
  expect(approved.status).toBe(200);
  return asked.delegation_id as string;
}

beforeAll(async () => {
  tb = await startBroker();
  world = await mcpWorld(tb);
  endpoint = `${tb.url}/a2a`;
  token = await agentToken(tb, world.as, world.agent, endpoint, ERRAND_SCOPES);
  client = await a2aClient(tb, token);
  introspect = await introspector(tb, world.api, [NOTES]);
});
afterAll(() => tb.close());

describe('protection of <issuer>/a2a', () => {
  test('the protected resource metadata names the endpoint, Errand as AS, and the Errand scopes', async () => {
    const res = await fetch(`${tb.url}/.well-known/oauth-protected-resource/a2a`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      resource: endpoint,
      authorization_servers: [tb.url],
      scopes_supported: ['errand:delegate', 'errand:tasks'],
    });
    // A built-in resource: client_credentials for it worked in beforeAll.
    expect(world.as.scopes_supported).toEqual(expect.arrayContaining(['errand:delegate', 'errand:tasks']));
  });

  test('no token: 401 with resource_metadata in the challenge', async () => {
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'a2a-version': '1.0' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id: 'x' } }),
    });
    expect(res.status).toBe(401);
    const header = res.headers.get('www-authenticate') ?? '';
    expect(header).toMatch(/^Bearer /);
    expect(header).toContain(`resource_metadata="${tb.url}/.well-known/oauth-protected-resource/a2a"`);
    expect(header).not.toContain('error=');
  });

  test('a token for another resource (Errand MCP) is refused with 401 invalid_token', async () => {
    const mcpToken = await agentToken(tb, world.as, world.agent, `${tb.url}/mcp`, ERRAND_SCOPES);
    const { res } = await rpc(
      { method: 'GetTask', params: { id: 'x' } },
      { authorization: `Bearer ${mcpToken}`, 'a2a-version': '1.0' },
    );
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  test('GetExtendedAgentCard needs a token; with one it describes the caller (and is signed)', async () => {
    const anonymous = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'a2a-version': '1.0' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'GetExtendedAgentCard', params: {} }),
    });
    expect(anonymous.status).toBe(401);

    const { json } = await rpc({ method: 'GetExtendedAgentCard', params: {} }, { 'a2a-version': '1.0' });
    const card = json.result as unknown as AgentCard & {
      capabilities: { extensions: { uri: string; params: Record<string, unknown> }[] };
    };
    const caller = card.capabilities.extensions.find((e) => e.uri === 'urn:errand:a2a:caller:v1');
    expect(caller?.params).toMatchObject({
      client_id: world.agent.clientId,
      scopes: ['errand:delegate', 'errand:tasks'],
    });
    await verifyAgentCardSignature(async (kid, jku) => {
      const jwks = (await (await fetch(jku!)).json()) as { keys: (JWK & { kid: string; alg: string })[] };
      const jwk = jwks.keys.find((k) => k.kid === kid)!;
      return (await importJWK(jwk, jwk.alg)) as CryptoKey;
    })(card);

    // The SDK client replaces the public card with the extended one.
    const extended = await client.getAgentCard();
    expect(extended.capabilities?.extensions.map((e) => e.uri)).toContain('urn:errand:a2a:caller:v1');
  });

  test('A2A-Version 9.9: VersionNotSupportedError (-32009)', async () => {
    const { res, json } = await rpc({ method: 'GetTask', params: { id: 'x' } }, { 'a2a-version': '9.9' });
    expect(res.status).toBe(200);
    expect(json.error?.code).toBe(-32009);
  });
});

describe('skills over A2A', () => {
  test('a message naming no skill, or a skill the token has no scope for, is a refusal saying what is missing', async () => {
    const none = await client.sendMessage({
      ...skillRequest('x', {}),
      message: {
        ...skillRequest('x', {}).message!,
        parts: [
          { content: { $case: 'text', value: 'hello' }, mediaType: 'text/plain', filename: '', metadata: undefined },
        ],
      },
    });
    expect(replyData(none)).toMatchObject({
      error: 'invalid_request',
      missing: { skill: expect.arrayContaining(['issue_task_token']) },
    });

    const narrow = await a2aClient(tb, await agentToken(tb, world.as, world.agent, endpoint, 'errand:delegate'));
    const refused = await narrow.sendMessage(
      skillRequest('issue_task_token', { delegation_id: 'dlg_x', resource: NOTES }),
    );
    expect(replyData(refused)).toMatchObject({ error: 'insufficient_scope', missing: { scope: 'errand:tasks' } });
  });

  test('issue_task_token before the user approves: approval_pending, with where to approve', async () => {
    const asked = replyData(
      await client.sendMessage(
        skillRequest('request_delegation', { user: world.user.username, resources: [NOTES], scopes: ['notes:read'] }),
      ),
    );
    const refused = replyData(
      await client.sendMessage(
        skillRequest('issue_task_token', { delegation_id: asked.delegation_id, resource: NOTES }),
      ),
    );
    expect(refused).toMatchObject({ error: 'approval_pending', missing: { approval: `${tb.url}/my/requests` } });
  });

  test('an A2A task is an Errand task: started by issue_task_token, ended (tokens revoked) by CancelTask', async () => {
    const delegationId = await approvedDelegation(client);
    const started = await client.sendMessage(
      skillRequest('issue_task_token', { delegation_id: delegationId, resource: NOTES, scope: 'notes:read' }),
    );
    if (!isTask(started)) throw new Error(`expected a task: ${JSON.stringify(replyData(started))}`);
    expect(started.status?.state).toBe(TaskState.TASK_STATE_WORKING);
    const issued = tokenArtifact(started);
    expect(issued.scope).toBe('notes:read');
    expect(started.metadata?.errand_task_id).toBe(issued.task_id);
    const errandTask = await tb.broker.deps.tasks.get(issued.task_id);
    expect(errandTask?.externalIds).toEqual({ a2a: started.id });
    expect(errandTask?.delegationId).toBe(delegationId);
    expect((await introspect(issued.access_token)).active).toBe(true);

    // A second token for the same task, asked from inside the A2A task.
    const again = replyData(await client.sendMessage(skillRequest('issue_task_token', {}, started.id)));
    expect(again.task_id).toBe(issued.task_id);
    expect((await introspect(again.access_token as string)).active).toBe(true);

    const got = await client.getTask({ tenant: '', id: started.id });
    expect(got.status?.state).toBe(TaskState.TASK_STATE_WORKING);

    const canceled = await client.cancelTask({ tenant: '', id: started.id, metadata: undefined });
    expect(canceled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    expect((await tb.broker.deps.tasks.get(issued.task_id))?.state).toBe('canceled');
    expect((await introspect(issued.access_token)).active).toBe(false);
    expect((await introspect(again.access_token as string)).active).toBe(false);

    // Terminal tasks cannot be cancelled again (A2A §3.1.5), through the client or raw.
    await expectRpcError(client.cancelTask({ tenant: '', id: started.id, metadata: undefined }), -32002);
    const raw = await rpc({ method: 'CancelTask', params: { id: started.id } }, { 'a2a-version': '1.0' });
    expect(raw.json.error?.code).toBe(-32002);

    // Another agent cannot see the task: not found, not forbidden (A2A §13.1).
    const other = await a2aClient(tb, await agentToken(tb, world.as, world.subAgent, endpoint, ERRAND_SCOPES));
    await expectRpcError(other.getTask({ tenant: '', id: started.id }), -32001);
    await expectRpcError(other.cancelTask({ tenant: '', id: started.id, metadata: undefined }), -32001);
  });

  test('a task the user ends in Errand shows as ended over A2A and cannot be cancelled', async () => {
    const delegationId = await approvedDelegation(client);
    const started = (await client.sendMessage(
      skillRequest('issue_task_token', { delegation_id: delegationId, resource: NOTES }),
    )) as Task;
    const { task_id } = tokenArtifact(started);
    const me = await userApi(tb, world.user);
    expect((await me.call('POST', `/api/me/tasks/${task_id}/end`)).status).toBe(200);

    const got = await client.getTask({ tenant: '', id: started.id });
    expect(got.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    await expectRpcError(client.cancelTask({ tenant: '', id: started.id, metadata: undefined }), -32002);
  });

  test('inside the A2A task: delegate_to_subagent hands a narrower token down, end_task completes both', async () => {
    const delegationId = await approvedDelegation(client, { max_depth: 1 });
    const started = (await client.sendMessage(
      skillRequest('issue_task_token', { delegation_id: delegationId, resource: NOTES }),
    )) as Task;
    const { task_id, access_token } = tokenArtifact(started);

    // task_id defaults to the Errand task this A2A task stands for.
    const handed = replyData(
      await client.sendMessage(
        skillRequest(
          'delegate_to_subagent',
          {
            sub_agent_id: world.subAgent.clientId,
            actor_token: await actorToken(world.subAgent, tb.url),
            scope: 'notes:read',
          },
          started.id,
        ),
      ),
    );
    expect(handed).toMatchObject({ scope: 'notes:read', sub_agent_id: world.subAgent.clientId });
    expect(handed.task_id).not.toBe(task_id);
    expect(await introspect(handed.access_token as string)).toMatchObject({
      active: true,
      client_id: world.subAgent.clientId,
      act: { sub: world.subAgent.clientId, act: { sub: world.agent.clientId } },
    });
    const wider = replyData(
      await client.sendMessage(
        skillRequest(
          'delegate_to_subagent',
          {
            sub_agent_id: world.subAgent.clientId,
            actor_token: await actorToken(world.subAgent, tb.url),
            scope: 'notes:delete',
          },
          started.id,
        ),
      ),
    );
    expect(wider).toMatchObject({ error: 'invalid_scope', how: expect.any(String) });

    const ended = await client.sendMessage(skillRequest('end_task', { state: 'completed' }, started.id));
    if (!isTask(ended)) throw new Error(`expected the task: ${JSON.stringify(replyData(ended))}`);
    expect(ended.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect((await tb.broker.deps.tasks.get(task_id))?.state).toBe('completed');
    expect((await introspect(access_token)).active).toBe(false);
    expect((await introspect(handed.access_token as string)).active).toBe(false);
  });

  test('streaming: SendStreamingMessage over SSE yields the task with its token', async () => {
    const delegationId = await approvedDelegation(client);
    const events: StreamResponse[] = [];
    for await (const event of client.sendMessageStream(
      skillRequest('issue_task_token', { delegation_id: delegationId, resource: NOTES }),
    )) {
      events.push(event);
    }
    const first = events[0]?.payload;
    if (first?.$case !== 'task') throw new Error(`expected a task event first: ${JSON.stringify(events)}`);
    expect(first.value.status?.state).toBe(TaskState.TASK_STATE_WORKING);
    expect((await introspect(tokenArtifact(first.value).access_token)).active).toBe(true);
  });

  test('A2A 0.3: raw message/send and tasks/cancel without a version header, through the compat layer', async () => {
    const delegationId = await approvedDelegation(client);
    const { res, json } = await rpc({
      method: 'message/send',
      params: {
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
      },
    });
    expect(res.status).toBe(200);
    const task = json.result as {
      kind: string;
      id: string;
      status: { state: string };
      artifacts: { parts: { kind: string; data: { task_id: string; access_token: string } }[] }[];
    };
    expect(task).toMatchObject({ kind: 'task', status: { state: 'working' } });
    const issued = task.artifacts[0]!.parts[0]!.data;
    expect((await introspect(issued.access_token)).active).toBe(true);

    const got = await rpc({ method: 'tasks/get', params: { id: task.id } });
    expect(got.json.result).toMatchObject({ kind: 'task', id: task.id, status: { state: 'working' } });
    const canceled = await rpc({ method: 'tasks/cancel', params: { id: task.id } });
    expect(canceled.json.result).toMatchObject({ id: task.id, status: { state: 'canceled' } });
    expect((await introspect(issued.access_token)).active).toBe(false);
    expect((await rpc({ method: 'tasks/cancel', params: { id: task.id } })).json.error?.code).toBe(-32002);
  });
});
