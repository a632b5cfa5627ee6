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
  introspector,
  TT_ACCESS,
  TT_JWT,
  userApi,
} from '../../../broker/test/delegation-fixtures.js';
import {
  agentDoorWorld,
  type DoorWorld,
  ERRAND_SCOPES,
  FILES,
  NOTES,
  publicClientAuth,
  sharedClientAuth,
  signInToken,
  storeDelegation,
  storeTask,
  VAULT,
} from '../../../broker/test/door-fixtures.js';
import { dpopFetch, dpopProof, type ProofKey, proofKey } from '../../../broker/test/dpop-fixtures.js';
import {
  actorToken,
  insecure,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from '../../../broker/test/fixtures.js';
import { startWorkloadIssuer, type WorkloadIssuer } from '../../../broker/test/workload-issuer.js';
import { agentToken, legacyClient, modernClient, rawMcp, refusalOf, structured } from './mcp-fixtures.js';

/**
 * Errand's MCP door holds the token endpoint's rules: a token reaches only what its client and the
 * person it speaks for hold, a hand-off never gives more than the task holds and needs the acting
 * agent's own proof, DPoP-bound tokens need their proof, and tool grants name the tools a token may call.
 */

let tb: TestBroker;
let wi: WorkloadIssuer;
let world: DoorWorld;
let mcp: string;
let introspect: Awaited<ReturnType<typeof introspector>>;

beforeAll(async () => {
  tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true', ERRAND_CIBA_INTERVAL: '1' });
  wi = await startWorkloadIssuer({ now: () => tb.clock.now() });
  world = await agentDoorWorld(tb, wi);
  mcp = `${tb.url}/mcp`;
  introspect = await introspector(tb, world.api, [NOTES, FILES, VAULT]);
});
afterAll(async () => {
  await wi?.close();
  await tb?.close();
});

type ToolCaller = Pick<Client, 'callTool'> | Pick<LegacyClient, 'callTool'>;

/** Calls a tool and returns its structured content, expecting success. */
async function ok(client: ToolCaller, name: string, args: Record<string, unknown> = {}) {
  const result = await client.callTool({ name, arguments: args });
  expect(result.isError, JSON.stringify(result.structuredContent)).toBeFalsy();
  return structured(result);
}

/** Calls a tool and returns its refusal `{error, error_description, missing?, how}`. */
async function refused(client: Client, name: string, args: Record<string, unknown> = {}) {
  const result = await client.callTool({ name, arguments: args });
  expect(result.isError, JSON.stringify(result.structuredContent)).toBe(true);
  return refusalOf(result) ?? {};
}

/** `delegate_to_subagent`, as an agent calls it. */
function handOff(client: Client, args: Record<string, unknown>) {
  return client.callTool({ name: 'delegate_to_subagent', arguments: args });
}

/** An MCP client for `agent` acting as itself (client_credentials for the endpoint). */
async function agentMcp(agent: TestAgent, scope = ERRAND_SCOPES): Promise<Client> {
  return modernClient(tb, await agentToken(tb, world.as, agent, mcp, scope));
}

/** Alice delegates to `agent` over CIBA and approves; returns the delegation id and its credential. */
function aliceDelegates(agent: TestAgent, ask: Record<string, string | string[]>) {
  return delegateViaCiba(tb, world.as, agent, world.alice, ask);
}

describe('people sharing an MCP client reach only their own delegations and tasks', () => {
  test('a public client two people sign in to cannot ask either of them for a delegation', async () => {
    const p = publicClientAuth(world.publicClient);
    for (const person of [world.alice, world.mallory]) {
      const token = await signInToken(tb, world.as, p, person, { resource: mcp, scope: ERRAND_SCOPES });
      const client = await modernClient(tb, token);
      // RFC 8693 §2.1 policy: anyone can claim a public client's id, so it holds no delegation.
      const asked = await refused(client, 'request_delegation', { resources: [NOTES], scopes: ['notes:read'] });
      expect(asked.error).toBe('unauthorized_client');
      await client.close();
    }
    expect(await tb.broker.deps.delegations.listForAgent(world.publicClient.client_id)).toEqual([]);
  });

  test('a delegation and task a public client holds are usable by no one who signs in to it, its own person included', async () => {
    const publicId = world.publicClient.client_id;
    const delegationId = await storeDelegation(tb, {
      agentId: publicId,
      userId: world.alice.id,
      grants: { [NOTES]: ['notes:read'] },
    });
    const taskId = await storeTask(tb, {
      delegationId,
      userId: world.alice.id,
      agentId: publicId,
      actorChain: [publicId],
    });
    const calls: [string, Record<string, unknown>][] = [
      ['start_task', { delegation_id: delegationId, resource: NOTES }],
      ['get_task_token', { task_id: taskId }],
      ['delegate_to_subagent', { task_id: taskId, sub_agent_id: publicId }],
    ];
    for (const person of [world.alice, world.mallory]) {
      const token = await signInToken(tb, world.as, publicClientAuth(world.publicClient), person, {
        resource: mcp,
        scope: ERRAND_SCOPES,
      });
      const client = await modernClient(tb, token);
      for (const [name, args] of calls) {
        expect((await refused(client, name, args)).error, `${person.username} ${name}`).toBe('unauthorized_client');
      }
      await client.close();
    }
    // Nothing was issued under it: the stored task is still the only one.
    expect((await tb.broker.deps.tasks.listForAgent(publicId)).map((t) => t.id)).toEqual([taskId]);
  });

  test("on a confidential client two people share, Mallory's token reaches none of Alice's delegations or tasks", async () => {
    const auth = sharedClientAuth(tb, world.shared);
    const aliceToken = await signInToken(tb, world.as, auth, world.alice, { resource: mcp, scope: ERRAND_SCOPES });
    const malloryToken = await signInToken(tb, world.as, auth, world.mallory, { resource: mcp, scope: ERRAND_SCOPES });
    const alice = await modernClient(tb, aliceToken);
    const mallory = await modernClient(tb, malloryToken);

    const asked = await ok(alice, 'request_delegation', {
      resources: [NOTES],
      scopes: ['notes:read', 'notes:write'],
      max_depth: 1,
    });
    const delegationId = asked.delegation_id as string;
    const me = await userApi(tb, world.alice);
    expect((await me.call('POST', `/api/me/delegations/${delegationId}/approve`, {})).status).toBe(200);
    const { client: aliceLegacy } = await legacyClient(tb, aliceToken);
    const started = await ok(aliceLegacy, 'start_task', { delegation_id: delegationId, resource: NOTES });
    const taskId = started.task_id as string;
    expect(decodeJwt(started.access_token as string)).toMatchObject({
      sub: world.alice.id,
      client_id: world.shared.clientId,
    });

    expect(await ok(mallory, 'list_delegations')).toEqual({ delegations: [] });
    // A token speaks for one person: asking in another's name is refused.
    const inHerName = await refused(mallory, 'request_delegation', {
      user: world.alice.username,
      resources: [NOTES],
      scopes: ['notes:read'],
    });
    expect(inHerName.error).toBe('invalid_request');
    expect(await ok(mallory, 'list_tasks')).toEqual({ tasks: [] });
    const attempts: [string, Record<string, unknown>, string][] = [
      ['start_task', { delegation_id: delegationId, resource: NOTES }, 'no_delegation'],
      ['get_task_token', { task_id: taskId }, 'no_task'],
      ['delegate_to_subagent', { task_id: taskId, sub_agent_id: world.shared.clientId }, 'no_task'],
      ['end_task', { task_id: taskId, state: 'canceled' }, 'not_found'],
    ];
    for (const [name, args, error] of attempts) {
      expect((await refused(mallory, name, args)).error, name).toBe(error);
    }
    expect((await tb.broker.deps.tasks.get(taskId))?.state).toBe('working');
    expect((await introspect(started.access_token as string)).active).toBe(true);

    // Alice's own calls work, and every token speaks for her.
    const listed = await ok(aliceLegacy, 'list_delegations');
    expect((listed.delegations as { delegation_id: string }[]).map((d) => d.delegation_id)).toContain(delegationId);
    expect(((await ok(aliceLegacy, 'list_tasks')).tasks as { task_id: string }[]).map((t) => t.task_id)).toContain(
      taskId,
    );
    const renewed = await ok(aliceLegacy, 'get_task_token', { task_id: taskId });
    expect(decodeJwt(renewed.access_token as string).sub).toBe(world.alice.id);
    expect(await ok(aliceLegacy, 'end_task', { task_id: taskId, state: 'completed' })).toMatchObject({
      state: 'completed',
    });
    await Promise.all([alice.close(), mallory.close(), aliceLegacy.close()]);
  });
});

describe('a hand-off never holds more than the task it comes from (RFC 8693 §4.1)', () => {
  test("a sub-agent's hand-off of its own sub-task keeps the sub-task's scope, resource and tools", async () => {
    const { credential } = await aliceDelegates(world.a, {
      scope: 'openid notes:read notes:write files:read',
      resource: [NOTES, FILES],
      authorization_details: JSON.stringify([
        { type: 'mcp_tool', locations: [NOTES], actions: ['list_notes', 'read_note', 'write_note'] },
      ]),
      max_depth: '2',
    });
    const root = await exchange(tb, world.as, world.a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      scope: 'notes:read',
    });
    const sub = await exchange(tb, world.as, world.b, {
      subject_token: root.access_token,
      subject_token_type: TT_ACCESS,
      scope: 'notes:read',
      authorization_details: JSON.stringify([{ type: 'mcp_tool', locations: [NOTES], actions: ['list_notes'] }]),
    });
    const b = await agentMcp(world.b, 'errand:tasks');

    const wider = await refused(b, 'delegate_to_subagent', {
      task_id: sub.task_id,
      sub_agent_id: world.b.clientId,
      resource: NOTES,
      scope: 'notes:read notes:write',
    });
    expect(wider.error).toBe('invalid_scope');
    const elsewhere = await refused(b, 'delegate_to_subagent', {
      task_id: sub.task_id,
      sub_agent_id: world.b.clientId,
      resource: FILES,
    });
    expect(elsewhere.error).toBe('invalid_target');

    const { client: bLegacy } = await legacyClient(tb, await agentToken(tb, world.as, world.b, mcp, 'errand:tasks'));
    const same = await ok(bLegacy, 'delegate_to_subagent', { task_id: sub.task_id, sub_agent_id: world.b.clientId });
    const claims = decodeJwt(same.access_token as string);
    expect(claims).toMatchObject({ aud: NOTES, scope: 'notes:read' });
    expect(claims.exp).toBeLessThanOrEqual(decodeJwt(sub.access_token).exp!);
    expect(claims.authorization_details).toEqual([{ type: 'mcp_tool', locations: [NOTES], actions: ['list_notes'] }]);
    expect(await introspect(same.access_token as string)).toMatchObject({ active: true, scope: 'notes:read' });

    // A sub-task's tokens come from the task above it, not from the delegation.
    const renewed = await refused(b, 'get_task_token', { task_id: sub.task_id });
    expect(renewed.error).toBe('invalid_request');
    expect(renewed.error_description).toMatch(/sub-task/);
    await Promise.all([b.close(), bLegacy.close()]);
  });
});

