import type { AgentCard } from '@a2a-js/sdk';
import type { Client } from '@a2a-js/sdk/client';
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
} from '../../broker/test/delegation-fixtures.js';
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
} from '../../broker/test/door-fixtures.js';
import { dpopFetch, dpopProof, type ProofKey, proofKey } from '../../broker/test/dpop-fixtures.js';
import {
  actorToken,
  insecure,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from '../../broker/test/fixtures.js';
import { startWorkloadIssuer, type WorkloadIssuer } from '../../broker/test/workload-issuer.js';
import { agentToken } from '../../mcp-server/errand/test/mcp-fixtures.js';
import { a2aClient, expectRpcError, isTask, replyData, skillRequest, tokenArtifact } from './a2a-fixtures.js';

/**
 * Errand's A2A door holds the token endpoint's rules, as its MCP door does: a token reaches only
 * what its client and the person it speaks for hold, a hand-off never gives more than the task holds
 * and needs the acting agent's own proof, DPoP-bound tokens need their proof, and tool grants name
 * the skills a token may use.
 */

let tb: TestBroker;
let wi: WorkloadIssuer;
let world: DoorWorld;
let a2a: string;
let introspect: Awaited<ReturnType<typeof introspector>>;

beforeAll(async () => {
  tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true', ERRAND_CIBA_INTERVAL: '1' });
  wi = await startWorkloadIssuer({ now: () => tb.clock.now() });
  world = await agentDoorWorld(tb, wi);
  a2a = `${tb.url}/a2a`;
  introspect = await introspector(tb, world.api, [NOTES, FILES, VAULT]);
});
afterAll(async () => {
  await wi?.close();
  await tb?.close();
});

/** Sends a skill call; returns the reply's data (a refusal or a result), or the A2A task it started. */
async function skill(client: Client, name: string, args: Record<string, unknown>, taskId = '') {
  return client.sendMessage(skillRequest(name, args, taskId));
}

/** A skill call that must be answered with a reply message; returns its data. */
async function reply(client: Client, name: string, args: Record<string, unknown>) {
  return replyData(await skill(client, name, args));
}

/** `issue_task_token` for a new task: the A2A task it started, and its token. */
async function startTask(client: Client, args: Record<string, unknown>) {
  const started = await skill(client, 'issue_task_token', args);
  if (!isTask(started)) throw new Error(`expected a task: ${JSON.stringify(replyData(started))}`);
  return { a2aTask: started, ...tokenArtifact(started) };
}

/** `delegate_to_subagent`, as an agent calls it. */
function handOff(client: Client, args: Record<string, unknown>) {
  return reply(client, 'delegate_to_subagent', args);
}

/** An A2A client for `agent` acting as itself (client_credentials for the endpoint). */
async function agentA2a(agent: TestAgent, scope = ERRAND_SCOPES): Promise<Client> {
  return a2aClient(tb, await agentToken(tb, world.as, agent, a2a, scope));
}

function aliceDelegates(agent: TestAgent, ask: Record<string, string | string[]>) {
  return delegateViaCiba(tb, world.as, agent, world.alice, ask);
}

/** What the extended card says about the caller's delegations. */
async function callerView(client: Client) {
  const card = (await client.getAgentCard()) as AgentCard;
  const caller = card.capabilities?.extensions.find((e) => e.uri === 'urn:errand:a2a:caller:v1');
  return caller?.params as {
    client_id: string;
    username?: string;
    delegations: Record<string, number>;
    resources: unknown[];
  };
}

describe('people sharing an A2A client reach only their own delegations and tasks', () => {
  test('a public client two people sign in to cannot ask either of them for a delegation', async () => {
    for (const person of [world.alice, world.mallory]) {
      const token = await signInToken(tb, world.as, publicClientAuth(world.publicClient), person, {
        resource: a2a,
        scope: ERRAND_SCOPES,
      });
      const client = await a2aClient(tb, token);
      // RFC 8693 §2.1 policy: anyone can claim a public client's id, so it holds no delegation.
      const asked = await reply(client, 'request_delegation', { resources: [NOTES], scopes: ['notes:read'] });
      expect(asked.error).toBe('unauthorized_client');
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
      ['issue_task_token', { delegation_id: delegationId, resource: NOTES }],
      ['issue_task_token', { task_id: taskId }],
      ['delegate_to_subagent', { task_id: taskId, sub_agent_id: publicId }],
    ];
    for (const person of [world.alice, world.mallory]) {
      const token = await signInToken(tb, world.as, publicClientAuth(world.publicClient), person, {
        resource: a2a,
        scope: ERRAND_SCOPES,
      });
      const client = await a2aClient(tb, token);
      for (const [name, args] of calls) {
        expect((await reply(client, name, args)).error, `${person.username} ${name}`).toBe('unauthorized_client');
      }
    }
    // Nothing was issued under it: the stored task is still the only one.
    expect((await tb.broker.deps.tasks.listForAgent(publicId)).map((t) => t.id)).toEqual([taskId]);
  });

  test("on a confidential client two people share, Mallory's token reaches none of Alice's delegations or tasks", async () => {
    const auth = sharedClientAuth(tb, world.shared);
    const alice = await a2aClient(
      tb,
      await signInToken(tb, world.as, auth, world.alice, { resource: a2a, scope: ERRAND_SCOPES }),
    );
    const mallory = await a2aClient(
      tb,
      await signInToken(tb, world.as, auth, world.mallory, { resource: a2a, scope: ERRAND_SCOPES }),
    );

    const asked = await reply(alice, 'request_delegation', {
      resources: [NOTES],
      scopes: ['notes:read', 'notes:write'],
      max_depth: 1,
    });
    const delegationId = asked.delegation_id as string;
    const me = await userApi(tb, world.alice);
    expect((await me.call('POST', `/api/me/delegations/${delegationId}/approve`, {})).status).toBe(200);
    const started = await startTask(alice, { delegation_id: delegationId, resource: NOTES });
    expect(decodeJwt(started.access_token)).toMatchObject({ sub: world.alice.id, client_id: world.shared.clientId });

    expect(await callerView(mallory)).toMatchObject({
      username: world.mallory.username,
      delegations: {},
      resources: [],
    });
    const attempts: [string, Record<string, unknown>, string][] = [
      // A token speaks for one person: asking in another's name is refused.
      [
        'request_delegation',
        { user: world.alice.username, resources: [NOTES], scopes: ['notes:read'] },
        'invalid_request',
      ],
      ['issue_task_token', { delegation_id: delegationId, resource: NOTES }, 'no_delegation'],
      ['issue_task_token', { task_id: started.task_id }, 'no_task'],
      ['delegate_to_subagent', { task_id: started.task_id, sub_agent_id: world.shared.clientId }, 'no_task'],
      ['end_task', { task_id: started.task_id, state: 'canceled' }, 'not_found'],
    ];
    for (const [name, args, error] of attempts) {
      expect((await reply(mallory, name, args)).error, name).toBe(error);
    }
    // A2A §13.1: another caller's A2A task is not found, nor can a message go into it.
    await expectRpcError(mallory.getTask({ tenant: '', id: started.a2aTask.id }), -32001);
    await expectRpcError(mallory.cancelTask({ tenant: '', id: started.a2aTask.id, metadata: undefined }), -32001);
    await expectRpcError(skill(mallory, 'end_task', { state: 'canceled' }, started.a2aTask.id), -32001);
    await expectRpcError(skill(mallory, 'issue_task_token', {}, started.a2aTask.id), -32001);
    expect((await tb.broker.deps.tasks.get(started.task_id))?.state).toBe('working');
    expect((await introspect(started.access_token)).active).toBe(true);

    // Alice's own calls work, and every token speaks for her.
    expect(await callerView(alice)).toMatchObject({
      username: world.alice.username,
      delegations: { active: 1 },
      resources: [{ resource: NOTES, scopes: ['notes:read', 'notes:write'] }],
    });
    const renewed = await reply(alice, 'issue_task_token', { task_id: started.task_id });
    expect(decodeJwt(renewed.access_token as string).sub).toBe(world.alice.id);
    expect(await reply(alice, 'end_task', { task_id: started.task_id, state: 'completed' })).toMatchObject({
      state: 'completed',
    });
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
    const b = await agentA2a(world.b, 'errand:tasks');
    const self = { task_id: sub.task_id, sub_agent_id: world.b.clientId };

    expect((await handOff(b, { ...self, resource: NOTES, scope: 'notes:read notes:write' })).error).toBe(
      'invalid_scope',
    );
    expect((await handOff(b, { ...self, resource: FILES })).error).toBe('invalid_target');
    const same = await handOff(b, self);
    const claims = decodeJwt(same.access_token as string);
    expect(claims).toMatchObject({ aud: NOTES, scope: 'notes:read' });
    expect(claims.exp).toBeLessThanOrEqual(decodeJwt(sub.access_token).exp!);
    expect(claims.authorization_details).toEqual([{ type: 'mcp_tool', locations: [NOTES], actions: ['list_notes'] }]);
    expect(await introspect(same.access_token as string)).toMatchObject({ active: true, scope: 'notes:read' });

    // A sub-task's tokens come from the task above it, not from the delegation.
    const renewed = await reply(b, 'issue_task_token', { task_id: sub.task_id });
    expect(renewed).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/sub-task/) });
  });
});

