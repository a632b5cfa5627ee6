import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { z } from 'zod';
import type { AuditEventViewSchema } from '../services/api-views.js';
import {
  addAgent,
  addResource,
  adminApi,
  Browser,
  createUser,
  hiddenInput,
  startBroker,
  type TestBroker,
} from './fixtures.js';

type AuditEvent = z.infer<typeof AuditEventViewSchema>;

let tb: TestBroker;
let api: Awaited<ReturnType<typeof adminApi>>;

beforeAll(async () => {
  tb = await startBroker();
  api = await adminApi(tb);
});
afterAll(() => tb.close());

async function audit(query: Record<string, string>): Promise<AuditEvent[]> {
  const res = await api.call('GET', `/api/admin/audit?${new URLSearchParams(query)}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: AuditEvent[] }).events;
}

function signIn(username: string, password: string) {
  return fetch(`${tb.url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
}

/** The test client connects from 127.0.0.1 (or its IPv4-mapped IPv6 form). */
const LOOPBACK = /^(::ffff:)?127\.0\.0\.1$/;

/** An agent that registered itself with an initial access token and waits for an administrator. */
async function pendingAgent(name: string): Promise<string> {
  const issued = await api.call('POST', '/api/admin/initial-access-tokens', { name: `for ${name}` });
  expect(issued.status).toBe(201);
  const { initial_access_token: token } = (await issued.json()) as { initial_access_token: string };
  const { publicKey } = await generateKeyPair('ES256');
  const res = await fetch(`${tb.url}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      client_name: name,
      token_endpoint_auth_method: 'private_key_jwt',
      grant_types: ['client_credentials'],
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] },
    }),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  const registered = (await res.json()) as { client_id: string; status?: string };
  return registered.client_id;
}

/** The administrator signed in to the web console, with the form token of its pages. */
async function consoleAdmin(): Promise<{ browser: Browser; csrf: string }> {
  const browser = new Browser();
  const page = await browser.fetch(`${tb.url}/signin`);
  const res = await browser.postForm(`${tb.url}/signin`, {
    username: api.admin.username,
    password: api.admin.password,
    _csrf: hiddenInput(await page.text(), '_csrf'),
    next: '/admin',
  });
  expect(res.status).toBe(303);
  return { browser, csrf: hiddenInput(await (await browser.fetch(`${tb.url}/admin`)).text(), '_csrf') };
}

/** The one event of `type` written by the response `res` (matched by its request id). */
async function eventOf(type: string, res: Response): Promise<AuditEvent> {
  const requestId = res.headers.get('x-request-id');
  const event = (await audit({ type })).find((e) => e.request_id === requestId);
  expect(event, `no ${type} event for request ${requestId}`).toBeDefined();
  return event!;
}

describe('audit events carry the source address', () => {
  test('sign-in successes and failures (wrong password, unknown user) are audited, never with the password', async () => {
    const person = await createUser(tb);
    const ok = await signIn(person.username, person.password);
    expect(ok.status).toBe(200);
    const wrong = await signIn(person.username, 'not-the-password-31c');
    expect(wrong.status).toBe(401);
    const unknown = await signIn('nobody-here', 'whatever-password-8d');
    expect(unknown.status).toBe(401);

    const succeeded = (await audit({ type: 'signin.succeeded', user_id: person.id }))[0];
    expect(succeeded).toMatchObject({
      result: 'allowed',
      user_id: person.id,
      request_id: ok.headers.get('x-request-id'),
    });
    expect(succeeded!.details).toMatchObject({ method: 'password' });
    expect(String(succeeded!.details.address)).toMatch(LOOPBACK);

    const failed = await audit({ type: 'signin.failed' });
    const mine = failed.find((e) => e.user_id === person.id);
    expect(mine).toMatchObject({ result: 'denied', reason: 'bad_credentials' });
    expect(String(mine!.details.address)).toMatch(LOOPBACK);
    const stranger = failed.find((e) => e.request_id === unknown.headers.get('x-request-id'));
    expect(stranger).toMatchObject({ result: 'denied', user_id: null, reason: 'bad_credentials' });
    expect(JSON.stringify(failed)).not.toMatch(/not-the-password-31c|whatever-password-8d/);
  });

  test('creating a person, registering a client and disabling it record the administrator and the address', async () => {
    const created = await api.call('POST', '/api/admin/users', {
      username: 'audited-person',
      password: 'a-long-enough-password-1',
      role: 'user',
    });
    expect(created.status).toBe(201);
    const { id: newUserId } = (await created.json()) as { id: string };
    const [userCreated] = await audit({ type: 'user.created' });
    expect(userCreated).toMatchObject({ result: 'allowed', user_id: api.admin.id });
    expect(userCreated!.details).toMatchObject({
      created_user_id: newUserId,
      username: 'audited-person',
      role: 'user',
    });
    expect(String(userCreated!.details.address)).toMatch(LOOPBACK);
    expect(JSON.stringify(userCreated)).not.toContain('a-long-enough-password-1');

    const agent = await addAgent(api, { name: 'audited agent' });
    const [registered] = await audit({ type: 'client.registered', client_id: agent.clientId });
    expect(registered).toMatchObject({ user_id: api.admin.id });
    expect(String(registered!.details.address)).toMatch(LOOPBACK);

    const disabled = await api.call('PATCH', `/api/admin/clients/${agent.clientId}`, { status: 'disabled' });
    expect(disabled.status).toBe(200);
    const [event] = await audit({ type: 'agent.disabled', client_id: agent.clientId });
    expect(event).toMatchObject({ user_id: api.admin.id });
    expect(String(event!.details.address)).toMatch(LOOPBACK);
  });

  test('approving and rejecting a waiting agent, through the API and the web console, record the address', async () => {
    const viaApi = await pendingAgent('api-approved agent');
    const approved = await api.call('POST', `/api/admin/clients/${viaApi}/approve`);
    expect(approved.status).toBe(200);
    const approvedEvent = await eventOf('client.approved', approved);
    expect(approvedEvent).toMatchObject({ user_id: api.admin.id, client_id: viaApi });
    expect(String(approvedEvent.details.address)).toMatch(LOOPBACK);

    const rejectedByApi = await pendingAgent('api-rejected agent');
    const rejected = await api.call('POST', `/api/admin/clients/${rejectedByApi}/reject`);
    expect(rejected.status).toBe(200);
    expect(String((await eventOf('client.rejected', rejected)).details.address)).toMatch(LOOPBACK);

    const { browser, csrf } = await consoleAdmin();
    for (const decision of ['approve', 'reject'] as const) {
      const id = await pendingAgent(`console-${decision} agent`);
      const res = await browser.postForm(`${tb.url}/admin/agents/${id}/decision`, { decision, _csrf: csrf });
      expect(res.status).toBe(303);
      const event = await eventOf(decision === 'approve' ? 'client.approved' : 'client.rejected', res);
      expect(event).toMatchObject({ user_id: api.admin.id, client_id: id });
      expect(String(event.details.address)).toMatch(LOOPBACK);
    }
    // A forged console form changes nothing and writes no decision.
    const untouched = await pendingAgent('forged-decision agent');
    const forged = await browser.postForm(`${tb.url}/admin/agents/${untouched}/decision`, {
      decision: 'approve',
      _csrf: 'forged',
    });
    expect(forged.status).toBe(403);
    expect(await audit({ type: 'client.approved', client_id: untouched })).toEqual([]);
  });

  test('replacing exchange rules records the administrator and the address', async () => {
    const gatewayUrl = 'https://gateway.audit.example.test/mcp';
    const notesUrl = 'https://notes.audit.example.test/api';
    await addResource(api, gatewayUrl, ['gw:use']);
    await addResource(api, notesUrl, ['notes:read']);
    const gateway = await addAgent(api, {
      kind: 'resource_server',
      name: 'audited gateway',
      resources: [gatewayUrl],
      grant_types: ['urn:ietf:params:oauth:grant-type:token-exchange'],
    });
    const res = await api.call('PUT', `/api/admin/clients/${gateway.clientId}/exchange-rules`, {
      rules: [{ resource: notesUrl, scopes: ['notes:read'] }],
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const event = await eventOf('exchange_rules.updated', res);
    expect(event).toMatchObject({ user_id: api.admin.id, client_id: gateway.clientId });
    expect(String(event.details.address)).toMatch(LOOPBACK);
  });

  test('registering, changing and deleting a trusted issuer record the address', async () => {
    const agent = await api.call('POST', '/api/admin/clients', {
      kind: 'agent',
      name: 'audited workload',
      token_endpoint_auth_method: 'workload_federation',
    });
    expect(agent.status).toBe(201);
    const { client_id: agentId } = (await agent.json()) as { client_id: string };
    const { publicKey } = await generateKeyPair('ES256');
    const created = await api.call('POST', '/api/admin/trusted-issuers', {
      kind: 'ci',
      name: 'audited CI',
      issuer: 'https://ci.audit.example.test',
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'ci-1', alg: 'ES256' }] },
      rules: [{ match: { sub: 'repo:errand/*' }, agent_id: agentId }],
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const updated = await api.call('PATCH', `/api/admin/trusted-issuers/${id}`, { status: 'disabled' });
    expect(updated.status).toBe(200);
    const deleted = await api.call('DELETE', `/api/admin/trusted-issuers/${id}`);
    expect(deleted.status).toBeLessThan(300);
    for (const [type, res] of [
      ['trusted_issuer.registered', created],
      ['trusted_issuer.updated', updated],
      ['trusted_issuer.deleted', deleted],
    ] as const) {
      const event = await eventOf(type, res);
      expect(event).toMatchObject({ user_id: api.admin.id });
      expect(event.details).toMatchObject({ trustedIssuerId: id });
      expect(String(event.details.address)).toMatch(LOOPBACK);
    }
  });

  test('behind a trusted proxy the address is the client’s own, in full (not the /64 the rate limits use)', async () => {
    const proxied = await startBroker({ ERRAND_TRUST_PROXY: '1' });
    try {
      const person = await createUser(proxied);
      const res = await fetch(`${proxied.url}/api/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '2001:db8:0:0:aaaa::17' },
        body: JSON.stringify({ username: person.username, password: 'wrong-password-for-this' }),
      });
      expect(res.status).toBe(401);
      const admin = await adminApi(proxied);
      const events = (await (await admin.call('GET', '/api/admin/audit?type=signin.failed')).json()) as {
        events: AuditEvent[];
      };
      const event = events.events.find((e) => e.request_id === res.headers.get('x-request-id'));
      expect(event?.details.address).toBe('2001:db8:0:0:aaaa::17');
    } finally {
      await proxied.close();
    }
  });
});