describe('a hand-off to another agent needs that agent (RFC 8693 §2.1 actor_token)', () => {
  let delegationId: string;
  let taskId: string;
  let a: Client;

  beforeAll(async () => {
    ({ delegationId } = await aliceDelegates(world.a, {
      scope: 'openid notes:read notes:write vault:read',
      resource: [NOTES, VAULT],
      max_depth: '1',
    }));
    a = await agentMcp(world.a);
    taskId = (await ok(a, 'start_task', { delegation_id: delegationId, resource: NOTES, scope: 'notes:read' }))
      .task_id as string;
  });
  afterAll(() => a?.close());

  test("the sub-agent's own actor token is required; one the caller signed in its name is refused", async () => {
    const absent = refusalOf(await handOff(a, { task_id: taskId, sub_agent_id: world.w.clientId, resource: NOTES }));
    expect(absent).toMatchObject({ error: 'invalid_request', missing: { actor_token: expect.any(String) } });

    // A's key, W's name.
    const forged = await actorToken({ ...world.w, privateKey: world.a.privateKey, kid: world.a.kid }, tb.url);
    const withForged = await handOff(a, {
      task_id: taskId,
      sub_agent_id: world.w.clientId,
      resource: NOTES,
      actor_token: forged,
    });
    expect(withForged.isError).toBe(true);
    expect(refusalOf(withForged)?.error).toBe('invalid_request');

    // W's real actor token, naming another sub-agent.
    const mismatch = await handOff(a, {
      task_id: taskId,
      sub_agent_id: world.b.clientId,
      resource: NOTES,
      actor_token: await actorToken(world.w, tb.url),
    });
    expect(refusalOf(mismatch)).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringMatching(/sub_agent_id/),
    });
    expect(mismatch.isError).toBe(true);

    const handed = await handOff(a, {
      task_id: taskId,
      sub_agent_id: world.w.clientId,
      resource: NOTES,
      actor_token: await actorToken(world.w, tb.url),
    });
    expect(handed.isError, JSON.stringify(handed.structuredContent)).toBeFalsy();
    expect(decodeJwt(structured(handed).access_token as string)).toMatchObject({
      sub: world.alice.id,
      client_id: world.w.clientId,
      act: { sub: world.w.clientId, act: { sub: world.a.clientId } },
    });
  });

  test("an NHI-AAL3 resource is reached only with the AAL3 agent's own workload token", async () => {
    // A authenticated at NHI-AAL1: neither on its own nor naming W3 does it reach the vault.
    const alone = await handOff(a, { task_id: taskId, sub_agent_id: world.a.clientId, resource: VAULT });
    expect(alone.isError).toBe(true);
    expect(refusalOf(alone)?.error).toBe('invalid_request');
    expect(refusalOf(alone)?.error_description).toMatch(/NHI-AAL3/);
    const named = await handOff(a, { task_id: taskId, sub_agent_id: world.w3, resource: VAULT });
    expect(refusalOf(named)).toMatchObject({ error: 'invalid_request', missing: { actor_token: expect.any(String) } });

    const handed = await handOff(a, {
      task_id: taskId,
      sub_agent_id: world.w3,
      resource: VAULT,
      actor_token: await world.w3Svid(`${tb.url}#actor`),
    });
    expect(handed.isError, JSON.stringify(handed.structuredContent)).toBeFalsy();
    expect(decodeJwt(structured(handed).access_token as string)).toMatchObject({
      aud: VAULT,
      scope: 'vault:read',
      client_id: world.w3,
      errand_aal: 'NHI-AAL3',
    });
  });
});

