import { exportJWK, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { newId } from '../tokens/random.js';
import {
  type Api,
  agentClient,
  delegateViaCiba,
  exchange,
  introspector,
  TT_JWT,
  userApi,
} from './delegation-fixtures.js';
import {
  addAgent,
  addResource,
  adminApi,
  createUser,
  discover,
  insecure,
  startBroker,
  type TestBroker,
} from './fixtures.js';

/**
 * The admin API's client lifecycle after registration (edit, replace keys, delete) and the
 * administrator's view of every task and delegation.
 */

const NOTES = 'https://notes.example.test/mcp';

let tb: TestBroker;
let api: Api;
let as: oauth.AuthorizationServer;
let introspect: (token: string) => Promise<{ active: boolean }>;

beforeAll(async () => {
  tb = await startBroker();
  api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  as = await discover(tb);
  introspect = await introspector(tb, api, [NOTES]);
});
afterAll(() => tb.close());

const ccAgent = (name: string) => addAgent(api, { name, grant_types: ['client_credentials'], scope: ['notes:read'] });

async function clientCredentials(agent: Parameters<typeof agentClient>[1]) {
  const [client, auth] = agentClient(tb, agent);
  return oauth.clientCredentialsGrantRequest(
    as,
    client,
    auth,
    new URLSearchParams({ resource: NOTES, scope: 'notes:read' }),
    insecure,
  );
}

async function auditOf(type: string, clientId: string) {
  const res = await api.call('GET', `/api/admin/audit?type=${type}&client_id=${clientId}`);
  return ((await res.json()) as { events: { details: Record<string, unknown>; user_id: string }[] }).events;
}

describe('who may call', () => {
  test('a person who is not an administrator gets 403 forbidden on every new endpoint', async () => {
    const agent = await ccAgent('guarded');
    const me = await userApi(tb, await createUser(tb));
    for (const [method, path, body] of [
      ['DELETE', `/api/admin/clients/${agent.clientId}`],
      ['PUT', `/api/admin/clients/${agent.clientId}/keys`, { jwks_uri: 'https://k.example.test/jwks' }],
      ['PATCH', `/api/admin/clients/${agent.clientId}`, { name: 'taken over' }],
      ['GET', '/api/admin/tasks'],
      ['GET', '/api/admin/delegations'],
    ] as const) {
      const res = await me.call(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(await res.json()).toMatchObject({ error: 'forbidden' });
    }
    expect(await tb.broker.deps.clients.get(agent.clientId)).toMatchObject({ name: 'guarded' });
  });

  test('without the CSRF token, delete and key replacement are refused and change nothing', async () => {
    const agent = await ccAgent('csrf target');
    for (const [method, path, body] of [
      ['DELETE', `/api/admin/clients/${agent.clientId}`, undefined],
      ['PUT', `/api/admin/clients/${agent.clientId}/keys`, { jwks_uri: 'https://k.example.test/jwks' }],
    ] as const) {
      const res = await api.browser.fetch(`${tb.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: 'forbidden' });
    }
    const still = await tb.broker.deps.clients.get(agent.clientId);
    expect(still?.jwksUri).toBeNull();
    expect((await clientCredentials(agent)).status).toBe(200);
  });

  test('an unknown client id is 404 not_found', async () => {
    for (const [method, path, body] of [
      ['DELETE', '/api/admin/clients/cli_nope', undefined],
      ['PUT', '/api/admin/clients/cli_nope/keys', { jwks_uri: 'https://k.example.test/jwks' }],
      ['PATCH', '/api/admin/clients/cli_nope', { name: 'x' }],
    ] as const) {
      const res = await api.call(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(await res.json()).toMatchObject({ error: 'not_found' });
    }
  });
});

describe('editing a client', () => {
  test('name, owner, scopes and grant types change and are audited as client.updated', async () => {
    const agent = await ccAgent('before');
    const owner = await createUser(tb);
    const res = await api.call('PATCH', `/api/admin/clients/${agent.clientId}`, {
      name: 'after',
      owner_id: owner.id,
      scope: ['notes:read', 'notes:write'],
      grant_types: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      name: 'after',
      owner_id: owner.id,
      scope: 'notes:read notes:write',
      grant_types: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
    });
    const [event] = await auditOf('client.updated', agent.clientId);
    expect(event?.details).toMatchObject({ fields: 'owner_id name scope grant_types' });
    expect(event?.details.address).toBeTruthy();
  });

  test('bad input is 400 with a description that names the field', async () => {
    const agent = await ccAgent('bad input');
    const cases: [unknown, string, RegExp][] = [
      [{ grant_types: ['password'] }, 'invalid_request', /^grant_types/],
      [{ grant_types: ['authorization_code'] }, 'invalid_redirect_uri', /redirect URI/],
      [{ owner_id: 'usr_nobody' }, 'invalid_request', /owner_id: no user/],
      [{ resources: ['not a url'] }, 'invalid_client_metadata', /resources: "not a url"/],
      [{ scope: ['bad scope'] }, 'invalid_scope', /^scope/],
    ];
    for (const [body, error, description] of cases) {
      const res = await api.call('PATCH', `/api/admin/clients/${agent.clientId}`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const json = (await res.json()) as { error: string; error_description: string };
      expect(json.error).toBe(error);
      expect(json.error_description).toMatch(description);
    }
    expect(await tb.broker.deps.clients.get(agent.clientId)).toMatchObject({ name: 'bad input' });
  });
});

describe('replacing keys', () => {
  test('an assertion signed with the old key is refused, one signed with the new key accepted', async () => {
    const agent = await ccAgent('rotating');
    expect((await clientCredentials(agent)).status).toBe(200);

    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const kid = newId('k');
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    const res = await api.call('PUT', `/api/admin/clients/${agent.clientId}/keys`, { jwks: { keys: [publicJwk] } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { jwks: { keys: { kid: string }[] } }).jwks.keys.map((k) => k.kid)).toEqual([kid]);

    const old = await clientCredentials(agent);
    expect(old.status).toBe(401);
    expect(await old.json()).toMatchObject({ error: 'invalid_client' });
    const fresh = await clientCredentials({ ...agent, privateKey, kid, publicJwk });
    expect(fresh.status).toBe(200);

    const [event] = await auditOf('client.keys_replaced', agent.clientId);
    expect(event?.details).toMatchObject({ before: agent.kid, after: kid });
  });

  test('bad key input is 400 with a description; the old key keeps working', async () => {
    const agent = await ccAgent('kept');
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const cases: [unknown, string, RegExp][] = [
      [{}, 'invalid_request', /jwks or jwks_uri/],
      [{ jwks: { keys: [agent.publicJwk] }, jwks_uri: 'https://k.example.test/j' }, 'invalid_request', /exactly one/],
      [{ jwks: { keys: [privateJwk] } }, 'invalid_client_metadata', /public keys only/],
      [{ jwks_uri: 'not a url' }, 'invalid_request', /^jwks_uri/],
    ];
    for (const [body, error, description] of cases) {
      const res = await api.call('PUT', `/api/admin/clients/${agent.clientId}/keys`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const json = (await res.json()) as { error: string; error_description: string };
      expect(json.error).toBe(error);
      expect(json.error_description).toMatch(description);
    }
    expect((await clientCredentials(agent)).status).toBe(200);
  });

  test('a workload_federation agent has no keys to replace', async () => {
    const created = await api.call('POST', '/api/admin/clients', {
      kind: 'agent',
      name: 'workload',
      token_endpoint_auth_method: 'workload_federation',
    });
    const { client_id } = (await created.json()) as { client_id: string };
    const res = await api.call('PUT', `/api/admin/clients/${client_id}/keys`, {
      jwks_uri: 'https://k.example.test/jwks',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_request', error_description: /workload_federation/ });
  });
});

describe('deleting a client', () => {
  test('its tokens die at introspection, its tasks end, its delegations are revoked; audited', async () => {
    const agent = await addAgent(api, { name: 'doomed', grant_types: undefined });
    const user = await createUser(tb);
    const { credential, delegationId } = await delegateViaCiba(tb, as, agent, user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    const task = await exchange(tb, as, agent, { subject_token: credential, subject_token_type: TT_JWT });
    expect(await introspect(task.access_token)).toMatchObject({ active: true });

    const res = await api.call('DELETE', `/api/admin/clients/${agent.clientId}`);
    expect(res.status).toBe(204);

    expect(await introspect(task.access_token)).toEqual({ active: false });
    expect(await introspect(credential)).toEqual({ active: false });
    expect((await api.call('GET', `/api/admin/clients/${agent.clientId}`)).status).toBe(404);
    expect(await tb.broker.deps.tasks.get(task.task_id)).toMatchObject({
      state: 'canceled',
      endReason: 'agent_deleted',
    });
    expect(await tb.broker.deps.delegations.get(delegationId)).toMatchObject({ status: 'revoked' });
    const [event] = await auditOf('client.deleted', agent.clientId);
    expect(event?.details).toMatchObject({ name: 'doomed', kind: 'agent' });
    expect(event?.details.address).toBeTruthy();
    expect(event?.user_id).toBe(api.admin.id);
    // A second delete finds nothing.
    expect((await api.call('DELETE', `/api/admin/clients/${agent.clientId}`)).status).toBe(404);
  });

  test('an agent a trusted issuer maps workloads to is refused with 409 until the rule goes', async () => {
    const created = await api.call('POST', '/api/admin/clients', {
      kind: 'agent',
      name: 'vouched',
      token_endpoint_auth_method: 'workload_federation',
    });
    const { client_id } = (await created.json()) as { client_id: string };
    const issuer = await api.call('POST', '/api/admin/trusted-issuers', {
      kind: 'ci',
      name: 'CI',
      issuer: 'https://ci.example.test',
      jwks_uri: 'https://ci.example.test/jwks',
      rules: [{ match: { sub: 'repo:x' }, agent_id: client_id }],
    });
    expect(issuer.status).toBe(201);
    const res = await api.call('DELETE', `/api/admin/clients/${client_id}`);
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ error: 'conflict', error_description: /trusted issuer "CI"/ });
    const { id } = (await issuer.json()) as { id: string };
    expect((await api.call('DELETE', `/api/admin/trusted-issuers/${id}`)).status).toBe(204);
    expect((await api.call('DELETE', `/api/admin/clients/${client_id}`)).status).toBe(204);
  });
});

describe('every task and delegation', () => {
  test('listed across people with names, filtered by user, agent and state', async () => {
    const agent = await addAgent(api, { name: 'lister', grant_types: undefined });
    const alice = await createUser(tb);
    const bob = await createUser(tb);
    const a = await delegateViaCiba(tb, as, agent, alice, { scope: 'openid notes:read', resource: NOTES });
    const b = await delegateViaCiba(tb, as, agent, bob, { scope: 'openid notes:read', resource: NOTES });
    const taskA = await exchange(tb, as, agent, { subject_token: a.credential, subject_token_type: TT_JWT });
    await exchange(tb, as, agent, { subject_token: b.credential, subject_token_type: TT_JWT });

    const all = await api.call('GET', `/api/admin/tasks?agent_id=${agent.clientId}`);
    expect(all.status).toBe(200);
    const { tasks } = (await all.json()) as { tasks: { task_id: string; user_name: string; agent_name: string }[] };
    expect(tasks.map((t) => t.user_name).sort()).toEqual([alice.username, bob.username].sort());
    expect(tasks.every((t) => t.agent_name === 'lister')).toBe(true);

    const onlyAlice = (await (
      await api.call('GET', `/api/admin/tasks?agent_id=${agent.clientId}&user_id=${alice.id}`)
    ).json()) as { tasks: { task_id: string }[] };
    expect(onlyAlice.tasks.map((t) => t.task_id)).toEqual([taskA.task_id]);

    expect((await api.call('POST', `/api/admin/tasks/${taskA.task_id}/end`)).status).toBe(200);
    const ended = (await (await api.call('GET', `/api/admin/tasks?agent_id=${agent.clientId}&state=ended`)).json()) as {
      tasks: { task_id: string; state: string }[];
    };
    expect(ended.tasks).toEqual([expect.objectContaining({ task_id: taskA.task_id, state: 'canceled' })]);

    const dl = (await (
      await api.call('GET', `/api/admin/delegations?agent_id=${agent.clientId}&status=active`)
    ).json()) as { delegations: { delegation_id: string; user_name: string }[] };
    expect(dl.delegations.map((d) => d.delegation_id).sort()).toEqual([a.delegationId, b.delegationId].sort());
    expect(dl.delegations.map((d) => d.user_name).sort()).toEqual([alice.username, bob.username].sort());
  });

  test('a bad filter is 400 with a description', async () => {
    for (const [path, description] of [
      ['/api/admin/tasks?state=sleeping', /^state/],
      ['/api/admin/tasks?limit=0', /^limit/],
      ['/api/admin/delegations?status=maybe', /^status/],
      ['/api/admin/delegations?colour=red', /colour/],
    ] as const) {
      const res = await api.call('GET', path);
      expect(res.status, path).toBe(400);
      const json = (await res.json()) as { error: string; error_description: string };
      expect(json.error).toBe('invalid_request');
      expect(json.error_description).toMatch(description);
    }
  });
});
