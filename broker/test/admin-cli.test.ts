import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, exportJWK, generateKeyPair, type JSONWebKeySet, jwtVerify } from 'jose';
import Database from 'libsql';
import { afterAll, describe, expect, test } from 'vitest';
import { postgresMode } from '../../e2e/postgres/databases.js';
import { freePort } from './fixtures.js';

/**
 * The admin CLI as operators run it: the real `errand-admin` entry point (broker/cli/main.ts, which
 * `npm run build` compiles to the package's bin) in a child process, against a data directory of
 * its own, beside real broker processes on the same directory.
 */

const ROOT = join(import.meta.dirname, '..', '..');
const RESOURCE = 'https://notes.cli.example.test/api';
const PASSWORD = 'first admin password 1';
/** Generous: each child compiles TypeScript on a loaded two-core machine. */
const SLOW = 180_000;

const dirs: string[] = [];
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `errand-admin ARGS` with the given settings (and standard input); resolves when it exits. */
function cli(args: string[], env: Record<string, string>, stdin = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=@errand/source', '--import', 'tsx', 'broker/cli/main.ts', ...args],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH, ...env },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const json = (r: Run) => JSON.parse(r.stdout) as Record<string, unknown>;
const jsonError = (r: Run) =>
  JSON.parse(r.stderr.trim().split('\n').at(-1) ?? '') as { error: string; error_description: string };

interface BrokerProc {
  url: string;
  child: ChildProcess;
  output: string[];
  exited: Promise<number | null>;
}

/** Starts the real broker (broker/main.ts) on `env`'s data directory; resolves once /readyz answers 200. */
async function startBroker(env: Record<string, string>): Promise<BrokerProc> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const output: string[] = [];
  const child = spawn(process.execPath, ['--conditions=@errand/source', '--import', 'tsx', 'broker/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ERRAND_PORT: String(port), ERRAND_ISSUER: url, ERRAND_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the broker exited with ${child.exitCode}:\n${output.join('')}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, child, output, exited };
}

async function stopBroker(b: BrokerProc): Promise<void> {
  b.child.kill('SIGTERM');
  expect(await b.exited).toBe(0);
}

async function clientCredentials(url: string, clientId: string, secret: string): Promise<Response> {
  return fetch(`${url}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: RESOURCE, scope: 'notes:read' }),
  });
}

async function accessToken(url: string, clientId: string, secret: string): Promise<string> {
  const res = await clientCredentials(url, clientId, secret);
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

function signIn(url: string, username: string, password: string): Promise<Response> {
  return fetch(`${url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
}

// Backup and restore of the embedded file (VACUUM INTO) between data directories.
describe.skipIf(postgresMode())('errand-admin', () => {
  test('help, unknown commands and arguments, and passwords kept off the command line', { timeout: SLOW }, async () => {
    const env = { ERRAND_DATA_DIR: tempDir('errand-cli-help-') };
    const overview = await cli(['--help'], env);
    expect(overview.code).toBe(0);
    for (const name of ['bootstrap-admin', 'reset-password', 'create-agent', 'list-agents', 'create-resource']) {
      expect(overview.stdout).toContain(name);
    }
    for (const name of ['create-trusted-issuer', 'list-trusted-issuers', 'rotate-keys', 'end-task', 'export-audit']) {
      expect(overview.stdout).toContain(name);
    }
    const help = await cli(['backup', '--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('The master key is NOT included unless --include-master-key');

    const unknown = await cli(['make-coffee', '--json'], env);
    expect(unknown.code).toBe(2);
    expect(jsonError(unknown).error).toBe('usage');
    const badOption = await cli(['list-agents', '--colour'], env);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toContain("Unknown option '--colour'");
    expect((await cli(['end-task'], env)).code).toBe(2);

    const inArgv = await cli(['bootstrap-admin', '--username', 'root', '--password', PASSWORD], env);
    expect(inArgv.code).toBe(2);
    expect(inArgv.stderr).toContain('--password-stdin or --password-file');
    const noSource = await cli(['bootstrap-admin', '--username', 'root'], env);
    expect(noSource.code).toBe(2);
    const both = await cli(
      ['bootstrap-admin', '--username', 'root', '--password-stdin', '--password-file', '/nope'],
      env,
    );
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('not both');
    const missingFile = await cli(['bootstrap-admin', '--username', 'root', '--password-file', '/nonexistent/pw'], env);
    expect(missingFile.code).toBe(2);
    expect(missingFile.stderr).toContain('ENOENT');
    // Nothing above created an installation; a listing says there is none rather than creating one.
    const none = await cli(['list-agents', '--json'], env);
    expect(none.code).toBe(1);
    expect(jsonError(none)).toMatchObject({ error: 'not_found' });
    expect(() => statSync(join(env.ERRAND_DATA_DIR, 'errand.db'))).toThrow();
  });

  test('backup and restore refuse a PostgreSQL URL, naming pg_dump and pg_restore', { timeout: SLOW }, async () => {
    const dir = tempDir('errand-cli-pg-');
    const file = join(dir, 'errand-backup.db');
    writeFileSync(file, 'not touched');
    for (const scheme of ['postgres', 'postgresql']) {
      // Nothing listens on port 1: the refusal comes before any connection is tried.
      const env = {
        ERRAND_DATA_DIR: dir,
        ERRAND_DB_URL: `${scheme}://errand:pw-s3cret@127.0.0.1:1/errand?sslmode=verify-full&sslrootcert=/etc/ca.pem`,
        ERRAND_MASTER_KEY: randomBytes(32).toString('base64url'),
      };
      const backup = await cli(['backup', join(dir, 'new-backup.db'), '--json'], env);
      expect(backup.code, backup.stderr).toBe(1);
      expect(jsonError(backup).error).toBe('refused');
      expect(jsonError(backup).error_description).toContain(
        `ERRAND_DB_URL names the PostgreSQL database ${scheme}://127.0.0.1:1/errand: errand-admin backup copies the embedded file database only. Back PostgreSQL up with pg_dump -Fc`,
      );
      const restore = await cli(['restore', file, '--force'], env);
      expect(restore.code, restore.stderr).toBe(1);
      expect(restore.stderr).toContain('errand-admin restore writes the embedded file database only');
      expect(restore.stderr).toContain('pg_restore into an empty database');
      for (const run of [backup, restore]) expect(run.stderr + run.stdout).not.toContain('pw-s3cret');
    }
    expect(() => statSync(join(dir, 'new-backup.db'))).toThrow();
    expect(readFileSync(file, 'utf8')).toBe('not touched');
  });

  test('administration, audit export, a backup under load, and a restore on which old tokens still verify', {
    timeout: SLOW * 2,
  }, async () => {
    const dataA = tempDir('errand-cli-a-');
    const envA = { ERRAND_DATA_DIR: dataA };

    // The first administrator, with the password on standard input; never a second one by accident.
    const short = await cli(['bootstrap-admin', '--username', 'root', '--password-stdin', '--json'], envA, 'short\n');
    expect(short.code).toBe(1);
    expect(jsonError(short)).toMatchObject({ error: 'invalid_request' });
    expect(jsonError(short).error_description).toContain('at least 12 characters');
    const boot = await cli(
      ['bootstrap-admin', '--username', 'root', '--password-stdin', '--json'],
      envA,
      `${PASSWORD}\n`,
    );
    expect(boot.code, boot.stderr).toBe(0);
    const admin = json(boot);
    expect(admin).toMatchObject({ username: 'root', role: 'admin' });
    const again = await cli(
      ['bootstrap-admin', '--username', 'second', '--password-stdin', '--json'],
      envA,
      `${PASSWORD}\n`,
    );
    expect(again.code).toBe(1);
    expect(jsonError(again)).toMatchObject({ error: 'conflict' });
    const pwFile = join(dataA, '..', `${dataA.split('/').at(-1)}-pw`);
    writeFileSync(pwFile, 'second admin password\n', { mode: 0o600 });
    dirs.push(pwFile);
    const second = await cli(
      ['bootstrap-admin', '--username', 'second', '--password-file', pwFile, '--allow-existing', '--json'],
      envA,
    );
    expect(second.code, second.stderr).toBe(0);
    expect(json(second)).toMatchObject({ username: 'second', role: 'admin' });

    // Resources, agents and trusted issuers, through the admin API's own rules.
    const resource = await cli(
      ['create-resource', '--url', RESOURCE, '--name', 'Notes', '--scope', 'notes:read', '--json'],
      envA,
    );
    expect(resource.code, resource.stderr).toBe(0);
    expect(json(resource)).toMatchObject({ url: RESOURCE, scopes: ['notes:read'] });
    // --public: quarantined clients may get tokens for it (README "Quarantine of new registrations and findings").
    expect(json(resource)).toMatchObject({ public: false });
    const open = await cli(
      ['create-resource', '--url', `${RESOURCE}/open`, '--name', 'Open', '--scope', 'open:read', '--public', '--json'],
      envA,
    );
    expect(open.code, open.stderr).toBe(0);
    expect(json(open)).toMatchObject({ public: true });
    const duplicate = await cli(['create-resource', '--url', RESOURCE, '--name', 'x', '--scope', 'a', '--json'], envA);
    expect(duplicate.code).toBe(1);
    expect(jsonError(duplicate).error).toBe('conflict');
    const badUrl = await cli(['create-resource', '--url', 'not a url', '--name', 'x', '--scope', 'a'], envA);
    expect(badUrl.code).toBe(1);
    expect(badUrl.stderr).toContain('absolute http(s) URL');

    const agent = await cli(
      [
        'create-agent',
        '--name',
        'nightly bot',
        '--auth-method',
        'client_secret_basic',
        '--allow-static-secret',
        '--grant-type',
        'client_credentials',
        '--scope',
        'notes:read',
        '--resource',
        RESOURCE,
        '--json',
      ],
      envA,
    );
    expect(agent.code, agent.stderr).toBe(0);
    const { client_id: clientId, client_secret: secret } = json(agent) as { client_id: string; client_secret: string };
    expect(secret).toMatch(/^ecs_/);
    const unsafe = await cli(['create-agent', '--name', 'x', '--auth-method', 'client_secret_basic', '--json'], envA);
    expect(unsafe.code).toBe(1);
    expect(jsonError(unsafe).error).toBe('invalid_client_metadata');
    const noKey = await cli(['create-agent', '--name', 'keyless'], envA);
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toContain('private_key_jwt needs jwks or jwks_uri');
    const unknownOwner = await cli(['create-agent', '--name', 'x', '--owner', 'nobody', '--json'], envA);
    expect(unknownOwner.code).toBe(1);
    expect(jsonError(unknownOwner).error).toBe('not_found');

    const workload = await cli(
      ['create-agent', '--name', 'ci deployer', '--auth-method', 'workload_federation', '--as', 'second', '--json'],
      envA,
    );
    expect(workload.code, workload.stderr).toBe(0);
    const workloadId = (json(workload) as { client_id: string }).client_id;
    const { publicKey } = await generateKeyPair('ES256');
    const issuerDoc = {
      kind: 'ci',
      name: 'CI',
      issuer: 'https://ci.cli.example.test',
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'ci-1', alg: 'ES256' }] },
      rules: [{ match: { sub: 'repo:errand/*' }, agent_id: workloadId }],
    };
    const trusted = await cli(['create-trusted-issuer', '--file', '-', '--json'], envA, JSON.stringify(issuerDoc));
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(json(trusted)).toMatchObject({ issuer: 'https://ci.cli.example.test', status: 'active' });
    const notJson = await cli(['create-trusted-issuer', '--file', '-'], envA, '{ nope');
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain('not valid JSON');
    const badRule = await cli(
      ['create-trusted-issuer', '--file', '-', '--json'],
      envA,
      JSON.stringify({
        ...issuerDoc,
        issuer: 'https://other.example.test',
        rules: [{ match: { sub: 'x' }, agent_id: clientId }],
      }),
    );
    expect(badRule.code).toBe(1);
    expect(jsonError(badRule).error_description).toContain('workload_federation');

    const agents = json(await cli(['list-agents', '--json'], envA)) as { agents: { client_id: string }[] };
    expect(agents.agents.map((a) => a.client_id).sort()).toEqual([clientId, workloadId].sort());
    const listed = await cli(['list-agents'], envA);
    expect(listed.stdout).toContain('nightly bot');
    const resources = json(await cli(['list-resources', '--json'], envA)) as { resources: { url: string }[] };
    // The CLI registers nothing by itself: no built-in resources under its own idea of the issuer.
    expect(resources.resources.map((r) => r.url)).toEqual([RESOURCE, `${RESOURCE}/open`]);
    const issuers = json(await cli(['list-trusted-issuers', '--json'], envA)) as { trusted_issuers: unknown[] };
    expect(issuers.trusted_issuers).toHaveLength(1);
    const asStranger = await cli(['end-task', 'tsk_x', '--as', 'nobody'], envA);
    expect(asStranger.code).toBe(2);
    expect(asStranger.stderr).toContain('not an active administrator');
    const noTask = await cli(['end-task', 'tsk_unknown', '--json'], envA);
    expect(noTask.code).toBe(1);
    expect(jsonError(noTask)).toMatchObject({ error: 'not_found' });

    // The broker serves the same installation; the CLI works beside it.
    const brokerA = await startBroker(envA);
    const before = [await accessToken(brokerA.url, clientId, secret), await accessToken(brokerA.url, clientId, secret)];
    const rotated = await cli(['rotate-keys', '--json'], envA);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(json(rotated)).toMatchObject({ kid: expect.any(String), activates_at: expect.any(Number) });

    const newPassword = 'a brand new password 2';
    const reset = await cli(['reset-password', '--username', 'root', '--password-stdin', '--json'], envA, newPassword);
    expect(reset.code, reset.stderr).toBe(0);
    expect((await signIn(brokerA.url, 'root', PASSWORD)).status).toBe(401);
    expect((await signIn(brokerA.url, 'root', newPassword)).status).toBe(200);
    const resetNobody = await cli(
      ['reset-password', '--username', 'nobody', '--password-stdin', '--json'],
      envA,
      newPassword,
    );
    expect(resetNobody.code).toBe(1);
    expect(jsonError(resetNobody).error).toBe('not_found');

    // A backup taken while the broker answers token requests.
    const backupFile = join(tempDir('errand-cli-backups-'), 'errand-backup.db');
    let serving = true;
    let servedDuring = 0;
    const load = (async () => {
      while (serving) {
        const res = await clientCredentials(brokerA.url, clientId, secret);
        expect(res.status).toBe(200);
        servedDuring++;
      }
    })();
    const backup = await cli(['backup', backupFile, '--json'], envA);
    serving = false;
    await load;
    expect(backup.code, backup.stderr).toBe(0);
    expect(servedDuring).toBeGreaterThan(0);
    expect(json(backup)).toMatchObject({ includes_master_key: false, file: backupFile });
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    // One snapshot: each token's row and its audit event are written in one transaction, so the copy
    // holds both or neither of every token issued while it was taken.
    const copy = new Database(backupFile, { readonly: true });
    const countOf = (sql: string) => Number((copy.prepare(sql).get([clientId]) as { n: number }).n);
    const rows = countOf('SELECT count(*) AS n FROM issued_tokens WHERE client_id = ?');
    const issuedEvents = countOf(
      "SELECT count(*) AS n FROM audit_events WHERE type = 'token.issued' AND client_id = ?",
    );
    copy.close();
    expect(rows).toBeGreaterThanOrEqual(before.length);
    expect(issuedEvents).toBe(rows);
    const described = await cli(['restore', backupFile, '--check', '--json'], envA);
    expect(described.code).toBe(0);
    expect(json(described)).toMatchObject({ includes_master_key: false, schema_version: expect.any(String) });
    const overwrite = await cli(['backup', backupFile], envA);
    expect(overwrite.code).toBe(1);
    expect(overwrite.stderr).toContain('--force');

    // The audit export: JSON lines, filtered as the admin API filters, CLI changes marked as such.
    const exported = await cli(['export-audit', '--type', 'client.registered'], envA);
    expect(exported.code).toBe(0);
    const events = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; user_id: string; details: Record<string, unknown> });
    expect(events).toHaveLength(2);
    expect(events.every((e) => e.type === 'client.registered')).toBe(true);
    expect(events[0]!.details).toMatchObject({ via: 'cli', os_user: expect.any(String) });
    expect(events[0]!.user_id).toBe(admin.user_id);
    const bootstrapped = await cli(['export-audit', '--type', 'user.bootstrapped'], envA);
    expect(JSON.parse(bootstrapped.stdout)).toMatchObject({ details: { via: 'cli', source: 'cli' } });
    expect(bootstrapped.stdout).not.toContain(PASSWORD);
    const resetEvents = await cli(['export-audit', '--type', 'user.password_reset'], envA);
    expect(resetEvents.stdout).not.toContain(newPassword);
    const exportFile = join(tempDir('errand-cli-export-'), 'audit.jsonl');
    const toFile = await cli(['export-audit', '--result', 'allowed', '--output', exportFile, '--json'], envA);
    expect(json(toFile)).toMatchObject({ file: exportFile });
    expect(readFileSync(exportFile, 'utf8').trim().split('\n').length).toBe(
      (json(toFile) as { events: number }).events,
    );
    const existing = await cli(['export-audit', '--output', exportFile, '--json'], envA);
    expect(existing.code).toBe(1);
    expect(jsonError(existing)).toMatchObject({ error: 'conflict' });
    const badFilter = await cli(['export-audit', '--result', 'maybe', '--json'], envA);
    expect(badFilter.code).toBe(1);
    expect(jsonError(badFilter).error_description).toContain('result');

    // A running installation is never restored over.
    const inUse = await cli(['restore', backupFile, '--force', '--json'], envA);
    expect(inUse.code).toBe(1);
    expect(jsonError(inUse).error_description).toContain('in use');
    await stopBroker(brokerA);

    // A new installation: without the master key, or with another one, nothing is changed.
    const dataB = tempDir('errand-cli-b-');
    const envB = { ERRAND_DATA_DIR: dataB };
    const noKey2 = await cli(['restore', backupFile], envB);
    expect(noKey2.code).toBe(1);
    expect(noKey2.stderr).toContain('does not include the master key');
    const wrongKey = await cli(['restore', backupFile], {
      ...envB,
      ERRAND_MASTER_KEY: randomBytes(32).toString('hex'),
    });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toContain('does not decrypt');
    expect(() => statSync(join(dataB, 'errand.db'))).toThrow();
    const notBackup = join(dataB, 'not-a-backup.db');
    writeFileSync(notBackup, 'hello');
    expect((await cli(['restore', notBackup], envB)).code).toBe(1);

    copyFileSync(join(dataA, 'master.key'), join(dataB, 'master.key'));
    const restored = await cli(['restore', backupFile, '--json'], envB);
    expect(restored.code, restored.stderr).toBe(0);
    expect(json(restored)).toMatchObject({ master_key_source: 'configuration', database: join(dataB, 'errand.db') });
    const twice = await cli(['restore', backupFile], envB);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('--force');
    expect((await cli(['restore', backupFile, '--force'], envB)).code).toBe(0);

    // The broker starts on the restored copy; tokens issued before the backup verify with its keys.
    const brokerB = await startBroker(envB);
    const jwks = createLocalJWKSet((await (await fetch(`${brokerB.url}/jwks.json`)).json()) as JSONWebKeySet);
    for (const token of before) {
      const { payload } = await jwtVerify(token, jwks);
      expect(payload.client_id ?? payload.sub).toBe(clientId);
    }
    expect((await clientCredentials(brokerB.url, clientId, secret)).status).toBe(200);
    expect((await signIn(brokerB.url, 'root', newPassword)).status).toBe(200);
    await stopBroker(brokerB);

    // A backup that carries its master key restores where no key is set, and writes the key file.
    const withKey = join(tempDir('errand-cli-backups-'), 'with-key.db');
    const keyed = await cli(['backup', withKey, '--include-master-key', '--json'], envA);
    expect(json(keyed)).toMatchObject({ includes_master_key: true });
    const dataC = tempDir('errand-cli-c-');
    const restoredC = await cli(['restore', withKey, '--json'], { ERRAND_DATA_DIR: dataC });
    expect(restoredC.code, restoredC.stderr).toBe(0);
    expect(json(restoredC)).toMatchObject({ master_key_source: 'backup' });
    expect(readFileSync(join(dataC, 'master.key'), 'utf8')).toBe(readFileSync(join(dataA, 'master.key'), 'utf8'));
    expect(statSync(join(dataC, 'master.key')).mode & 0o777).toBe(0o600);
    const listC = await cli(['list-agents', '--json'], { ERRAND_DATA_DIR: dataC });
    expect((json(listC) as { agents: unknown[] }).agents).toHaveLength(2);
  });

  test('ERRAND_BOOTSTRAP_ADMIN_* creates the first administrator at start, once', { timeout: SLOW }, async () => {
    const data = tempDir('errand-cli-env-');
    const refused = await cli(['list-agents'], {
      ERRAND_DATA_DIR: data,
      ERRAND_BOOTSTRAP_ADMIN_USERNAME: 'ops',
      ERRAND_BOOTSTRAP_ADMIN_PASSWORD: 'too-short',
    });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('ERRAND_BOOTSTRAP_ADMIN_PASSWORD: must have at least 12 characters');
    expect(refused.stderr).not.toContain('too-short');

    const secretPassword = 'container admin password 3';
    const env = {
      ERRAND_DATA_DIR: data,
      ERRAND_BOOTSTRAP_ADMIN_USERNAME: 'ops',
      ERRAND_BOOTSTRAP_ADMIN_PASSWORD: secretPassword,
    };
    const first = await startBroker(env);
    expect((await signIn(first.url, 'ops', secretPassword)).status).toBe(200);
    await stopBroker(first);
    const out = first.output.join('');
    expect(out).toContain('"event":"user.bootstrapped"');
    expect(out).not.toContain(secretPassword);
    // With an administrator in place no setup link is offered.
    expect(out).not.toContain('/setup?token=');

    const later = await startBroker({ ...env, ERRAND_BOOTSTRAP_ADMIN_PASSWORD: 'another password 4' });
    expect((await signIn(later.url, 'ops', secretPassword)).status).toBe(200);
    expect((await signIn(later.url, 'ops', 'another password 4')).status).toBe(401);
    await stopBroker(later);
    expect(later.output.join('')).toContain('"event":"bootstrap_admin.ignored"');

    const events = await cli(['export-audit', '--type', 'user.bootstrapped'], { ERRAND_DATA_DIR: data });
    const lines = events.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ details: { source: 'environment', username: 'ops' } });
    expect(JSON.parse(lines[0]!).details.via).toBeUndefined();
  });
});
