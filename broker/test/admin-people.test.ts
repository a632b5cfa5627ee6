import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { z } from 'zod';
import type { AuditEventViewSchema } from '../services/api-views.js';
import { delegateViaCiba, delegationWorld, exchange, introspector, TT_JWT, userApi } from './delegation-fixtures.js';
import { adminApi, createUser, startBroker, type TestBroker } from './fixtures.js';

let tb: TestBroker;
let api: Awaited<ReturnType<typeof adminApi>>;

beforeAll(async () => {
  tb = await startBroker();
  api = await adminApi(tb);
});
afterAll(() => tb.close());

const LOOPBACK = /^(::ffff:)?127\.0\.0\.1$/;

type AuditEvent = z.infer<typeof AuditEventViewSchema>;

async function audit(type: string): Promise<AuditEvent[]> {
  return ((await (await api.call('GET', `/api/admin/audit?type=${type}`)).json()) as { events: AuditEvent[] }).events;
}

function signIn(broker: TestBroker, username: string, password: string) {
  return fetch(`${broker.url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
}

describe('people: disable and enable', () => {
  test('a disabled person cannot sign in, their sessions, delegations, tasks and tokens end; enabling restores sign-in only', async () => {
    const world = await startBroker();
    try {
      const NOTES = 'https://notes.example.test/mcp';
      const { api: admin, agents, user, as } = await delegationWorld(world, { agents: 1 });
      const { credential, delegationId, me } = await delegateViaCiba(world, as, agents[0]!, user, {
        scope: 'openid notes:read',
        resource: NOTES,
      });
      const task = await exchange(world, as, agents[0]!, { subject_token: credential, subject_token_type: TT_JWT });
      const introspect = await introspector(world, admin, [NOTES]);
      expect((await introspect(task.access_token)).active).toBe(true);

      const res = await admin.call('PATCH', `/api/admin/users/${user.id}`, { status: 'disabled' });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ id: user.id, status: 'disabled' });

      expect((await introspect(task.access_token)).active).toBe(false);
      expect((await world.broker.deps.tasks.get(task.task_id))?.state).toBe('canceled');
      expect((await world.broker.deps.delegations.get(delegationId))?.status).toBe('revoked');
      // The session they had is gone, and signing in again is refused.
      expect((await me.call('GET', '/api/me')).status).toBe(401);
      expect((await signIn(world, user.username, user.password)).status).toBe(401);

      const events = (await (await admin.call('GET', '/api/admin/audit?type=user.disabled')).json()) as {
        events: AuditEvent[];
      };
      expect(events.events[0]).toMatchObject({ user_id: admin.admin.id, details: { target_user_id: user.id } });
      expect(String(events.events[0]!.details.address)).toMatch(LOOPBACK);

      expect((await admin.call('PATCH', `/api/admin/users/${user.id}`, { status: 'active' })).status).toBe(200);
      expect((await signIn(world, user.username, user.password)).status).toBe(200);
      expect((await world.broker.deps.delegations.get(delegationId))?.status).toBe('revoked');
      const enabled = (await (await admin.call('GET', '/api/admin/audit?type=user.enabled')).json()) as {
        events: AuditEvent[];
      };
      expect(enabled.events).toHaveLength(1);
    } finally {
      await world.close();
    }
  });

  test('the last active administrator can be neither disabled nor demoted; with a second one, they can', async () => {
    const world = await startBroker();
    try {
      const only = await adminApi(world);
      for (const patch of [{ status: 'disabled' }, { role: 'user' }]) {
        const res = await only.call('PATCH', `/api/admin/users/${only.admin.id}`, patch);
        expect(res.status).toBe(409);
        expect(await res.json()).toMatchObject({
          error: 'conflict',
          error_description: expect.stringMatching(/last active administrator/),
        });
      }
      const second = await createUser(world, 'admin');
      // A disabled administrator does not count.
      expect((await only.call('PATCH', `/api/admin/users/${second.id}`, { status: 'disabled' })).status).toBe(200);
      expect((await only.call('PATCH', `/api/admin/users/${only.admin.id}`, { role: 'user' })).status).toBe(409);
      expect((await only.call('PATCH', `/api/admin/users/${second.id}`, { status: 'active' })).status).toBe(200);
      const demoted = await only.call('PATCH', `/api/admin/users/${second.id}`, { role: 'user' });
      expect(demoted.status).toBe(200);
      expect(await demoted.json()).toMatchObject({ role: 'user' });
    } finally {
      await world.close();
    }
  });

  test('a role change is audited as user.updated with the address', async () => {
    const person = await createUser(tb);
    expect((await api.call('PATCH', `/api/admin/users/${person.id}`, { role: 'admin' })).status).toBe(200);
    const [event] = await audit('user.updated');
    expect(event).toMatchObject({ user_id: api.admin.id, details: { target_user_id: person.id, role: 'admin' } });
    expect(String(event!.details.address)).toMatch(LOOPBACK);
  });

  test('non-administrators get 403, unknown people 404, bodies are validated, CSRF is required', async () => {
    const person = await createUser(tb);
    const other = await createUser(tb);
    const me = await userApi(tb, person);
    expect((await me.call('PATCH', `/api/admin/users/${other.id}`, { status: 'disabled' })).status).toBe(403);
    expect((await me.call('PATCH', `/api/admin/users/${person.id}`, { role: 'admin' })).status).toBe(403);
    expect((await me.call('POST', `/api/admin/users/${other.id}/password`, { password: 'x'.repeat(20) })).status).toBe(
      403,
    );
    expect((await api.call('PATCH', '/api/admin/users/usr_nobody', { status: 'disabled' })).status).toBe(404);
    const bad = await api.call('PATCH', `/api/admin/users/${other.id}`, { role: 'root' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'invalid_request' });
    const noCsrf = await api.browser.fetch(`${tb.url}/api/admin/users/${other.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'disabled' }),
    });
    expect(noCsrf.status).toBe(403);
    expect((await signIn(tb, other.username, other.password)).status).toBe(200);
  });
});