describe('a hand-off to another agent needs that agent (RFC 8693 §2.1 actor_token)', () => {
  let taskId: string;
  let a: Client;

  beforeAll(async () => {
    const { delegationId } = await aliceDelegates(world.a, {
      scope: 'openid notes:read notes:write vault:read',
      resource: [NOTES, VAULT],
      max_depth: '1',
    });
    a = await agentA2a(world.a);
    ({ task_id: taskId } = await startTask(a, { delegation_id: delegationId, resource: NOTES, scope: 'notes:read' }));
  });

  test("the sub-agent's own actor token is required; one the caller signed in its name is refused", async () => {
    const toW = { task_id: taskId, sub_agent_id: world.w.clientId, resource: NOTES };
    expect(await handOff(a, toW)).toMatchObject({
      error: 'invalid_request',
      missing: { actor_token: expect.any(String) },
    });
    // A's key, W's name.
    const forged = await actorToken({ ...world.w, privateKey: world.a.privateKey, kid: world.a.kid }, tb.url);
    const withForged = await handOff(a, { ...toW, actor_token: forged });
    expect(withForged.error).toBe('invalid_request');
    expect(withForged.access_token).toBeUndefined();
    // W's real actor token, naming another sub-agent.
    const mismatch = await handOff(a, {
      ...toW,
      sub_agent_id: world.b.clientId,
      actor_token: await actorToken(world.w, tb.url),
    });
    expect(mismatch).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringMatching(/sub_agent_id/),
    });

    const handed = await handOff(a, { ...toW, actor_token: await actorToken(world.w, tb.url) });
    expect(handed.sub_agent_id).toBe(world.w.clientId);
    expect(decodeJwt(handed.access_token as string)).toMatchObject({
      sub: world.alice.id,
      client_id: world.w.clientId,
      act: { sub: world.w.clientId, act: { sub: world.a.clientId } },
    });
  });

  test("an NHI-AAL3 resource is reached only with the AAL3 agent's own workload token", async () => {
    // A authenticated at NHI-AAL1: neither on its own nor naming W3 does it reach the vault.
    const alone = await handOff(a, { task_id: taskId, sub_agent_id: world.a.clientId, resource: VAULT });
    expect(alone).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/NHI-AAL3/) });
    const toW3 = { task_id: taskId, sub_agent_id: world.w3, resource: VAULT };
    expect(await handOff(a, toW3)).toMatchObject({
      error: 'invalid_request',
      missing: { actor_token: expect.any(String) },
    });

    const handed = await handOff(a, { ...toW3, actor_token: await world.w3Svid(`${tb.url}#actor`) });
    expect(decodeJwt(handed.access_token as string)).toMatchObject({
      aud: VAULT,
      scope: 'vault:read',
      client_id: world.w3,
      errand_aal: 'NHI-AAL3',
    });
  });
});

