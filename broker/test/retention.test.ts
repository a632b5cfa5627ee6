import { afterEach, describe, expect, it } from 'vitest';
import { type Db, openDb } from '../../db/open.js';
import {
  a2aTasks,
  auditEvents,
  authorizationCodes,
  authorizationRequests,
  backchannelRequests,
  delegations,
  issuedTokens,
  refreshTokens,
  revocationLog,
  tasks,
  usedAssertions,
} from '../../db/schema/index.js';
import { RetentionService } from '../services/retention.js';
import { dbEnv, startBroker, type TestBroker, TestClock } from './fixtures.js';

const DAY = 86_400;
let tb: TestBroker | undefined;
let db: Db | undefined;

afterEach(async () => {
  db?.close();
  db = undefined;
  await tb?.close();
  tb = undefined;
});

async function setup(env: Record<string, string>): Promise<{ tb: TestBroker; db: Db; clock: TestClock }> {
  const clock = new TestClock();
  tb = await startBroker(env, { clock });
  // The broker's own database (in postgres mode the one startBroker gave it).
  db = await openDb((await dbEnv(tb.dir)).ERRAND_DB_URL ?? `file:${tb.dir}/errand.db`);
  return { tb, db, clock };
}

function token(jti: string, expiresAt: number, taskId: string | null = null) {
  return {
    jti,
    clientId: 'c1',
    subject: 'u1',
    audience: 'https://rs.example',
    scope: 'read',
    kid: 'k1',
    issuedAt: expiresAt - 300,
    expiresAt,
    taskId,
  };
}

function task(id: string, endedAt: number | null, parentTaskId: string | null = null) {
  return {
    id,
    delegationId: 'd1',
    userId: 'u1',
    agentId: 'a1',
    actorChain: '[]',
    parentTaskId,
    rootTaskId: parentTaskId ?? id,
    depth: parentTaskId ? 1 : 0,
    state: endedAt === null ? 'active' : 'completed',
    createdAt: (endedAt ?? 0) - 60,
    deadline: (endedAt ?? 0) + 3600,
    endedAt,
    externalIds: '{}',
  };
}

function audit(id: string, at: number) {
  return { id, at, type: 'token.issued', result: 'allowed' as const };
}

const ids = async (d: Db, table: typeof issuedTokens | typeof tasks | typeof auditEvents) => {
  const rows = (await d.q.select().from(table as typeof auditEvents)) as unknown as Record<string, string>[];
  return rows.map((r) => r.jti ?? r.id).sort();
};

