import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { z } from 'zod';
import type { AuditEventViewSchema } from '../services/api-views.js';
import { addAgent, adminApi, createUser, startBroker, type TestBroker } from './fixtures.js';

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
