import { describe, expect, test } from 'vitest';
import { interleave, type OpWindow, summariseOp } from './interleave.js';

const win = (rps: number, cpuUs: number, p99 = 10, failed = 0): OpWindow => ({
  row: { name: 'w', server: 'errand', rps, p50: 5, p99, ok: rps, failed },
  cpuUs,
});

describe('interleaved measurement', () => {
  test('warms each configuration up once, then rotates the order every round', async () => {
    const calls: string[] = [];
    const configs = [{ label: 'a' }, { label: 'b' }, { label: 'c' }];
    const windows = await interleave(
      configs,
      async (cfg, seconds) => {
        calls.push(`${cfg.label}${seconds}`);
        return calls.length;
      },
      { rounds: 3, seconds: 4, warmup: 1 },
    );
    expect(calls).toEqual(['a1', 'b1', 'c1', 'a4', 'b4', 'c4', 'b4', 'c4', 'a4', 'c4', 'a4', 'b4']);
    // Windows by label in round order; warm-ups are not kept.
    expect(windows.get('a')).toEqual([4, 9, 11]);
    expect(windows.get('c')).toEqual([6, 8, 10]);
  });

  test('reports the median of per-round ratios to the peer, not the ratio of medians', () => {
    const peer = [win(1000, 500), win(500, 1000), win(2000, 400)];
    // Each round the operation runs at 1.2× the peer's rate whatever the peer did that round.
    const mine = [win(1200, 600), win(600, 900), win(2400, 600)];
    const row = summariseOp({ key: 'exchange', label: 'exchange', server: 'errand' }, mine, peer);
    expect(row.vsPeer).toBe(1.2);
    expect([row.vsPeerMin, row.vsPeerMax]).toEqual([1.2, 1.2]);
    expect(row.rps).toBe(1200);
    expect([row.rpsMin, row.rpsMax]).toEqual([600, 2400]);
    // CPU ratios per round: 1.2, 0.9, 1.5.
    expect(row.cpuVsPeer).toBe(1.2);
    expect([row.cpuVsPeerMin, row.cpuVsPeerMax]).toEqual([0.9, 1.5]);
    expect(row.cpuUs).toBe(600);
  });

  test('has no ratio for the peer itself or without the peer, and adds up failures', () => {
    const peer = [win(1000, 500), win(1000, 500)];
    const self = summariseOp({ key: 'peer', label: 'peer', server: 'peer' }, peer, peer);
    expect(self.vsPeer).toBeNull();
    expect(self.cpuVsPeer).toBeNull();
    const alone = summariseOp(
      { key: 'cc', label: 'cc', server: 'errand' },
      [win(900, 1, 10, 2), win(800, 1, 10, 3)],
      undefined,
    );
    expect(alone.vsPeer).toBeNull();
    expect(alone.failed).toBe(5);
  });
});