describe('DPoP-bound tokens at <issuer>/a2a (RFC 9449 §7)', () => {
  let key: ProofKey;
  let token: string;

  const proofFor = (htu: string, over: { key?: ProofKey } = {}) =>
    dpopProof(over.key ?? key, { iat: tb.clock.now(), htu, token });
  /** A raw GetExtendedAgentCard call with the given headers. */
  const cardCall = (headers: Record<string, string>) =>
    fetch(a2a, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'a2a-version': '1.0', ...headers },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'GetExtendedAgentCard', params: {} }),
    });

  beforeAll(async () => {
    key = await proofKey();
    const [client, auth] = agentClient(tb, world.a);
    const res = await oauth.clientCredentialsGrantRequest(
      world.as,
      client,
      auth,
      new URLSearchParams({ resource: a2a, scope: ERRAND_SCOPES }),
      { ...insecure, DPoP: oauth.DPoP(client, key.pair) },
    );
    const tokens = await oauth.processClientCredentialsResponse(world.as, client, res);
    expect(tokens.token_type).toBe('dpop');
    token = tokens.access_token;
    expect(decodeJwt(token).cnf).toEqual({ jkt: key.jkt });
  });

  test('a bound token is refused as Bearer, and with the DPoP scheme without a valid fresh proof', async () => {
    const bearer = await cardCall({ authorization: `Bearer ${token}` });
    expect(bearer.status).toBe(401);
    expect(await bearer.json()).toMatchObject({ error: 'invalid_token' });
    expect(bearer.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token"/);

    const cases: Record<string, Record<string, string>> = {
      'no proof': {},
      'a proof by another key': { dpop: await proofFor(a2a, { key: await proofKey() }) },
      'a proof for the MCP endpoint': { dpop: await proofFor(`${tb.url}/mcp`) },
    };
    for (const [name, headers] of Object.entries(cases)) {
      const res = await cardCall({ authorization: `DPoP ${token}`, ...headers });
      expect(res.status, name).toBe(401);
      expect(await res.json(), name).toMatchObject({ error: 'invalid_dpop_proof' });
      expect(res.headers.get('www-authenticate'), name).toMatch(/^DPoP error="invalid_dpop_proof"/);
    }

    const proof = await proofFor(a2a);
    expect((await cardCall({ authorization: `DPoP ${token}`, dpop: proof })).status).toBe(200);
    // RFC 9449 §11.1: a proof is good once.
    const replayed = await cardCall({ authorization: `DPoP ${token}`, dpop: proof });
    expect(replayed.status).toBe(401);
    expect(await replayed.json()).toMatchObject({ error: 'invalid_dpop_proof' });
  });

  test('with a fresh proof per request the SDK client works, and a new task token is bound to the key', async () => {
    const client = await a2aClient(
      tb,
      dpopFetch(token, key, () => tb.clock.now()),
    );
    expect(await callerView(client)).toMatchObject({ client_id: world.a.clientId });
    const { delegationId } = await aliceDelegates(world.a, { scope: 'openid notes:read', resource: NOTES });
    const started = await startTask(client, { delegation_id: delegationId, resource: NOTES });
    // RFC 9449 §6.1: the token is bound to the key the caller proved.
    expect(decodeJwt(started.access_token).cnf).toEqual({ jkt: key.jkt });
    expect(await introspect(started.access_token)).toMatchObject({ active: true, cnf: { jkt: key.jkt } });
  });
});

