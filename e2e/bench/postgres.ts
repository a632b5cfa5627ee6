import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { startPostgres } from '../postgres/cluster.js';

/** What the bench needs of the PostgreSQL server: the database Errand runs on, and how to clean up. */
export interface BenchDatabase {
  /** `ERRAND_DB_URL` for the broker nodes: a fresh database made for this run. */
  url: string;
  /** The postmaster's pid, when the server runs on this machine (its CPU is then measured). */
  postmaster: number | null;
  /** The server's version and durability settings, for the report. */
  settings: string;
  /** Drops the database (and stops the server if the bench started it). */
  drop(): Promise<void>;
}

/**
 * A fresh database for one run: on the server of `BENCH_POSTGRES_URL` (an administrator's URL), or
 * else on a durable (fsync on) cluster started by the e2e PostgreSQL fixture. Byte-order collation,
 * like the embedded engine's.
 */
export async function benchDatabase(log: (msg: string) => void): Promise<BenchDatabase> {
  let cluster: { stop(): Promise<void> } | null = null;
  let admin = process.env.BENCH_POSTGRES_URL;
  if (!admin) {
    const started = await startPostgres({ durable: true });
    cluster = started;
    admin = started.url;
    log('postgres: started a durable cluster');
  }
  const name = `errand_bench_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  let postmaster: number | null = null;
  let settings = '';
  try {
    await client.query(`CREATE DATABASE ${name} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`);
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    postmaster = parentOf(Number(rows[0]?.pid));
    const found = await client.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'server_version')`,
    );
    settings = found.rows.map((r) => `${r.name}=${r.setting}`).join(', ');
    log(`postgres: ${settings}; database ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    postmaster,
    settings,
    async drop() {
      const c = new pg.Client({ connectionString: admin });
      try {
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } catch (err) {
        log(`postgres: could not drop ${name}: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        await c.end().catch(() => undefined);
        await cluster?.stop();
      }
    },
  };
}

/** The fields of /proc/<pid>/stat after the command name (field 3 onwards), or null if gone. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

function parentOf(pid: number): number | null {
  const ppid = Number(statFields(pid)?.[1]);
  return Number.isInteger(ppid) && ppid > 1 ? ppid : null;
}

let ticksPerSecond = 0;
/** CPU seconds (user + system) a process has used so far, 0 if it is gone. */
export function cpuSeconds(pid: number): number {
  if (!ticksPerSecond) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  const f = statFields(pid);
  // utime and stime are fields 14 and 15.
  return f ? (Number(f[11]) + Number(f[12])) / ticksPerSecond : 0;
}

/** The postmaster and every process it started (backends, writers, the checkpointer). */
export function serverProcesses(postmaster: number): number[] {
  const pids = [postmaster];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (parentOf(Number(entry)) === postmaster) pids.push(Number(entry));
  }
  return pids;
}

/** CPU seconds of each process by pid, to take differences of (processes started since count from 0). */
export function cpuSnapshot(pids: number[]): Map<number, number> {
  return new Map(pids.map((pid) => [pid, cpuSeconds(pid)]));
}

export function cpuSince(before: Map<number, number>, pids: number[]): number {
  let total = 0;
  for (const pid of pids) total += cpuSeconds(pid) - (before.get(pid) ?? 0);
  return total;
}

/** Group-commit counters of one broker's `/metrics`: transactions, groups, seconds from BEGIN to COMMIT. */
export interface GroupCommits {
  transactions: number;
  groups: number;
  seconds: number;
}

export async function groupCommits(base: string, token: string): Promise<GroupCommits> {
  const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  const text = res.status === 200 ? await res.text() : '';
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    transactions: value('errand_db_group_commit_size_sum'),
    groups: value('errand_db_group_commit_size_count'),
    seconds: value('errand_db_group_commit_duration_seconds_sum'),
  };
}

export async function groupCommitsOf(bases: string[], token: string): Promise<GroupCommits> {
  const all = await Promise.all(bases.map((b) => groupCommits(b, token)));
  return all.reduce(
    (a, b) => ({
      transactions: a.transactions + b.transactions,
      groups: a.groups + b.groups,
      seconds: a.seconds + b.seconds,
    }),
    { transactions: 0, groups: 0, seconds: 0 },
  );
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return 0;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The value at quantile `p` of the sorted `values` (nearest rank). */
export function quantile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : Number.NaN;
}