describe('DPoP-bound tokens at <issuer>/mcp (RFC 9449 §7)', () => {
  let key: ProofKey;
  let token: string;

  const whoami = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } };
  const proofFor = (htu: string, over: { key?: ProofKey } = {}) =>
    dpopProof(over.key ?? key, { iat: tb.clock.now(), htu, token });

  beforeAll(async () => {
    key = await proofKey();
    const [client, auth] = agentClient(tb, world.a);
    const res = await oauth.clientCredentialsGrantRequest(
      world.as,
      client,
      auth,
      new URLSearchParams({ resource: mcp, scope: ERRAND_SCOPES }),
      { ...insecure, DPoP: oauth.DPoP(client, key.pair) },
    );
    const tokens = await oauth.processClientCredentialsResponse(world.as, client, res);
    expect(tokens.token_type).toBe('dpop');
    token = tokens.access_token;
    expect(decodeJwt(token).cnf).toEqual({ jkt: key.jkt });
  });

  test('a bound token is refused as Bearer, and with the DPoP scheme without a valid fresh proof', async () => {
    const bearer = await rawMcp(tb, whoami, { authorization: `Bearer ${token}` });
    expect(bearer.status).toBe(401);
    expect(await bearer.json()).toMatchObject({ error: 'invalid_token' });
    expect(bearer.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token"/);

    const cases: Record<string, Record<string, string>> = {
      'no proof': {},
      'a proof by another key': { dpop: await proofFor(mcp, { key: await proofKey() }) },
      'a proof for the A2A endpoint': { dpop: await proofFor(`${tb.url}/a2a`) },
    };
    for (const [name, headers] of Object.entries(cases)) {
      const res = await rawMcp(tb, whoami, { authorization: `DPoP ${token}`, ...headers });
      expect(res.status, name).toBe(401);
      expect(await res.json(), name).toMatchObject({ error: 'invalid_dpop_proof' });
      expect(res.headers.get('www-authenticate'), name).toMatch(/^DPoP error="invalid_dpop_proof"/);
    }

    const proof = await proofFor(mcp);
    expect((await rawMcp(tb, whoami, { authorization: `DPoP ${token}`, dpop: proof })).status).toBe(200);
    // RFC 9449 §11.1: a proof is good once.
    const replayed = await rawMcp(tb, whoami, { authorization: `DPoP ${token}`, dpop: proof });
    expect(replayed.status).toBe(401);
    expect(await replayed.json()).toMatchObject({ error: 'invalid_dpop_proof' });
  });

  test('with a fresh proof per request the SDK clients work, and start_task binds the task token to the key', async () => {
    const fetchWithProof = dpopFetch(token, key, () => tb.clock.now());
    const modern = new Client(
      { name: 'errand-test-dpop', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    await modern.connect(new StreamableHTTPClientTransport(new URL(mcp), { fetch: fetchWithProof }));
    expect(await ok(modern, 'whoami')).toMatchObject({ client_id: world.a.clientId });
    const legacy = new LegacyClient({ name: 'errand-test-dpop-legacy', version: '1.0.0' });
    await legacy.connect(new LegacyTransport(new URL(mcp), { fetch: fetchWithProof }));
    expect(await ok(legacy, 'whoami')).toMatchObject({ client_id: world.a.clientId });

    const { delegationId } = await aliceDelegates(world.a, { scope: 'openid notes:read', resource: NOTES });
    const started = await ok(modern, 'start_task', { delegation_id: delegationId, resource: NOTES });
    // RFC 9449 §6.1: the token is bound to the key the caller proved.
    expect(decodeJwt(started.access_token as string).cnf).toEqual({ jkt: key.jkt });
    expect(await introspect(started.access_token as string)).toMatchObject({ active: true, cnf: { jkt: key.jkt } });
    await Promise.all([modern.close(), legacy.close()]);
  });
});

describe("tool grants at Errand's own MCP endpoint (RFC 9396 mcp_tool)", () => {
  test('a task token granted some of the tools calls them; any other is 403 insufficient_scope naming it', async () => {
    const { credential } = await aliceDelegates(world.a, {
      scope: 'openid errand:tasks errand:delegate',
      resource: mcp,
      authorization_details: JSON.stringify([
        { type: 'mcp_tool', locations: [mcp], actions: ['whoami', 'list_tasks'] },
      ]),
    });
    const task = await exchange(tb, world.as, world.a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: mcp,
    });
    const client = await modernClient(tb, task.access_token);
    const listed = await ok(client, 'list_tasks');
    expect((listed.tasks as { task_id: string }[]).map((t) => t.task_id)).toContain(task.task_id);

    const err = await client
      .callTool({ name: 'start_task', arguments: { delegation_id: 'dlg_x', resource: NOTES } })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(InsufficientScopeError);
    expect((err as InsufficientScopeError).errorDescription).toMatch(/start_task/);
    // The same answer below the client library: the status and the exact error code.
    const raw = await rawMcp(
      tb,
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'start_task', arguments: {} } },
      { authorization: `Bearer ${task.access_token}` },
    );
    expect(raw.status).toBe(403);
    expect(raw.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    expect(await raw.json()).toMatchObject({
      error: 'insufficient_scope',
      error_description: expect.stringMatching(/start_task/),
    });

    const { client: legacy } = await legacyClient(tb, task.access_token);
    expect(await ok(legacy, 'whoami')).toMatchObject({ client_id: world.a.clientId });
    const legacyErr = await legacy.callTool({ name: 'start_task', arguments: {} }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(legacyErr).toMatchObject({ code: 403, message: expect.stringMatching(/insufficient_scope.*start_task/) });
    await legacy.close();
    await client.close();
  });
});

