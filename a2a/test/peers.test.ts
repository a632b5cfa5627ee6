import { Role, type Task, TaskState } from '@a2a-js/sdk';
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { followPeerTask, linkPeerTask, peerTaskDeps } from '../../broker/services/peers/peer-tasks.js';
import { delegateViaCiba, exchange, TT_JWT, userApi } from '../../broker/test/delegation-fixtures.js';
import {
  addAgent,
  adminApi,
  createUser,
  discover,
  freePort,
  hiddenInput,
  startBroker,
  type TestBroker,
} from '../../broker/test/fixtures.js';
import { newId } from '../../broker/tokens/random.js';
import { agentToken, ERRAND_SCOPES } from '../../mcp-server/errand/test/mcp-fixtures.js';
import { type PeerAgent, startPeerAgent } from './peer-agent.js';

let tb: TestBroker;
let api: Awaited<ReturnType<typeof adminApi>>;
let peer: PeerAgent;

interface PeerView {
  peer_id: string;
  card_url: string;
  name: string;
  endpoint: string;
  signature_verified: boolean;
  signature_kid: string | null;
  risk: string | null;
  skills: { id: string; scope: string | null }[];
  security_schemes: Record<string, unknown>;
  security_requirements: Record<string, string[]>[];
  scopes: string[];
}

beforeAll(async () => {
  // The SDK logs each signature that fails to verify; the refusals are asserted below.
  vi.spyOn(console, 'debug').mockImplementation(() => {});
  // Loopback targets are allowed only here: the peer runs on 127.0.0.1.
  tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true', ERRAND_STATUS_LIST_TTL: '60' });
  api = await adminApi(tb);
  const port = await freePort();
  // The peer is a resource_server client at Errand, for the revocation push channel.
  const rs = await addAgent(api, {
    kind: 'resource_server',
    name: 'peer agent',
    resources: [`http://127.0.0.1:${port}/a2a`],
    grant_types: ['client_credentials'],
  });
  peer = await startPeerAgent({
    port,
    issuer: tb.url,
    push: { clientId: rs.clientId, privateKey: rs.privateKey, kid: rs.kid },
  });
  await peer.guard.connect();
});
afterAll(async () => {
  await peer?.close();
  await tb?.close();
});

async function register(broker: { call: typeof api.call }, cardUrl: string) {
  const res = await broker.call('POST', '/api/admin/peers', { card_url: cardUrl });
  return { res, body: (await res.json()) as PeerView & { error?: string; error_description?: string } };
}

