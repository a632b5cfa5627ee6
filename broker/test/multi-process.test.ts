import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Db, openDb } from '../../db/open.js';
import { auditEvents, issuedTokens, signingKeys } from '../../db/schema/index.js';
import { ClientStore } from '../../db/stores/client-store.js';
import { dropTestDatabase } from '../../e2e/postgres/databases.js';
import { clientAssertion, dbEnv, freePort, postForm, type TestAgent, waitChildReady } from './fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const RESOURCE = 'https://shared.example.test/api';
const PERIOD = 12;
const AHEAD = 4;

interface Proc {
  url: string;
  child: ChildProcess;
  stderr: string[];
}

let dir: string;
/** ERRAND_DB_URL of the shared PostgreSQL database in postgres mode; empty on the embedded file. */
let dbSettings: Record<string, string> = {};
let issuer: string;
let procs: Proc[] = [];
let db: Db;
let agent: TestAgent;

function waitReady(proc: Proc): Promise<void> {
  return waitChildReady(proc.url, proc.child, proc.stderr);
}

function startProcess(port: number): Proc {
  const stderr: string[] = [];
  const child = spawn(process.execPath, ['--conditions=@errand/source', '--import', 'tsx', 'broker/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      ERRAND_PORT: String(port),
      ERRAND_ISSUER: issuer,
      ERRAND_DATA_DIR: dir,
      ...dbSettings,
      ERRAND_KEY_ROTATION_PERIOD: String(PERIOD),
      ERRAND_KEY_PUBLISH_AHEAD: String(AHEAD),
      // A publish-ahead this short needs an uncached JWKS and a tight skew (README "Key rotation and credential lifetimes").
      ERRAND_JWKS_MAX_AGE: '0',
      ERRAND_CLOCK_SKEW: '1',
      ERRAND_ACCESS_TOKEN_TTL: '30',
      ERRAND_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
  child.stdout?.on('data', (d: Buffer) => stderr.push(d.toString()));
  return { url: `http://127.0.0.1:${port}`, child, stderr };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'errand-mp-'));
  dbSettings = await dbEnv(dir);
  const ports = [await freePort(), await freePort()];
  issuer = `http://127.0.0.1:${ports[0]}`;
  // Both processes start at once on a fresh directory: master key, migrations and first key race.
  procs = ports.map(startProcess);
  await Promise.all(
    procs.map(async (_, i) => {
      // A free port can be taken by another test's process before ours binds it: start again on another.
      for (let attempt = 0; ; attempt++) {
        try {
          return await waitReady(procs[i]!);
        } catch (err) {
          if (attempt >= 2 || !procs[i]!.stderr.join('').includes('already in use')) throw err;
          procs[i] = startProcess(await freePort());
        }
      }
    }),
  );

  db = await openDb(dbSettings.ERRAND_DB_URL ?? `file:${join(dir, 'errand.db')}`);
  const clients = new ClientStore(db);
  await clients.insertResource({ id: 'res_shared', url: RESOURCE, name: 'shared', scopes: ['read'], createdAt: 0 });
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  agent = { clientId: 'cli_multi', privateKey, publicJwk, kid: 'k1' };
  await clients.insert({
    id: agent.clientId,
    kind: 'agent',
    name: 'multi',
    ownerId: null,
    source: 'admin',
    status: 'active',
    authMethod: 'private_key_jwt',
    secretHash: null,
    jwks: { keys: [publicJwk] },
    jwksUri: null,
    redirectUris: [],
    grantTypes: ['client_credentials'],
    scope: ['read'],
    resources: [],
    applicationType: null,
    metadata: {},
    createdAt: 0,
    lastUsedAt: null,
    expiresAt: null,
    cachedUntil: null,
  });
}, 120_000);

afterAll(async () => {
  for (const p of procs) p.child.kill('SIGTERM');
  await Promise.all(
    procs.map((p) => new Promise((r) => (p.child.exitCode !== null ? r(null) : p.child.once('exit', r)))),
  );
  db?.close();
  await dropTestDatabase(dir);
  rmSync(dir, { recursive: true, force: true });
});

