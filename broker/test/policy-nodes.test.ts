import { afterEach, describe, expect, test } from 'vitest';
import type { Db } from '../../db/open.js';
import { AuditStore } from '../../db/stores/audit-store.js';
import { ClientStore } from '../../db/stores/client-store.js';
import { PolicyStore } from '../../db/stores/policy-store.js';
import type { Client } from '../core/client.js';
import { silentLogger } from '../log.js';
import { savePolicyDraft, setPolicyStatus } from '../services/policy/policy-admin.js';
import { PolicyEngine, type PolicyRequest } from '../services/policy/policy-engine.js';
import { DEFAULT_POLICIES } from '../services/policy/schema.js';
import { TestClock, twoDbHandles } from './fixtures.js';

/**
 * Two processes on one database (two handles; on PostgreSQL two connections, as two nodes): a
 * version published through one is enforced by the other within ERRAND_POLICY_REFRESH; a stored
 * version that no longer compiles is refused, never enforced as allow-all.
 */

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const REFRESH = 1;

function engineOn(db: Db, clock: TestClock) {
  const deps = {
    db,
    store: new PolicyStore(db),
    clients: new ClientStore(db),
    audit: new AuditStore(db),
    clock,
    log: silentLogger,
    refreshInterval: REFRESH,
  };
  return { deps, engine: new PolicyEngine(deps) };
}

const agent = {
  client: { id: 'agt_1', name: 'a', kind: 'agent', source: 'admin', authMethod: 'private_key_jwt' } as Client,
  assurance: null,
  workload: null,
};
const request: PolicyRequest = {
  action: 'exchange',
  principal: { agent },
  resource: { resource: { url: 'https://r.example', name: 'r', minAssurance: null } },
  context: {
    user: { id: 'usr_1', username: 'u', role: 'user', groups: [] },
    agent,
    actorChain: ['agt_1'],
    depth: 0,
    scopes: [],
    tools: [],
    taskAge: 0,
    now: 0,
    address: null,
    dpopBound: false,
    door: 'token',
  },
  requestId: 'req_1',
};

describe('policy versions across processes', () => {
  test('a version published by one process is enforced by another after its refresh interval', async () => {
    const [a, b] = await twoDbHandles(cleanup);
    const clock = new TestClock();
    const one = engineOn(a, clock);
    const two = engineOn(b, clock);
    await one.engine.refresh();
    await two.engine.refresh();
    expect(two.engine.decide(request)).toMatchObject({ allowed: true, version: 0, policies: ['default'] });

    const admin = { adminId: 'usr_admin', requestId: 'req_admin' };
    const text = `${DEFAULT_POLICIES}\n@id("closed") forbid (principal == Errand::Agent::"agt_1", action, resource);`;
    const saved = await savePolicyDraft(
      { ...one.deps, policyStore: one.deps.store, policy: one.engine },
      { text, tests: [] },
      admin,
    );
    await setPolicyStatus(
      { ...one.deps, policyStore: one.deps.store, policy: one.engine },
      saved.version,
      'published',
      admin,
    );
    // The publishing process enforces it at once.
    expect(one.engine.decide(request)).toMatchObject({ allowed: false, version: saved.version, policies: ['closed'] });
    // The other looks again every interval, with or without requests.
    two.engine.start();
    cleanup.push(() => two.engine.stop());
    await expect
      .poll(() => two.engine.decide(request), { timeout: 10_000, interval: 100 })
      .toMatchObject({ allowed: false, version: saved.version, policies: ['closed'] });
  });

  test('a stored version that no longer compiles is refused loudly, not enforced as allow-all', async () => {
    const [a] = await twoDbHandles(cleanup);
    const clock = new TestClock();
    const { deps, engine } = engineOn(a, clock);
    await a.write(async (tx) => {
      const v = await deps.store.insertDraft(
        {
          text: 'permit (principal, action, resource) when { context.gone };',
          tests: [],
          comment: null,
          createdBy: 'x',
          createdAt: 0,
        },
        tx,
      );
      await deps.store.setStatus(v, 'published', 'x', 0, tx);
    });
    await expect(engine.refresh()).rejects.toThrow(/does not compile/);
  });
});
