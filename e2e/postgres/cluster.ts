import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** A PostgreSQL server started for tests or the benchmark: `url` is its superuser (admin) URL. */
export interface PostgresCluster {
  url: string;
  stop(): Promise<void>;
}

/** The OS user the server runs as when the current user is root (initdb and postgres refuse root). */
const SERVICE_USER = 'postgres';
const SUPERUSER = 'postgres';

/** The server binaries: `pg_config --bindir` (Debian's `postgresql` package puts them there). */
export function postgresBinDir(): string | undefined {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** uid and gid of an OS user, from /etc/passwd. */
function osUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error(
      `running as root, but there is no "${name}" OS user to run PostgreSQL as (initdb and postgres refuse root): install Debian's postgresql package, which creates it`,
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const address = srv.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/**
 * Starts a fresh PostgreSQL cluster in a temporary folder: initdb, then `postgres` on a free port of
 * 127.0.0.1 (its unix socket inside the folder), `max_connections=300`. `durable: false` (the tests)
 * turns off fsync, synchronous commit and full-page writes, which only matter after a crash of the
 * machine; `durable: true` (the benchmark) keeps PostgreSQL's defaults so the numbers mean something.
 * `stop()` shuts the server down (fast shutdown) and removes the folder.
 *
 * As root, the folder is handed to the `postgres` OS user and the binaries run as that user; any
 * other user runs them as itself.
 */
export async function startPostgres(opts: { durable?: boolean } = {}): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  if (!bin) {
    throw new Error(
      "PostgreSQL server binaries not found (pg_config --bindir has no initdb/postgres): install Debian's postgresql package (sudo apt-get install postgresql)",
    );
  }
  const owner = process.getuid?.() === 0 ? osUser(SERVICE_USER) : undefined;
  const root = mkdtempSync(join(tmpdir(), 'errand-pg-'));
  if (owner) chownSync(root, owner.uid, owner.gid);
  const dataDir = join(root, 'data');
  const as = owner ? { uid: owner.uid, gid: owner.gid } : {};
  // A minimal environment: the server reads nothing else from it, and HOME must not be root's.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C', HOME: root };
  try {
    execFileSync(
      join(bin, 'initdb'),
      [
        '-D',
        dataDir,
        '-U',
        SUPERUSER,
        '--auth=trust',
        '--encoding=UTF8',
        // Not C: the server's default differs from what databases.ts asks for, as on most servers,
        // so a test database that forgot LC_COLLATE 'C' shows it (cluster.test.ts).
        '--locale=C.UTF-8',
        ...(opts.durable ? [] : ['--no-sync']),
      ],
      { ...as, env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // Test-only: any local process may connect over 127.0.0.1 as any role without a password. The
    // server listens on 127.0.0.1 alone and lives as long as one test run; never use this setup
    // for a server that holds anything.
    writeFileSync(join(dataDir, 'pg_hba.conf'), 'host all all 127.0.0.1/32 trust\n');
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`initdb failed${stderr ? `: ${stderr}` : ''}`, { cause: err });
  }

  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const settings = {
      listen_addresses: '127.0.0.1',
      port: String(port),
      unix_socket_directories: root,
      max_connections: '300',
      ...(opts.durable ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
    };
    const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const server = spawn(join(bin, 'postgres'), args, { ...as, env, cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
    try {
      await waitReady(server, url);
    } catch (err) {
      lastError = err as Error;
      await shutdown(server);
      continue;
    }
    // A test run that dies without teardown must not leave the server behind.
    const onExit = () => server.kill('SIGQUIT');
    process.once('exit', onExit);
    return {
      url,
      async stop() {
        process.off('exit', onExit);
        await shutdown(server);
        rmSync(root, { recursive: true, force: true });
      },
    };
  }
  rmSync(root, { recursive: true, force: true });
  throw lastError ?? new Error('PostgreSQL did not start');
}

/** Waits until the server accepts a connection; fails with its log if it exits first. */
async function waitReady(server: ChildProcess, url: string): Promise<void> {
  let log = '';
  server.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  let exited = false;
  server.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`PostgreSQL exited while starting: ${log.trim()}`);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > deadline)
        throw new Error(`PostgreSQL did not accept connections in 30 s: ${log.trim()}`, { cause: err });
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Fast shutdown (SIGINT: abort transactions, disconnect, stop); SIGQUIT if that takes over 10 s. */
async function shutdown(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  server.kill('SIGINT');
  const timer = setTimeout(() => server.kill('SIGQUIT'), 10_000);
  await exited;
  clearTimeout(timer);
}