describe('passwords', () => {
  test('an administrator sets a new password: the old one stops working, sessions end, never audited in clear', async () => {
    const person = await createUser(tb);
    const me = await userApi(tb, person);
    const fresh = 'set-by-the-admin-4711';
    const short = await api.call('POST', `/api/admin/users/${person.id}/password`, { password: 'short' });
    expect(short.status).toBe(400);
    const res = await api.call('POST', `/api/admin/users/${person.id}/password`, { password: fresh });
    expect(res.status).toBe(204);
    expect((await me.call('GET', '/api/me')).status).toBe(401);
    expect((await signIn(tb, person.username, person.password)).status).toBe(401);
    expect((await signIn(tb, person.username, fresh)).status).toBe(200);
    const [event] = await audit('user.password_reset');
    expect(event).toMatchObject({ user_id: api.admin.id, details: { target_user_id: person.id } });
    expect(String(event!.details.address)).toMatch(LOOPBACK);
    expect(JSON.stringify(await audit('user.password_reset'))).not.toContain(fresh);
    expect(tb.logs.join('\n')).not.toContain(fresh);
  });

  test('a person changes their own password with the current one; other sessions end, this one stays', async () => {
    const person = await createUser(tb);
    const here = await userApi(tb, person);
    const elsewhere = await userApi(tb, person);
    const next = 'my-own-new-password-99';

    const wrong = await here.call('POST', '/api/me/password', {
      current_password: 'not-my-password-0',
      new_password: next,
    });
    expect(wrong.status).toBe(403);
    expect(await wrong.json()).toMatchObject({ error: 'forbidden' });
    const noCsrf = await here.browser.fetch(`${tb.url}/api/me/password`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ current_password: person.password, new_password: next }),
    });
    expect(noCsrf.status).toBe(403);
    expect((await signIn(tb, person.username, next)).status).toBe(401);

    const ok = await here.call('POST', '/api/me/password', { current_password: person.password, new_password: next });
    expect(ok.status).toBe(204);
    expect((await here.call('GET', '/api/me')).status).toBe(200);
    expect((await elsewhere.call('GET', '/api/me')).status).toBe(401);
    expect((await signIn(tb, person.username, person.password)).status).toBe(401);
    expect((await signIn(tb, person.username, next)).status).toBe(200);

    const events = await audit('user.password_changed');
    const myId = await whoAmI(here);
    expect(events.find((e) => e.result === 'allowed' && e.user_id === myId)).toBeDefined();
    expect(events.find((e) => e.result === 'denied' && e.reason === 'bad_credentials')).toBeDefined();
    expect(JSON.stringify(events)).not.toMatch(/my-own-new-password-99|not-my-password-0/);
    expect((await fetch(`${tb.url}/api/me/password`, { method: 'POST' })).status).toBe(401);
  });
});

describe('password guesses through the change form', () => {
  test('after ERRAND_SIGNIN_MAX_FAILURES wrong current passwords the form is locked (429), even for the right one', async () => {
    const world = await startBroker({ ERRAND_SIGNIN_MAX_FAILURES: '2' });
    try {
      const person = await createUser(world);
      const me = await userApi(world, person);
      const attempt = (current: string) =>
        me.call('POST', '/api/me/password', { current_password: current, new_password: 'never-set-password-1' });
      expect((await attempt('wrong-guess-number-1')).status).toBe(403);
      expect((await attempt('wrong-guess-number-2')).status).toBe(403);
      const locked = await attempt(person.password);
      expect(locked.status).toBe(429);
      expect(await locked.json()).toMatchObject({ error: 'rate_limited' });
      expect((await signIn(world, person.username, person.password)).status).toBe(200);
      world.clock.advance(15 * 60 + 1);
      expect((await attempt(person.password)).status).toBe(204);
    } finally {
      await world.close();
    }
  });
});

async function whoAmI(me: Awaited<ReturnType<typeof userApi>>): Promise<string> {
  return ((await (await me.call('GET', '/api/me')).json()) as { user_id: string }).user_id;
}