const tokenAt = async (url: string, assertion?: string) =>
  postForm(`${url}/token`, {
    grant_type: 'client_credentials',
    resource: RESOURCE,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion ?? (await clientAssertion(agent, issuer)),
  });

describe('two broker processes on one database', () => {
  test('a client assertion used on one process is refused as a replay on the other', async () => {
    const assertion = await clientAssertion(agent, issuer);
    expect((await tokenAt(procs[0]!.url, assertion)).status).toBe(200);
    const replay = await tokenAt(procs[1]!.url, assertion);
    expect(replay.status).toBe(401);
    expect(await replay.json()).toMatchObject({ error: 'invalid_client' });
  });

  test('under load across key rotations: no jti reused, one key schedule, every key published before it signs', async () => {
    const seenKids = new Map<string, number>(); // kid → first time it appeared in any JWKS
    const issued: { jti: string; kid: string; at: number }[] = [];
    const deadline = Date.now() + (2 * PERIOD + 3) * 1000;
    const snapshot = async () => {
      for (const p of procs) {
        const jwks = (await (await fetch(`${p.url}/jwks.json`)).json()) as { keys: { kid: string }[] };
        for (const k of jwks.keys) if (!seenKids.has(k.kid)) seenKids.set(k.kid, Date.now() / 1000);
      }
    };
    await snapshot();
    let i = 0;
    while (Date.now() < deadline) {
      const batch = await Promise.all(
        [0, 1, 2, 3].map(async (n) => {
          const res = await tokenAt(procs[(i + n) % 2]!.url);
          expect(res.status).toBe(200);
          const { access_token: token } = (await res.json()) as { access_token: string };
          return {
            jti: decodeJwt(token).jti as string,
            kid: decodeProtectedHeader(token).kid as string,
            at: Date.now() / 1000,
          };
        }),
      );
      issued.push(...batch);
      i += 1;
      await snapshot();
    }

    expect(issued.length).toBeGreaterThan(50);
    expect(new Set(issued.map((t) => t.jti)).size).toBe(issued.length);
    const rows = await db.q.select({ jti: issuedTokens.jti }).from(issuedTokens);
    const stored = new Set(rows.map((r) => r.jti));
    for (const t of issued) expect(stored.has(t.jti)).toBe(true);

    // The schedule advanced (several keys signed) and no two keys share an activation time.
    const kidsUsed = new Set(issued.map((t) => t.kid));
    expect(kidsUsed.size).toBeGreaterThanOrEqual(2);
    const keys = await db.q.select().from(signingKeys);
    const activations = keys.map((k) => k.activatesAt).sort((a, b) => a - b);
    for (let k = 1; k < activations.length; k++)
      expect(activations[k]! - activations[k - 1]!).toBeGreaterThanOrEqual(PERIOD - 1);
    const created = await db.q.select().from(auditEvents).where(eq(auditEvents.type, 'key.created'));
    const createdKids = created.map((e) => (JSON.parse(e.details ?? '{}') as { kid: string }).kid);
    expect(new Set(createdKids).size).toBe(createdKids.length);
    // Only one key per rotation: created keys ≈ elapsed periods + 1, never one per process.
    expect(createdKids.length).toBeLessThanOrEqual(Math.ceil((2 * PERIOD + 10) / PERIOD) + 1);

    // A key was visible in the JWKS of the processes before the first token it signed.
    const firstKid = issued[0]!.kid;
    for (const kid of kidsUsed) {
      if (kid === firstKid) continue;
      const firstUse = Math.min(...issued.filter((t) => t.kid === kid).map((t) => t.at));
      expect(seenKids.get(kid)).toBeDefined();
      expect(seenKids.get(kid)!).toBeLessThan(firstUse - (AHEAD - 2));
    }
    for (const p of procs) expect(p.stderr.join('')).not.toMatch(/"level":"error"/);
  }, 90_000);
});
