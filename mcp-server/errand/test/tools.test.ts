import { request as httpRequest } from 'node:http';
import type { Client } from '@modelcontextprotocol/client';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentClient, introspector, userApi } from '../../../broker/test/delegation-fixtures.js';
import { actorToken, createUser, insecure, startBroker, type TestBroker } from '../../../broker/test/fixtures.js';
import {
  agentToken,
  ERRAND_SCOPES,
  legacyClient,
  mcpWorld,
  modernClient,
  NOTES,
  rawMcp,
  refusalOf,
  structured,
} from './mcp-fixtures.js';

let tb: TestBroker;
let world: Awaited<ReturnType<typeof mcpWorld>>;
let mcp: string;
let token: string;
let prm: string;

const callBody = (name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name, arguments: args },
});

beforeAll(async () => {
  tb = await startBroker();
  world = await mcpWorld(tb);
  mcp = `${tb.url}/mcp`;
  prm = `${tb.url}/.well-known/oauth-protected-resource/mcp`;
  token = await agentToken(tb, world.as, world.agent, mcp, ERRAND_SCOPES);
});
afterAll(() => tb.close());

describe('protection of <issuer>/mcp', () => {
  test('the protected resource metadata names the endpoint exactly, Errand as AS, and no offline_access', async () => {
    const res = await fetch(prm);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Record<string, unknown>;
    expect(doc.resource).toBe(mcp);
    expect(doc.authorization_servers).toEqual([tb.url]);
    expect(doc.scopes_supported).toEqual(['errand:delegate', 'errand:tasks']);
    expect(doc.scopes_supported).not.toContain('offline_access');
    // The endpoint is a built-in resource: the AS offers its scopes.
    expect(world.as.scopes_supported).toEqual(expect.arrayContaining(['errand:delegate', 'errand:tasks']));
  });

  test('no token: 401 with resource_metadata and every scope in the challenge', async () => {
    const res = await rawMcp(tb, callBody('whoami'));
    expect(res.status).toBe(401);
    const header = res.headers.get('www-authenticate') ?? '';
    expect(header).toMatch(/^Bearer /);
    expect(header).toContain(`resource_metadata="${prm}"`);
    expect(header).toContain(`scope="${ERRAND_SCOPES}"`);
    expect(header).not.toContain('error=');
  });

  test('a token in the query string is not accepted', async () => {
    const res = await fetch(`${mcp}?access_token=${encodeURIComponent(token)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify(callBody('whoami')),
    });
    expect(res.status).toBe(401);
  });

  test('a token for another resource is refused with 401 invalid_token (no passthrough)', async () => {
    const notesToken = await agentToken(tb, world.as, world.agent, NOTES, 'notes:read');
    const res = await rawMcp(tb, callBody('whoami'), { authorization: `Bearer ${notesToken}` });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(res.headers.get('www-authenticate')).toContain(`resource_metadata="${prm}"`);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_token');
  });

  test('a forged token is refused with 401', async () => {
    const [h, p] = token.split('.');
    const res = await rawMcp(tb, callBody('whoami'), { authorization: `Bearer ${h}.${p}.AAAA` });
    expect(res.status).toBe(401);
  });

  test('a revoked token is refused (the token row is checked, as introspection does)', async () => {
    const doomed = await agentToken(tb, world.as, world.agent, mcp, ERRAND_SCOPES);
    const client = await modernClient(tb, doomed);
    expect(structured(await client.callTool({ name: 'whoami', arguments: {} })).client_id).toBe(world.agent.clientId);
    const [c, auth] = agentClient(tb, world.agent);
    expect((await oauth.revocationRequest(world.as, c, auth, doomed, insecure)).status).toBe(200);
    const res = await rawMcp(tb, callBody('whoami'), { authorization: `Bearer ${doomed}` });
    expect(res.status).toBe(401);
    await client.close();
  });

  test('a tool needing a scope the token lacks: 403 insufficient_scope naming it; whoami needs none', async () => {
    const narrow = await agentToken(tb, world.as, world.agent, mcp, 'errand:delegate');
    const res = await rawMcp(tb, callBody('start_task', { delegation_id: 'x', resource: NOTES }), {
      authorization: `Bearer ${narrow}`,
    });
    expect(res.status).toBe(403);
    const header = res.headers.get('www-authenticate') ?? '';
    expect(header).toContain('error="insufficient_scope"');
    expect(header).toContain('scope="errand:tasks"');
    expect(header).toContain(`resource_metadata="${prm}"`);

    const client = await modernClient(tb, narrow);
    const who = structured(await client.callTool({ name: 'whoami', arguments: {} }));
    expect(who.scopes).toEqual(['errand:delegate']);
    await client.close();
  });

  test('a present Origin other than the issuer is refused with 403; the issuer origin passes', async () => {
    const bad = await rawMcp(tb, callBody('whoami'), {
      authorization: `Bearer ${token}`,
      origin: 'https://evil.example',
    });
    expect(bad.status).toBe(403);
    const good = await rawMcp(tb, callBody('whoami'), { authorization: `Bearer ${token}`, origin: tb.url });
    expect(good.status).toBe(200);
  });

  test('a Host other than the issuer host is refused (DNS rebinding)', async () => {
    const url = new URL(mcp);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { host: 'evil.example', 'content-type': 'application/json', authorization: `Bearer ${token}` },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(callBody('whoami')));
    });
    expect(status).toBe(403);
  });
});

describe('tools', () => {
  let client: Client;
  beforeAll(async () => {
    client = await modernClient(tb, token);
  });
  afterAll(() => client.close());

  test('the modern client negotiated 2026-07-28', () => {
    expect(client.getNegotiatedProtocolVersion()).toBe('2026-07-28');
  });

  test('tools/list: every tool has an input and an output schema, in a stable order', async () => {
    const first = await client.listTools();
    const names = first.tools.map((t) => t.name);
    expect(names).toEqual([
      'whoami',
      'request_delegation',
      'list_delegations',
      'start_task',
      'get_task_token',
      'delegate_to_subagent',
      'end_task',
      'list_tasks',
    ]);
    for (const tool of first.tools) {
      expect(tool.inputSchema).toMatchObject({ type: 'object' });
      expect(tool.outputSchema).toMatchObject({ type: 'object' });
    }
    const second = await client.listTools(undefined, { cacheMode: 'refresh' });
    expect(second.tools.map((t) => t.name)).toEqual(names);
  });

  test('whoami: structured content with the same JSON in a text block', async () => {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    const who = structured(result);
    expect(who).toEqual({
      client_id: world.agent.clientId,
      client_name: 'planner agent',
      kind: 'agent',
      user: null,
      scopes: ['errand:delegate', 'errand:tasks'],
      assurance_level: 'NHI-AAL1',
      token_expires_at: expect.any(Number),
    });
    const [block] = result.content as { type: string; text: string }[];
    expect(block?.type).toBe('text');
    expect(JSON.parse(block?.text ?? '')).toEqual(who);
  });

  test('an unknown tool is a JSON-RPC -32602 error (both eras)', async () => {
    const code = (e: unknown) => (e as { code?: number }).code;
    const modern = await client.callTool({ name: 'no_such_tool', arguments: {} }).then(() => null, code);
    expect(modern).toBe(-32602);
    const legacy = await legacyClient(tb, token);
    expect(await legacy.client.callTool({ name: 'no_such_tool', arguments: {} }).then(() => null, code)).toBe(-32602);
    await legacy.client.close();
  });

  test('invalid arguments are an isError result, not a protocol error', async () => {
    const result = await client.callTool({ name: 'start_task', arguments: { delegation_id: 42 } });
    expect(result.isError).toBe(true);
  });

  test('refusals are structured and say what is missing and how to get it', async () => {
    const noUser = await client.callTool({
      name: 'request_delegation',
      arguments: { resources: [NOTES], scopes: ['notes:read'] },
    });
    expect(noUser.isError).toBe(true);
    expect(refusalOf(noUser)).toMatchObject({ error: 'invalid_request', missing: { user: expect.any(String) } });

    const noDelegation = await client.callTool({
      name: 'start_task',
      arguments: { delegation_id: 'dlg_unknown', resource: NOTES },
    });
    expect(noDelegation.isError).toBe(true);
    expect(refusalOf(noDelegation)).toMatchObject({
      error: 'no_delegation',
      missing: { delegation: { resource: NOTES } },
      how: expect.stringContaining('request_delegation'),
    });

    const unknownResource = await client.callTool({
      name: 'request_delegation',
      arguments: { user: world.user.username, resources: ['https://unknown.example.test/api'], scopes: ['x:read'] },
    });
    expect(refusalOf(unknownResource)).toMatchObject({ error: 'invalid_target', how: expect.any(String) });
  });

  test('an agent delegates, works, hands down and ends a task', async () => {
    // 1. Ask the user; no elicitation was declared, so the link comes back in the result.
    const asked = await client.callTool({
      name: 'request_delegation',
      arguments: {
        user: world.user.username,
        resources: [NOTES],
        scopes: ['notes:read', 'notes:write'],
        max_depth: 1,
        binding_message: 'Plan the week',
      },
    });
    expect(asked.isError).toBeFalsy();
    const request = structured(asked);
    expect(request).toMatchObject({ status: 'pending', approval_url: `${tb.url}/my/requests` });
    const delegationId = request.delegation_id as string;

    const early = await client.callTool({
      name: 'start_task',
      arguments: { delegation_id: delegationId, resource: NOTES },
    });
    expect(refusalOf(early)).toMatchObject({
      error: 'approval_pending',
      missing: { approval: `${tb.url}/my/requests` },
    });

    // 2. The user approves in Errand.
    const me = await userApi(tb, world.user);
    const approved = await me.call('POST', `/api/me/delegations/${delegationId}/approve`, {});
    expect(approved.status).toBe(200);

    const listed = structured(await client.callTool({ name: 'list_delegations', arguments: {} }));
    const mine = (listed.delegations as { delegation_id: string; status: string; scopes: unknown }[]).find(
      (d) => d.delegation_id === delegationId,
    );
    expect(mine).toMatchObject({ status: 'active', scopes: { [NOTES]: ['notes:read', 'notes:write'] } });

    // 3. A task token for the notes resource.
    const started = structured(
      await client.callTool({ name: 'start_task', arguments: { delegation_id: delegationId, resource: NOTES } }),
    );
    expect(started).toMatchObject({ token_type: 'Bearer', scope: 'notes:read notes:write' });
    const taskId = started.task_id as string;
    const introspect = await introspector(tb, world.api, [NOTES]);
    expect(await introspect(started.access_token as string)).toMatchObject({
      active: true,
      aud: NOTES,
      sub: world.user.id,
      client_id: world.agent.clientId,
      task_id: taskId,
      act: { sub: world.agent.clientId },
    });

    const wider = await client.callTool({
      name: 'start_task',
      arguments: { delegation_id: delegationId, resource: NOTES, scope: 'notes:delete' },
    });
    expect(refusalOf(wider)).toMatchObject({ error: 'invalid_scope', missing: { scope: 'notes:delete' } });

    const again = structured(await client.callTool({ name: 'get_task_token', arguments: { task_id: taskId } }));
    expect(again).toMatchObject({ task_id: taskId, scope: 'notes:read notes:write' });

    // 4. A narrower token for a sub-agent: act is sub-agent <- agent.
    const handed = structured(
      await client.callTool({
        name: 'delegate_to_subagent',
        arguments: {
          task_id: taskId,
          sub_agent_id: world.subAgent.clientId,
          actor_token: await actorToken(world.subAgent, tb.url),
          scope: 'notes:read',
        },
      }),
    );
    expect(handed).toMatchObject({ scope: 'notes:read' });
    expect(handed.task_id).not.toBe(taskId);
    expect(await introspect(handed.access_token as string)).toMatchObject({
      active: true,
      client_id: world.subAgent.clientId,
      scope: 'notes:read',
      act: { sub: world.subAgent.clientId, act: { sub: world.agent.clientId } },
    });

    const tasks = structured(await client.callTool({ name: 'list_tasks', arguments: {} }));
    expect((tasks.tasks as { task_id: string }[]).map((t) => t.task_id)).toContain(taskId);

    // 5. Ending the task ends the sub-task and every token at once.
    const ended = structured(await client.callTool({ name: 'end_task', arguments: { task_id: taskId } }));
    expect(ended).toMatchObject({ task_id: taskId, state: 'completed' });
    expect(await introspect(started.access_token as string)).toEqual({ active: false });
    expect(await introspect(handed.access_token as string)).toEqual({ active: false });
    expect(await introspect(again.access_token as string)).toEqual({ active: false });

    const after = await client.callTool({ name: 'get_task_token', arguments: { task_id: taskId } });
    expect(after.isError).toBe(true);
    expect(refusalOf(after)).toMatchObject({ error: 'invalid_request', how: expect.any(String) });
  });
});

describe('approval links and URL elicitation', () => {
  const ask = () => ({ user: world.user.username, resources: [NOTES], scopes: ['notes:read'] });

  test('a modern client that declared URL elicitation gets one, with no token or user id in the URL', async () => {
    const seen: string[] = [];
    const client = await modernClient(tb, token, {
      elicitation: (url) => {
        seen.push(url);
        return 'accept';
      },
    });
    const result = structured(await client.callTool({ name: 'request_delegation', arguments: ask() }));
    expect(result).toMatchObject({ status: 'pending', approval_url: `${tb.url}/my/requests` });
    expect(seen).toEqual([`${tb.url}/my/requests`]);
    for (const secret of [token, world.user.id, world.user.username]) expect(seen[0]).not.toContain(secret);
    // Opening the link signed in as someone else approves nothing: the request is not theirs.
    const other = await userApi(tb, await createUser(tb));
    const foreign = await other.call('POST', `/api/me/delegations/${result.delegation_id}/approve`, {});
    expect(foreign.status).toBe(404);
    await client.close();
  });

  test('a tampered requestState is rejected before the tool runs', async () => {
    const res = await fetch(mcp, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'request_delegation',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: {
          name: 'request_delegation',
          arguments: ask(),
          inputResponses: { approval: { action: 'accept' } },
          requestState: 'v1.AAAA.BBBB.CCCC',
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } },
            'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
          },
        },
      }),
    });
    const body = (await res.json()) as { error?: { code: number } };
    expect(body.error?.code).toBe(-32602);
  });

  test('a legacy client that declared URL elicitation gets -32042 with the approval URL; a retry reuses the request', async () => {
    const { client } = await legacyClient(tb, token, { urlElicitation: true });
    const first = await client.callTool({ name: 'request_delegation', arguments: ask() }).then(
      () => null,
      (e: unknown) => e as { code: number; data: { elicitations: { url: string; elicitationId: string }[] } },
    );
    expect(first?.code).toBe(-32042);
    const [elicitation] = first?.data.elicitations ?? [];
    expect(elicitation?.url).toBe(`${tb.url}/my/requests`);
    const retry = await client.callTool({ name: 'request_delegation', arguments: ask() }).then(
      () => null,
      (e: unknown) => e as { data: { elicitations: { elicitationId: string }[] } },
    );
    expect(retry?.data.elicitations[0]?.elicitationId).toBe(elicitation?.elicitationId);
    await client.close();
  });

  test('a legacy client without elicitation gets the approval link in the result', async () => {
    const { client, transport } = await legacyClient(tb, token);
    expect(transport.protocolVersion).toBe('2025-11-25');
    const result = await client.callTool({
      name: 'request_delegation',
      arguments: { ...ask(), scopes: ['notes:write'] },
    });
    expect(structured(result)).toMatchObject({ status: 'pending', approval_url: `${tb.url}/my/requests` });
    await client.close();
  });
});