describe("skill grants at Errand's own A2A endpoint (RFC 9396 mcp_tool)", () => {
  test('a task token granted some of the skills uses them; any other is refused with insufficient_scope', async () => {
    // Agent B: the pending delegation this test leaves behind is not one another test collects.
    const { credential } = await delegateViaCiba(tb, world.as, world.b, world.alice, {
      scope: 'openid errand:tasks errand:delegate',
      resource: a2a,
      authorization_details: JSON.stringify([{ type: 'mcp_tool', locations: [a2a], actions: ['request_delegation'] }]),
    });
    const task = await exchange(tb, world.as, world.b, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: a2a,
    });
    const client = await a2aClient(tb, task.access_token);
    const asked = await reply(client, 'request_delegation', { resources: [NOTES], scopes: ['notes:read'] });
    expect(asked).toMatchObject({ status: 'pending', delegation_id: expect.any(String) });

    const refused = await reply(client, 'issue_task_token', { delegation_id: asked.delegation_id, resource: NOTES });
    expect(refused).toMatchObject({
      error: 'insufficient_scope',
      missing: { authorization_details: { type: 'mcp_tool', actions: ['issue_task_token'] } },
    });
  });
});

describe('a public client never acts under a task (RFC 8693 §2.1)', () => {
  test('a hand-off naming a public client is refused: it cannot sign an actor token', async () => {
    const { delegationId } = await aliceDelegates(world.a, {
      scope: 'openid notes:read',
      resource: NOTES,
      max_depth: '1',
    });
    const a = await agentA2a(world.a);
    const { task_id: taskId } = await startTask(a, { delegation_id: delegationId, resource: NOTES });
    const publicId = world.publicClient.client_id;
    expect(await handOff(a, { task_id: taskId, sub_agent_id: publicId })).toMatchObject({
      error: 'invalid_request',
      missing: { actor_token: expect.any(String) },
    });
    // No key is registered for it, so nothing it "signed" verifies.
    const pretend = await actorToken({ ...world.a, clientId: publicId }, tb.url);
    expect((await handOff(a, { task_id: taskId, sub_agent_id: publicId, actor_token: pretend })).error).toBe(
      'invalid_request',
    );
    expect((await tb.broker.deps.tasks.listForAgent(publicId)).some((t) => t.parentTaskId === taskId)).toBe(false);
  });

  test("a public client in a stored task's actor chain cannot end it, at /tasks/{id}/end or through A2A", async () => {
    const { delegationId } = await aliceDelegates(world.a, {
      scope: 'openid notes:read',
      resource: NOTES,
      max_depth: '1',
    });
    const a = await agentA2a(world.a);
    const { task_id: rootId } = await startTask(a, { delegation_id: delegationId, resource: NOTES });
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

    const p = await a2aClient(
      tb,
      await signInToken(tb, world.as, publicClientAuth(world.publicClient), world.alice, {
        resource: a2a,
        scope: ERRAND_SCOPES,
      }),
    );
    expect((await reply(p, 'end_task', { task_id: subId, state: 'canceled' })).error).toBe('not_found');
    expect((await tb.broker.deps.tasks.get(subId))?.state).toBe('working');
  });
});
