import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Db, openDb } from '../../db/open.js';
import { issuedTokens, maintenanceLeases } from '../../db/schema/index.js';
import { LEASE_CLOCK_LEEWAY, MaintenanceLeaseStore } from '../../db/stores/maintenance-lease-store.js';
import { dbEnv, startBroker, type TestBroker, TestClock, twoDbHandles } from './fixtures.js';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'errand-leases-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const twoHandles = () => twoDbHandles(cleanup);

const JOBS = [
  { job: 'retention', period: 30 },
  { job: 'task_deadlines', period: 30 },
];

describe('maintenance leases', () => {
  it('of two handles claiming together, exactly one runs each job each period', async () => {
    const [a, b] = await twoHandles();
    const la = new MaintenanceLeaseStore(a);
    const lb = new MaintenanceLeaseStore(b);
    const t0 = 1_800_000_000;
    for (const [i, now] of [t0, t0 + 30, t0 + 65, t0 + 95].entries()) {
      const [wa, wb] = await Promise.all([la.claimDue(JOBS, now, 'node-a'), lb.claimDue(JOBS, now, 'node-b')]);
      for (const { job } of JOBS) {
        expect([wa.has(job), wb.has(job)].filter(Boolean), `${job} in round ${i}`).toHaveLength(1);
      }
    }
    const rows = await la.list();
    expect(rows.map((r) => r.job).sort()).toEqual(['retention', 'task_deadlines']);
    for (const r of rows) {
      expect(r.nextRunAt).toBe(t0 + 95 + 30);
      expect(['node-a', 'node-b']).toContain(r.holder);
    }
  });

  it('does not run a job again within its period, on any handle', async () => {
    const [a, b] = await twoHandles();
    const t0 = 1_800_000_000;
    expect((await new MaintenanceLeaseStore(a).claimDue(JOBS, t0, 'node-a')).size).toBe(2);
    for (const now of [t0, t0 + 1, t0 + 29]) {
      expect((await new MaintenanceLeaseStore(a).claimDue(JOBS, now, 'node-a')).size).toBe(0);
      expect((await new MaintenanceLeaseStore(b).claimDue(JOBS, now, 'node-b')).size).toBe(0);
    }
    expect((await new MaintenanceLeaseStore(b).claimDue(JOBS, t0 + 30, 'node-b')).size).toBe(2);
  });

  it('a run time set by a clock far ahead is claimed anyway; one within the leeway is not', async () => {
    const [a] = await twoHandles();
    const leases = new MaintenanceLeaseStore(a);
    const now = 1_800_000_000;
    await leases.claimDue(JOBS, now, 'node-a');
    await a.q.update(maintenanceLeases).set({ nextRunAt: now + 30 + LEASE_CLOCK_LEEWAY });
    expect((await leases.claimDue(JOBS, now, 'node-b')).size).toBe(0);
    await a.q.update(maintenanceLeases).set({ nextRunAt: now + 30 + LEASE_CLOCK_LEEWAY + 1 });
    expect([...(await leases.claimDue(JOBS, now, 'node-b'))].sort()).toEqual(['retention', 'task_deadlines']);
  });
});

describe('maintenance of two brokers on one database', () => {
  const ran = (tb: TestBroker, job: string) =>
    tb.logs.filter((l) => l.includes('"maintenance.claimed"') && l.includes(`"${job}"`)).length;

  it('runs retention, task deadlines and grace responses on one broker per period', async () => {
    const dir = await tempDir();
    const clock = new TestClock();
    const a = await startBroker({}, { dir, clock });
    cleanup.push(() => a.close());
    const b = await startBroker({}, { dir, clock });
    cleanup.push(() => b.close());
    const db = await openDb((await dbEnv(dir)).ERRAND_DB_URL ?? `file:${dir}/errand.db`);
    cleanup.push(() => db.close());

    const expired = (jti: string) => ({
      jti,
      clientId: 'c1',
      subject: 'u1',
      audience: 'https://rs.example',
      scope: 'read',
      kid: 'k1',
      issuedAt: clock.now() - 3 * 86_400,
      expiresAt: clock.now() - 2 * 86_400,
      taskId: null,
    });
    for (const round of [1, 2, 3]) {
      await db.q.insert(issuedTokens).values(expired(`old-${round}`));
      await Promise.all([a.broker.maintain(), b.broker.maintain()]);
      for (const job of ['retention', 'task_deadlines', 'grace_responses']) {
        expect(ran(a, job) + ran(b, job), `${job} after round ${round}`).toBe(round);
      }
      expect(await db.q.select().from(issuedTokens)).toEqual([]);
      // The next period: the maintenance interval is at most 30 s.
      clock.advance(30);
    }
  });
});