describe('a public client never acts under a task (RFC 8693 §2.1)', () => {
  test('a hand-off naming a public client is refused: it cannot sign an actor token', async () => {
    const { delegationId } = await aliceDelegates(world.a, {
      scope: 'openid notes:read',
      resource: NOTES,
      max_depth: '1',
    });
    const a = await agentMcp(world.a);
    const taskId = (await ok(a, 'start_task', { delegation_id: delegationId, resource: NOTES })).task_id as string;
    const publicId = world.publicClient.client_id;
    const without = refusalOf(await handOff(a, { task_id: taskId, sub_agent_id: publicId }));
    expect(without).toMatchObject({ error: 'invalid_request', missing: { actor_token: expect.any(String) } });
    // No key is registered for it, so nothing it "signed" verifies.
    const pretend = await actorToken({ ...world.a, clientId: publicId }, tb.url);
    const withPretend = await handOff(a, { task_id: taskId, sub_agent_id: publicId, actor_token: pretend });
    expect(withPretend.isError).toBe(true);
    expect(refusalOf(withPretend)?.error).toBe('invalid_request');
    expect((await tb.broker.deps.tasks.listForAgent(publicId)).some((t) => t.parentTaskId === taskId)).toBe(false);
    await a.close();
  });

  test("a public client in a stored task's actor chain cannot end it, at /tasks/{id}/end or through MCP", async () => {
    const { delegationId } = await aliceDelegates(world.a, {
      scope: 'openid notes:read',
      resource: NOTES,
      max_depth: '1',
    });
    const a = await agentMcp(world.a);
    const rootId = (await ok(a, 'start_task', { delegation_id: delegationId, resource: NOTES })).task_id as string;
    const publicId = world.publicClient.client_id;
    const subId = await storeTask(tb, {
      delegationId,
      userId: world.alice.id,
      agentId: publicId,
      actorChain: [publicId, world.a.clientId],
      parent: (await tb.broker.deps.tasks.get(rootId))!,
    });

    const res = await postForm(`${tb.url}/tasks/${subId}/end`, { client_id: publicId, state: 'canceled' });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: 'not_found' });

    const token = await signInToken(tb, world.as, publicClientAuth(world.publicClient), world.alice, {
      resource: mcp,
      scope: ERRAND_SCOPES,
    });
    const p = await modernClient(tb, token);
    expect((await refused(p, 'end_task', { task_id: subId, state: 'canceled' })).error).toBe('not_found');
    expect((await tb.broker.deps.tasks.get(subId))?.state).toBe('working');
    await Promise.all([a.close(), p.close()]);
  });
});