describe('retention', () => {
  it('prunes old token-like rows and keeps live and recent ones', async () => {
    const { tb, db, clock } = await setup({ ERRAND_RETENTION_TOKENS: String(DAY), ERRAND_RETENTION_AUDIT: '0' });
    const now = clock.now();
    const old = now - 2 * DAY;
    const recent = now - 3600;
    await db.q.insert(issuedTokens).values([token('old', old), token('recent', recent), token('live', now + 300)]);
    const rt = { familyId: 'f', clientId: 'c1', userId: 'u1', scope: 'read', resources: '[]', createdAt: old - 60 };
    await db.q.insert(refreshTokens).values([
      { ...rt, tokenHash: 'rt-used-old', expiresAt: now + DAY, familyExpiresAt: now + DAY, usedAt: old },
      { ...rt, tokenHash: 'rt-revoked-old', expiresAt: now + DAY, familyExpiresAt: now + DAY, revokedAt: old },
      { ...rt, tokenHash: 'rt-expired-old', expiresAt: old, familyExpiresAt: now + DAY },
      { ...rt, tokenHash: 'rt-used-recent', expiresAt: now + DAY, familyExpiresAt: now + DAY, usedAt: recent },
      { ...rt, tokenHash: 'rt-live', expiresAt: now + DAY, familyExpiresAt: now + DAY },
    ]);
    const code = {
      grantId: 'g',
      clientId: 'c1',
      userId: 'u1',
      redirectUri: 'http://127.0.0.1/cb',
      redirectUriSent: true,
      codeChallenge: 'x',
      scope: 'read',
      resources: '[]',
      createdAt: old - 60,
    };
    await db.q.insert(authorizationCodes).values([
      { ...code, codeHash: 'code-used-old', expiresAt: old + 60, usedAt: old },
      { ...code, codeHash: 'code-live', expiresAt: now + 60 },
    ]);
    const req = { ...code, redirectUriSent: true, state: null };
    await db.q.insert(authorizationRequests).values([
      { id: 'req-old', ...pick(req), createdAt: old - 600, expiresAt: old },
      { id: 'req-live', ...pick(req), createdAt: now, expiresAt: now + 600 },
    ]);
    await db.q.insert(usedAssertions).values([
      { key: 'jti-old', expiresAt: old },
      { key: 'jti-live', expiresAt: now + 60 },
    ]);
    const ciba = { delegationId: 'd1', clientId: 'c1', interval: 5 };
    await db.q.insert(backchannelRequests).values([
      { ...ciba, authReqIdHash: 'ciba-old', createdAt: old - 600, expiresAt: old },
      { ...ciba, authReqIdHash: 'ciba-redeemed-old', createdAt: old - 60, expiresAt: now + 600, redeemedAt: old },
      { ...ciba, authReqIdHash: 'ciba-live', createdAt: now, expiresAt: now + 600 },
    ]);
    // The revocation log (read by push streams within a poll interval) is kept like a token row.
    const revoked = { audience: 'https://r.example.test', taskId: 't1', statusIdx: null };
    await db.q.insert(revocationLog).values([
      { ...revoked, jti: 'rev-old', at: old, writtenMs: old * 1000 },
      { ...revoked, jti: 'rev-recent', at: recent, writtenMs: recent * 1000 },
    ]);

    await tb.broker.maintain();

    expect(await ids(db, issuedTokens)).toEqual(['live', 'recent']);
    const rts = (await db.q.select().from(refreshTokens)).map((r) => r.tokenHash).sort();
    expect(rts).toEqual(['rt-live', 'rt-used-recent']);
    expect((await db.q.select().from(authorizationCodes)).map((r) => r.codeHash)).toEqual(['code-live']);
    expect((await db.q.select().from(authorizationRequests)).map((r) => r.id)).toEqual(['req-live']);
    expect((await db.q.select().from(usedAssertions)).map((r) => r.key)).toEqual(['jti-live']);
    expect((await db.q.select().from(backchannelRequests)).map((r) => r.authReqIdHash)).toEqual(['ciba-live']);
    expect((await db.q.select().from(revocationLog)).map((r) => r.jti)).toEqual(['rev-recent']);
    expect(tb.logs.some((l) => l.includes('retention.pruned'))).toBe(true);
  });

  it('deletes ended tasks only after their retention and only when no live token references them', async () => {
    const { tb, db, clock } = await setup({ ERRAND_RETENTION_TASKS: String(7 * DAY) });
    const now = clock.now();
    const old = now - 8 * DAY;
    await db.q
      .insert(tasks)
      .values([
        task('t-old', old),
        task('t-old-referenced', old),
        task('t-recent', now - DAY),
        task('t-running', null),
        task('t-parent', old),
        task('t-child', old, 't-parent'),
      ]);
    await db.q.insert(issuedTokens).values(token('live-task-token', now + 300, 't-old-referenced'));

    await tb.broker.maintain();
    // The parent goes once its child has gone (children first), at the next run: one maintenance
    // period later, as the run is claimed once per period (README "PostgreSQL and several nodes").
    clock.advance(60);
    await tb.broker.maintain();
    expect(await ids(db, tasks)).toEqual(['t-old-referenced', 't-recent', 't-running']);

    // Once the token has expired (and its own retention passed), the task goes too.
    clock.advance(2 * DAY);
    await tb.broker.maintain();
    expect(await ids(db, tasks)).toEqual(['t-recent', 't-running']);
    expect(await ids(db, issuedTokens)).toEqual([]);
  });

  it('deletes an A2A task after the task retention, once the Errand task it stands for is gone', async () => {
    const { tb, db, clock } = await setup({ ERRAND_RETENTION_TASKS: String(7 * DAY) });
    const now = clock.now();
    const old = now - 8 * DAY;
    await db.q.insert(tasks).values([task('t-gone', old), task('t-running', null)]);
    const a2a = (id: string, errandTaskId: string | null, updatedAt: number) => ({
      id,
      owner: '["c1","u1"]',
      contextId: 'ctx',
      state: 5,
      statusAt: new Date(updatedAt * 1000).toISOString(),
      body: JSON.stringify({ id, metadata: errandTaskId ? { errand_task_id: errandTaskId } : {} }),
      createdAt: updatedAt,
      updatedAt,
    });
    await db.q
      .insert(a2aTasks)
      .values([
        a2a('a-gone', 't-gone', old),
        a2a('a-running', 't-running', old),
        a2a('a-no-task', null, old),
        a2a('a-recent', null, now - DAY),
      ]);
    await tb.broker.maintain();
    // 't-gone' is deleted in this run, before its A2A task is looked at.
    const left = (await db.q.select().from(a2aTasks)).map((r) => r.id).sort();
    expect(left).toEqual(['a-recent', 'a-running']);
  });

  it('keeps audit events while tokens are pruned (audit retention is separate)', async () => {
    const { tb, db, clock } = await setup({
      ERRAND_RETENTION_TOKENS: '3600',
      ERRAND_RETENTION_AUDIT: String(365 * DAY),
    });
    const now = clock.now();
    await db.q.insert(issuedTokens).values(token('old', now - DAY));
    await db.q.insert(auditEvents).values([audit('a-day', now - DAY), audit('a-400d', now - 400 * DAY)]);
    await tb.broker.maintain();
    expect(await ids(db, issuedTokens)).toEqual([]);
    const auditIds = (await db.q.select().from(auditEvents)).map((r) => r.id);
    expect(auditIds).toContain('a-day');
    expect(auditIds).not.toContain('a-400d');
  });

  it('keeps tokens while audit events are pruned, and keeps audit forever with 0', async () => {
    const { tb, db, clock } = await setup({
      ERRAND_RETENTION_TOKENS: String(30 * DAY),
      ERRAND_RETENTION_AUDIT: '3600',
    });
    const now = clock.now();
    await db.q.insert(issuedTokens).values(token('expired-yesterday', now - DAY));
    await db.q.insert(auditEvents).values(audit('a-old', now - DAY));
    await tb.broker.maintain();
    expect(await ids(db, issuedTokens)).toEqual(['expired-yesterday']);
    expect((await db.q.select().from(auditEvents)).map((r) => r.id)).not.toContain('a-old');

    const forever = new RetentionService({ db, clock }, { tokens: DAY, tasks: DAY, audit: 0 });
    await db.q.insert(auditEvents).values(audit('a-ancient', now - 3650 * DAY));
    const res = await forever.prune();
    expect(res.auditEvents).toBe(0);
    expect((await db.q.select().from(auditEvents)).map((r) => r.id)).toContain('a-ancient');
  });

  it('drops delegation requests left pending for a day, and no decided delegation', async () => {
    const { tb, db, clock } = await setup({});
    const now = clock.now();
    const d = (id: string, status: 'pending' | 'active' | 'denied', createdAt: number) => ({
      id,
      userId: 'u1',
      agentId: 'a1',
      status,
      requested: '{}',
      grants: '{}',
      maxTokenTtl: 300,
      maxDepth: 1,
      expiresAt: now + DAY,
      createdAt,
      source: 'ciba' as const,
    });
    await db.q
      .insert(delegations)
      .values([
        d('pending-old', 'pending', now - 2 * DAY),
        d('pending-recent', 'pending', now - 3600),
        d('active-old', 'active', now - 2 * DAY),
        d('denied-old', 'denied', now - 2 * DAY),
      ]);
    await tb.broker.maintain();
    const left = (await db.q.select().from(delegations)).map((r) => r.id).sort();
    expect(left).toEqual(['active-old', 'denied-old', 'pending-recent']);
  });

  it('works off a backlog in bounded batches', async () => {
    const { db, clock } = await setup({});
    const now = clock.now();
    await db.q.insert(issuedTokens).values(Array.from({ length: 25 }, (_, i) => token(`old-${i}`, now - 2 * DAY)));
    const small = new RetentionService(
      { db, clock },
      { tokens: DAY, tasks: DAY, audit: 0 },
      { batchSize: 4, maxBatches: 3 },
    );
    expect((await small.prune()).issuedTokens).toBe(12);
    expect((await db.q.select().from(issuedTokens)).length).toBe(13);
    const big = new RetentionService({ db, clock }, { tokens: DAY, tasks: DAY, audit: 0 }, { batchSize: 4 });
    expect((await big.prune()).issuedTokens).toBe(13);
    expect((await db.q.select().from(issuedTokens)).length).toBe(0);
  });
});

function pick(r: {
  clientId: string;
  redirectUri: string;
  redirectUriSent: boolean;
  codeChallenge: string;
  scope: string;
  resources: string;
  state: null;
}) {
  const { clientId, redirectUri, redirectUriSent, codeChallenge, scope, resources, state } = r;
  return { clientId, redirectUri, redirectUriSent, codeChallenge, scope, resources, state };
}