/** An A2A SDK client for the peer presenting a bearer token. */
async function peerClient(token: string) {
  const authFetch: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${token}`);
    return fetch(input, { ...init, headers });
  };
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl: authFetch })],
    }),
  );
  return factory.createFromUrl(peer.cardUrl, '');
}

const userMessage = (text: string) => ({
  messageId: newId('msg'),
  contextId: '',
  taskId: '',
  role: Role.ROLE_USER,
  parts: [{ content: { $case: 'text' as const, value: text }, metadata: undefined, filename: '', mediaType: '' }],
  metadata: undefined,
  extensions: [],
  referenceTaskIds: [],
});

/** A raw JSON-RPC GetTask, to look at the HTTP status the guard answers with. */
function rawGetTask(token: string, id: string) {
  return fetch(peer.endpoint, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'a2a-version': '1.0' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id } }),
  });
}

describe('registering an A2A peer from its Agent Card', () => {
  test('a signed card registers the peer and its endpoint as a resource; again is idempotent', async () => {
    const { res, body } = await register(api, peer.cardUrl);
    expect(res.status).toBe(201);
    expect(body).toMatchObject({
      name: 'Peer test agent',
      card_url: peer.cardUrl,
      endpoint: peer.endpoint,
      signature_verified: true,
      signature_kid: peer.kid,
      risk: null,
      scopes: ['a2a:echo', 'a2a:invoke'],
      security_requirements: [{ errand: ['a2a:invoke'] }],
    });
    expect(body.skills).toEqual([expect.objectContaining({ id: 'echo', scope: 'a2a:echo' })]);
    expect(Object.keys(body.security_schemes)).toEqual(['errand']);

    const resources = (await (await api.call('GET', '/api/admin/resources')).json()) as {
      resources: { url: string; scopes: string[] }[];
    };
    expect(resources.resources.find((r) => r.url === peer.endpoint)?.scopes).toEqual(['a2a:echo', 'a2a:invoke']);

    const again = await register(api, peer.cardUrl);
    expect(again.res.status).toBe(200);
    expect(again.body.peer_id).toBe(body.peer_id);
    const refreshed = await api.call('POST', `/api/admin/peers/${body.peer_id}/refresh`);
    expect(refreshed.status).toBe(200);
    const list = (await (await api.call('GET', '/api/admin/peers')).json()) as { peers: PeerView[] };
    expect(list.peers.filter((p) => p.card_url === peer.cardUrl)).toHaveLength(1);
  });

  test('an unsigned card is accepted but recorded, and shown, as a risk', async () => {
    const { res, body } = await register(api, peer.unsignedCardUrl);
    expect(res.status).toBe(201);
    expect(body).toMatchObject({ signature_verified: false, signature_kid: null, risk: 'unsigned_card' });
    const page = await api.browser.fetch(`${tb.url}/admin/peers`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Unsigned agent');
    expect(html).toContain('signature verified');
    expect(html).toMatch(/badge risk">unsigned</);
  });

  test('a card altered after signing is refused and nothing is stored', async () => {
    const { res, body } = await register(api, peer.tamperedCardUrl);
    expect(res.status).toBe(400);
    expect(body.error).toBe('invalid_request');
    expect(body.error_description).toContain('signature does not verify');
    const list = (await (await api.call('GET', '/api/admin/peers')).json()) as { peers: PeerView[] };
    expect(list.peers.some((p) => p.card_url === peer.tamperedCardUrl)).toBe(false);
    const resources = (await (await api.call('GET', '/api/admin/resources')).json()) as {
      resources: { url: string }[];
    };
    expect(resources.resources.some((r) => r.url === peer.tamperedEndpoint)).toBe(false);
  });

  test('a signed peer cannot silently become unsigned: the refresh is refused, audited, the stored card kept', async () => {
    peer.flip('signed');
    const { res, body } = await register(api, peer.flipCardUrl);
    expect(res.status).toBe(201);
    expect(body).toMatchObject({ signature_verified: true, signature_kid: peer.kid });
    const refresh = (extra?: unknown) => api.call('POST', `/api/admin/peers/${body.peer_id}/refresh`, extra);
    const stored = async () => (await (await api.call('GET', `/api/admin/peers/${body.peer_id}`)).json()) as PeerView;

    peer.flip('unsigned');
    const downgrade = await refresh();
    expect(downgrade.status).toBe(409);
    const refused = (await downgrade.json()) as { error: string; error_description: string };
    expect(refused.error).toBe('conflict');
    expect(refused.error_description).toContain('signed Agent Card before');
    expect(refused.error_description).toContain('stored card is kept');
    // Registering the same URL again is the same refresh, and is refused the same way.
    expect((await register(api, peer.flipCardUrl)).res.status).toBe(409);
    expect(await stored()).toMatchObject({ signature_verified: true, signature_kid: peer.kid, risk: null });

    peer.flip('tampered');
    const tampered = await refresh();
    expect(tampered.status).toBe(400);
    expect(((await tampered.json()) as { error_description: string }).error_description).toContain(
      'signature does not verify',
    );
    expect(await stored()).toMatchObject({ signature_verified: true, name: 'Flip agent' });

    const audit = (await (await api.call('GET', '/api/admin/audit?type=peer.refresh_refused')).json()) as {
      events: { result: string; reason: string; details: Record<string, unknown> }[];
    };
    const mine = audit.events.filter((e) => e.details.peerId === body.peer_id);
    expect(mine.map((e) => e.reason).sort()).toEqual(['conflict', 'conflict', 'invalid_request']);
    expect(mine.every((e) => e.result === 'denied')).toBe(true);

    // An administrator may accept the unsigned card explicitly; that is recorded too.
    peer.flip('unsigned');
    expect((await refresh({ accept_unsigned: 'yes' })).status).toBe(400);
    const accepted = await refresh({ accept_unsigned: true });
    expect(accepted.status).toBe(200);
    expect(await accepted.json()).toMatchObject({ signature_verified: false, risk: 'unsigned_card' });
    const refreshed = (await (await api.call('GET', '/api/admin/audit?type=peer.refreshed')).json()) as {
      events: { details: Record<string, unknown> }[];
    };
    expect(refreshed.events.find((e) => e.details.peerId === body.peer_id)?.details).toMatchObject({
      signatureVerified: false,
      signatureRemoved: true,
    });
  });

  test('security schemes are covered by the signature: swapping them is refused', async () => {
    const { res, body } = await register(api, peer.schemesTamperedCardUrl);
    expect(res.status).toBe(400);
    expect(body.error_description).toContain('signature does not verify');
  });

  test("another Errand's card (0.3 and 1.0 fields, two signatures) registers as a signed peer", async () => {
    const other = await startBroker();
    try {
      const { res, body } = await register(api, `${other.url}/.well-known/agent-card.json`);
      expect(res.status, JSON.stringify(body)).toBe(201);
      expect(body).toMatchObject({ name: 'Errand', endpoint: `${other.url}/a2a`, signature_verified: true });
      expect(body.scopes).toEqual(expect.arrayContaining(['a2a:issue_task_token']));
    } finally {
      await other.close();
    }
  });

  test('the admin page registers from a form and shows a refusal in the page', async () => {
    const page = await (await api.browser.fetch(`${tb.url}/admin/peers`)).text();
    const refused = await api.browser.postForm(`${tb.url}/admin/peers`, {
      _csrf: hiddenInput(page, '_csrf'),
      card_url: peer.redirectCardUrl,
    });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain('redirects are not followed');
    const notCsrf = await api.browser.postForm(`${tb.url}/admin/peers`, { card_url: peer.cardUrl });
    expect(notCsrf.status).toBe(403);
  });

  test('a redirecting card URL is refused', async () => {
    const { res, body } = await register(api, peer.redirectCardUrl);
    expect(res.status).toBe(400);
    expect(body.error_description).toMatch(/redirect/);
  });

  test('with the default config, loopback card URLs are refused before any request is made', async () => {
    const strict = await startBroker();
    try {
      const strictApi = await adminApi(strict);
      const port = new URL(peer.base).port;
      const before = peer.connections();
      for (const url of [
        `https://127.0.0.1:${port}/.well-known/agent-card.json`,
        `https://localhost:${port}/.well-known/agent-card.json`,
      ]) {
        const { res, body } = await register(strictApi, url);
        expect(res.status).toBe(400);
        expect(body.error).toBe('invalid_request');
        expect(body.error_description).toContain('forbidden address');
      }
      const plain = await register(strictApi, peer.cardUrl);
      expect(plain.res.status).toBe(400);
      expect(plain.body.error_description).toContain('https');
      expect(peer.connections()).toBe(before);
    } finally {
      await strict.close();
    }
  });

  test('only administrators may register peers', async () => {
    const me = await userApi(tb, await createUser(tb));
    expect((await me.call('GET', '/api/admin/peers')).status).toBe(403);
    expect((await me.call('POST', '/api/admin/peers', { card_url: peer.cardUrl })).status).toBe(403);
  });
});

