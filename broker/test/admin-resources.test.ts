import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { z } from 'zod';
import { resources } from '../../db/schema/index.js';
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

interface ResourceView {
  id: string;
  url: string;
  name: string;
  scopes: string[];
  scope_descriptions: Record<string, string>;
}

const LOOPBACK = /^(::ffff:)?127\.0\.0\.1$/;

type AuditEvent = z.infer<typeof AuditEventViewSchema>;

async function audit(type: string): Promise<AuditEvent[]> {
  return ((await (await api.call('GET', `/api/admin/audit?type=${type}`)).json()) as { events: AuditEvent[] }).events;
}

async function create(url: string, scopes: unknown[], name = 'Mail') {
  const res = await api.call('POST', '/api/admin/resources', { url, name, scopes });
  expect(res.status).toBe(201);
  return (await res.json()) as ResourceView;
}

describe('resources: names and scope descriptions', () => {
  test('scopes are strings or {name, description}; the view carries the descriptions; creation is audited', async () => {
    const r = await create('https://mail.example.test/api', [
      'mail:send',
      { name: 'mail:read', description: 'Read your mail' },
    ]);
    expect(r).toMatchObject({
      url: 'https://mail.example.test/api',
      scopes: ['mail:read', 'mail:send'],
      scope_descriptions: { 'mail:read': 'Read your mail' },
    });
    const [event] = await audit('resource.created');
    expect(event).toMatchObject({ user_id: api.admin.id, audience: r.url, details: { resource_id: r.id } });
    expect(String(event!.details.address)).toMatch(LOOPBACK);
  });

  test('PATCH renames, describes and replaces scopes; an unknown scope in scope_descriptions is 400', async () => {
    const r = await create('https://files.example.test/api', ['files:read'], 'Files');
    const patched = await api.call('PATCH', `/api/admin/resources/${r.id}`, {
      name: 'Team files',
      scopes: ['files:read', { name: 'files:write', description: 'Change your files' }],
      scope_descriptions: { 'files:read': 'See your files' },
    });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({
      name: 'Team files',
      scopes: ['files:read', 'files:write'],
      scope_descriptions: { 'files:read': 'See your files', 'files:write': 'Change your files' },
    });
    const bad = await api.call('PATCH', `/api/admin/resources/${r.id}`, { scope_descriptions: { 'files:nope': 'x' } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'invalid_request' });
    const [event] = await audit('resource.updated');
    expect(event).toMatchObject({ audience: r.url, details: { name: 'Team files' } });
    expect(String(event!.details.address)).toMatch(LOOPBACK);
  });

  test('a resource no live delegation names is deleted (204, audited); again is 404', async () => {
    const r = await create('https://gone.example.test/api', ['gone:read'], 'Gone');
    const res = await api.call('DELETE', `/api/admin/resources/${r.id}`);
    expect(res.status).toBe(204);
    const list = (await (await api.call('GET', '/api/admin/resources')).json()) as { resources: ResourceView[] };
    expect(list.resources.some((x) => x.id === r.id)).toBe(false);
    const [event] = await audit('resource.deleted');
    expect(event).toMatchObject({ audience: r.url, details: { resource_id: r.id } });
    expect(String(event!.details.address)).toMatch(LOOPBACK);
    expect((await api.call('DELETE', `/api/admin/resources/${r.id}`)).status).toBe(404);
  });

  test("Errand's built-in resources cannot be deleted and come with descriptions", async () => {
    const list = (await (await api.call('GET', '/api/admin/resources')).json()) as { resources: ResourceView[] };
    const mcp = list.resources.find((r) => r.url === `${tb.url}/mcp`);
    expect(mcp?.scope_descriptions['errand:tasks']).toMatch(/tasks/);
    const res = await api.call('DELETE', `/api/admin/resources/${mcp!.id}`);
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ error: 'conflict' });
  });

  test('built-in resources of a database from before descriptions get them at the next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'errand-res-'));
    try {
      const first = await startBroker({}, { dir });
      await first.broker.deps.db.write((tx) => tx.update(resources).set({ scopeDescriptions: null }));
      expect((await first.broker.deps.clients.getResource(`${first.url}/mcp`))?.scopeDescriptions).toEqual({});
      const issuer = first.url;
      await first.close();
      const again = await startBroker({ ERRAND_ISSUER: issuer }, { dir });
      try {
        const mcp = await again.broker.deps.clients.getResource(`${issuer}/mcp`);
        expect(mcp?.scopeDescriptions?.['errand:delegate']).toMatch(/delegations/);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('non-administrators get 403 and a missing CSRF token is refused', async () => {
    const r = await create('https://guarded.example.test/api', ['g:read'], 'Guarded');
    const person = await createUser(tb);
    const me = await userApi(tb, person);
    expect((await me.call('PATCH', `/api/admin/resources/${r.id}`, { name: 'mine' })).status).toBe(403);
    expect((await me.call('DELETE', `/api/admin/resources/${r.id}`)).status).toBe(403);
    expect(
      (await me.call('POST', '/api/admin/resources', { url: 'https://x.example.test', name: 'x', scopes: ['x'] }))
        .status,
    ).toBe(403);
    const noCsrf = await api.browser.fetch(`${tb.url}/api/admin/resources/${r.id}`, { method: 'DELETE' });
    expect(noCsrf.status).toBe(403);
    expect(await noCsrf.json()).toMatchObject({ error: 'forbidden' });
    expect((await api.call('GET', `/api/admin/resources/${r.id}`)).status).toBe(200);
  });
});

describe('resources named by live delegations', () => {
  test('deleting or dropping a held scope is refused (409); after revocation the delete succeeds', async () => {
    const world = await startBroker();
    try {
      const NOTES = 'https://notes.example.test/mcp';
      const { api: admin, agents, user, as } = await delegationWorld(world, { agents: 1 });
      const [agent] = agents;
      const { credential, delegationId, me } = await delegateViaCiba(world, as, agent!, user, {
        scope: 'openid notes:read',
        resource: NOTES,
      });
      const task = await exchange(world, as, agent!, { subject_token: credential, subject_token_type: TT_JWT });
      const introspect = await introspector(world, admin, [NOTES]);
      const list = (await (await admin.call('GET', '/api/admin/resources')).json()) as { resources: ResourceView[] };
      const notes = list.resources.find((r) => r.url === NOTES)!;

      const refused = await admin.call('DELETE', `/api/admin/resources/${notes.id}`);
      expect(refused.status).toBe(409);
      expect(((await refused.json()) as { error_description: string }).error_description).toMatch(
        /1 live delegation names it; revoke it first/,
      );
      const drop = await admin.call('PATCH', `/api/admin/resources/${notes.id}`, { scopes: ['notes:write'] });
      expect(drop.status).toBe(409);
      // A scope nobody holds may go.
      const dropUnheld = await admin.call('PATCH', `/api/admin/resources/${notes.id}`, {
        scopes: ['notes:read', 'notes:write'],
      });
      expect(dropUnheld.status).toBe(200);

      expect((await introspect(task.access_token)).active).toBe(true);
      expect((await me.call('POST', `/api/me/delegations/${delegationId}/revoke`)).status).toBe(200);
      expect((await admin.call('DELETE', `/api/admin/resources/${notes.id}`)).status).toBe(204);
      expect((await introspect(task.access_token)).active).toBe(false);
    } finally {
      await world.close();
    }
  });
});
