/**
 * Interleaved measurement for the bench (README "Performance"): windows of each configuration in
 * rotated rounds, and the token rows' summary over the rounds with per-round ratios to the peer.
 */
import { median } from './postgres.js';

/** One measured load: a single run, one window, or a summary over windows. */
export interface Row {
  name: string;
  server: 'errand' | 'peer' | 'in-process';
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  failed: number;
  /** CPU µs of the server process per request answered, when measured. */
  cpuUs?: number;
}

/**
 * Interleaved measurement (the machine is shared and noisy): a short warm-up window of each
 * configuration, then `rounds` rounds of one `seconds` window each, the order rotated each round so
 * that no configuration always follows the same one and a neighbour's burst lands on every side
 * alike. Returns each configuration's windows in round order (index r is round r).
 */
export async function interleave<C extends { label: string }, W>(
  configs: C[],
  measure: (cfg: C, seconds: number) => Promise<W>,
  opts: { rounds: number; seconds: number; warmup: number },
): Promise<Map<string, W[]>> {
  for (const cfg of configs) await measure(cfg, opts.warmup);
  const windows = new Map<string, W[]>(configs.map((c) => [c.label, []]));
  for (let r = 0; r < opts.rounds; r++) {
    const order = configs.map((_, i) => configs[(i + r) % configs.length]!);
    for (const cfg of order) windows.get(cfg.label)!.push(await measure(cfg, opts.seconds));
  }
  return windows;
}

/** One window of one operation. */
export interface OpWindow {
  row: Row;
  /** Server CPU µs per request answered in the window. */
  cpuUs: number;
}

/** An operation over all its rounds: medians, with min–max spreads, and the per-round ratios to the peer. */
export interface OpRow extends Row {
  key: string;
  rounds: number;
  rpsMin: number;
  rpsMax: number;
  cpuUs: number;
  /** Median over rounds of (req/s ÷ the peer's req/s in the same round); null without the peer. */
  vsPeer: number | null;
  vsPeerMin: number | null;
  vsPeerMax: number | null;
  /** Median over rounds of (CPU µs per request ÷ the peer's in the same round). */
  cpuVsPeer: number | null;
  cpuVsPeerMin: number | null;
  cpuVsPeerMax: number | null;
}

export function summariseOp(
  op: { key: string; label: string; server: 'errand' | 'peer' },
  mine: OpWindow[],
  peer: OpWindow[] | undefined,
): OpRow {
  const r2 = (v: number) => Math.round(v * 100) / 100;
  const rps = mine.map((w) => w.row.rps);
  const perRound = (f: (w: OpWindow, p: OpWindow) => number) => {
    if (!peer || op.server === 'peer') return null;
    const v = mine.map((w, i) => (peer[i] ? f(w, peer[i]!) : Number.NaN)).filter((x) => Number.isFinite(x));
    return v.length ? v : null;
  };
  const ratios = perRound((w, p) => w.row.rps / p.row.rps);
  const cpuRatios = perRound((w, p) => w.cpuUs / p.cpuUs);
  const spread = (v: number[] | null) =>
    v ? { med: r2(median(v)), min: r2(Math.min(...v)), max: r2(Math.max(...v)) } : { med: null, min: null, max: null };
  const ratio = spread(ratios);
  const cpuRatio = spread(cpuRatios);
  return {
    key: op.key,
    name: op.label,
    server: op.server,
    rounds: mine.length,
    rps: Math.round(median(rps)),
    rpsMin: Math.min(...rps),
    rpsMax: Math.max(...rps),
    p50: median(mine.map((w) => w.row.p50)),
    p99: median(mine.map((w) => w.row.p99)),
    ok: mine.reduce((a, w) => a + w.row.ok, 0),
    failed: mine.reduce((a, w) => a + w.row.failed, 0),
    cpuUs: Math.round(median(mine.map((w) => w.cpuUs).filter((v) => Number.isFinite(v)))),
    vsPeer: ratio.med,
    vsPeerMin: ratio.min,
    vsPeerMax: ratio.max,
    cpuVsPeer: cpuRatio.med,
    cpuVsPeerMin: cpuRatio.min,
    cpuVsPeerMax: cpuRatio.max,
  };
}