describe('calling a registered peer with Errand task tokens', () => {
  test('a delegated task token works at the peer; the task follows the peer task and its end revokes the token', async () => {
    const peers = (await (await api.call('GET', '/api/admin/peers')).json()) as { peers: PeerView[] };
    const registered = peers.peers.find((p) => p.endpoint === peer.endpoint)!;
    const agent = await addAgent(api, { name: 'caller', grant_types: undefined });
    const user = await createUser(tb);
    const as = await discover(tb);
    const { credential } = await delegateViaCiba(tb, as, agent, user, {
      scope: 'openid a2a:invoke a2a:echo',
      resource: peer.endpoint,
      binding_message: 'Ask the peer agent',
    });
    const taskToken = await exchange(tb, as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: peer.endpoint,
    });

    // The A2A SDK client, with the task token, gets a task done at the peer.
    const client = await peerClient(taskToken.access_token);
    const done = (await client.sendMessage({
      tenant: '',
      message: userMessage('hello'),
      configuration: undefined,
      metadata: undefined,
    })) as Task;
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const reply = done.status?.message?.parts[0]?.content;
    expect(reply).toEqual({ $case: 'text', value: 'done: hello' });

    // A longer peer task, linked to the Errand task and followed by Errand.
    const started = (await client.sendMessage({
      tenant: '',
      message: userMessage('wait'),
      configuration: {
        acceptedOutputModes: [],
        taskPushNotificationConfig: undefined,
        returnImmediately: true,
      },
      metadata: undefined,
    })) as Task;
    expect(started.status?.state).not.toBe(TaskState.TASK_STATE_COMPLETED);
    const deps = tb.broker.deps;
    await linkPeerTask(peerTaskDeps(deps), taskToken.task_id, { peerId: registered.peer_id, peerTaskId: started.id });
    const callsBefore = peer.rpcUserAgents.length;
    const following = followPeerTask(peerTaskDeps(deps), { taskId: taskToken.task_id, intervalMs: 50 });

    await new Promise((r) => setTimeout(r, 300));
    expect((await deps.tasks.get(taskToken.task_id))?.state).toBe('working');
    expect(tb.logs.some((l) => l.includes('peer.poll_failed'))).toBe(false);
    expect((await rawGetTask(taskToken.access_token, started.id)).status).toBe(200);

    const revoked = new Promise<void>((resolve) => {
      const off = peer.guard.onRevoked(() => {
        off();
        resolve();
      });
    });
    peer.release(started.id);
    expect(await following).toEqual({ outcome: 'peer_ended', peerState: 'completed' });
    const ended = await deps.tasks.get(taskToken.task_id);
    expect(ended).toMatchObject({ state: 'completed', endReason: 'peer_ended' });
    expect(ended?.externalIds).toMatchObject({ peer: registered.peer_id, peer_task: started.id });
    // Every poll went through Errand's SSRF-safe fetch (address checked and pinned), not the global fetch.
    const calls = peer.rpcUserAgents.slice(callsBefore);
    expect(calls.filter((ua) => ua === 'Errand-AuthorizationServer').length).toBeGreaterThan(0);
    // The one other call is this test's own raw GetTask above.
    expect(calls.filter((ua) => ua !== 'Errand-AuthorizationServer')).toHaveLength(1);
    // Ended by the task service's one cascade: one task.ended event naming the peer.
    const audit = (await (
      await api.call('GET', `/api/admin/audit?type=task.ended&task_id=${taskToken.task_id}`)
    ).json()) as {
      events: { reason: string; audience: string; details: Record<string, unknown> }[];
    };
    expect(audit.events).toHaveLength(1);
    expect(audit.events[0]).toMatchObject({
      reason: 'peer_ended',
      audience: peer.endpoint,
      details: { state: 'completed', peerId: registered.peer_id, peerTask: started.id, endedTasks: 1 },
    });

    // The task has ended: the peer learns it over the push channel and refuses the token.
    await revoked;
    const after = await rawGetTask(taskToken.access_token, started.id);
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  test('a token for another audience is refused by the peer', async () => {
    const agent = await addAgent(api, { name: 'outsider', scope: ['errand:delegate', 'errand:tasks'] });
    const token = await agentToken(tb, await discover(tb), agent, `${tb.url}/mcp`, ERRAND_SCOPES);
    const res = await rawGetTask(token, 'any');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });
});
