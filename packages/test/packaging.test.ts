import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { userApi } from '../../broker/test/delegation-fixtures.js';
import {
  addResource,
  adminApi,
  createUser,
  freePort,
  startBroker,
  type TestBroker,
} from '../../broker/test/fixtures.js';

/**
 * The packages as people get them: `npm pack` each workspace package, install the tarballs into a
 * fresh project outside the repository (their dependencies come from the registry or npm's cache),
 * and run there the packages' README examples, which import them by name: a tool server protected
 * with @errand/guard (server.mjs), called by an agent that gets its token with @errand/agent from a
 * real broker (agent.mjs). The `.d.ts` files are checked by compiling a TypeScript file against the
 * installed packages.
 */

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const PACKAGES = ['protocol', 'guard', 'agent'];
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/** A `js` code block of a package README, found by its first line (`// server.mjs`). */
function readmeExample(pkg: string, file: string): string {
  const readme = readFileSync(join(ROOT, 'packages', pkg, 'README.md'), 'utf8');
  const block = new RegExp(`\`\`\`js\\n// ${file.replace('.', '\\.')}\\n([\\s\\S]*?)\`\`\``).exec(readme)?.[1];
  if (!block) throw new Error(`packages/${pkg}/README.md has no ${file} example`);
  return block;
}

/** Runs a script of the installed project; resolves with its output when it exits 0. */
function runScript(file: string, env: Record<string, string>, children: ChildProcess[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [file], {
      cwd: project,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    child.stderr?.on('data', (d) => {
      err += d;
    });
    child.on('exit', (code, signal) =>
      code === 0 ? resolve(out) : reject(new Error(`${file} exited ${code ?? signal}: ${err}`)),
    );
  });
}

/** Uses the types of both packages; compiled with \`tsc --noEmit\` against the installed .d.ts files. */
const TYPES_CHECK = `
import { createGuard, type FetchHandler, guardFetch, type VerifiedAccess } from '@errand/guard';
import { requireAccess } from '@errand/guard/node';
import { ErrandAgent, type AgentTask } from '@errand/agent';
import { PATHS } from '@errand/protocol';

const guard = createGuard({ issuer: 'https://errand.example', resource: 'https://tools.example/mcp' });
const handler: FetchHandler = guardFetch(guard, (_req, access: VerifiedAccess) => Response.json({ sub: access.sub }));
const middleware = requireAccess(guard, { scopes: ['notes:read'] });
const path: '/token' = PATHS.token;
export async function start(): Promise<AgentTask | undefined> {
  const connect: typeof ErrandAgent.connect = ErrandAgent.connect;
  void connect; void handler; void middleware; void path;
  return undefined;
}
// @ts-expect-error: the guard's verify needs a request
void guard.verify();
`;

let tb: TestBroker;
let project: string;

beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), 'errand-packaging-'));
  // The tarballs come from a fresh build of the packages, so the test packs what is in the tree.
  await run(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--packages-only'], { cwd: ROOT });
  const { stdout } = await run(
    'npm',
    ['pack', '--json', '--pack-destination', project, ...PACKAGES.flatMap((p) => ['-w', `packages/${p}`])],
    { cwd: ROOT },
  );
  const packed = JSON.parse(stdout) as { name: string; filename: string; files: { path: string }[] }[];
  expect(packed.map((p) => p.name).sort()).toEqual(['@errand/agent', '@errand/guard', '@errand/protocol']);
  for (const p of packed) {
    // Only the build, the manifest and the README travel: no sources, tests or examples.
    expect(
      p.files.map((f) => f.path).filter((f) => !/^(dist\/.*\.(js|d\.ts)|package\.json|README\.md)$/.test(f)),
    ).toEqual([]);
  }
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({
      name: 'errand-packaging-check',
      private: true,
      type: 'module',
      dependencies: Object.fromEntries(packed.map((p) => [p.name, `file:./${p.filename}`])),
    }),
  );
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts'], { cwd: project });
  // Every @errand package is the packed one, never a namesake from the registry.
  const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { resolved?: string }>;
  };
  const errand = Object.entries(lock.packages).filter(([path]) => path.includes('node_modules/@errand/'));
  expect(errand.map(([path]) => path).sort()).toEqual(PACKAGES.map((p) => `node_modules/@errand/${p}`).sort());
  for (const [, entry] of errand) expect(entry.resolved ?? '').toMatch(/^file:/);
  // The packages' README examples, as written there.
  writeFileSync(join(project, 'server.mjs'), readmeExample('guard', 'server.mjs'));
  writeFileSync(join(project, 'agent.mjs'), readmeExample('agent', 'agent.mjs'));
  writeFileSync(join(project, 'check.ts'), TYPES_CHECK);
  tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true', ERRAND_CIBA_INTERVAL: '1' });
}, 120_000);
afterAll(async () => {
  await tb?.close();
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('the packages installed from their tarballs', () => {
  test('the README examples: an agent (@errand/agent) calls a server protected by @errand/guard', async () => {
    const [port, jwksPort] = [await freePort(), await freePort()];
    const resource = `http://127.0.0.1:${port}/notes`;
    const api = await adminApi(tb);
    await addResource(api, resource, ['notes:read']);
    const created = await api.call('POST', '/api/admin/clients', {
      kind: 'agent',
      name: 'packaged agent',
      jwks_uri: `http://127.0.0.1:${jwksPort}/jwks.json`,
    });
    const { client_id: clientId } = (await created.json()) as { client_id: string };
    const user = await createUser(tb);
    const children: ChildProcess[] = [];
    try {
      const env = { ERRAND_ISSUER: tb.url, NOTES_URL: resource };
      const server = runScript('server.mjs', env, children);
      server.catch(() => undefined);
      // The server is up once it answers; without a token it challenges (RFC 9728 §5.1).
      let anonymous: Response | undefined;
      for (let i = 0; i < 100 && !anonymous; i++) {
        anonymous = await fetch(resource).catch(() => undefined);
        if (!anonymous) await new Promise((r) => setTimeout(r, 100));
      }
      expect(anonymous?.status).toBe(401);
      expect(anonymous?.headers.get('www-authenticate')).toContain(
        `resource_metadata="http://127.0.0.1:${port}/.well-known/oauth-protected-resource/notes"`,
      );
      const agent = runScript(
        'agent.mjs',
        { ...env, CLIENT_ID: clientId, ERRAND_USER: user.username, JWKS_PORT: String(jwksPort) },
        children,
      );
      agent.catch(() => undefined);
      // The person approves the agent's request, as they would in Errand.
      const me = await userApi(tb, user);
      let approved = false;
      for (let i = 0; i < 200 && !approved; i++) {
        const pending = (await (await me.call('GET', '/api/me/delegations?status=pending')).json()) as {
          delegations: { delegation_id: string; agent_id: string }[];
        };
        const mine = pending.delegations.find((d) => d.agent_id === clientId);
        if (mine) {
          expect((await me.call('POST', `/api/me/delegations/${mine.delegation_id}/approve`, {})).status).toBe(200);
          approved = true;
        } else await new Promise((r) => setTimeout(r, 100));
      }
      expect(JSON.parse(await agent)).toEqual({ status: 200, body: { user: user.id, agent: clientId } });
    } finally {
      for (const child of children) child.kill();
    }
  });

  test('the .d.ts files resolve: a TypeScript file using both packages compiles against the install', async () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2023',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['check.ts'],
      }),
    );
    const result = await run(process.execPath, [TSC, '-p', join(project, 'tsconfig.json')], { cwd: project }).catch(
      (e: { stdout: string; stderr: string }) => e,
    );
    expect(`${result.stdout}${result.stderr}`).toBe('');
    // The installed packages' manifests point at files that exist.
    for (const name of ['guard', 'agent', 'protocol']) {
      const manifest = JSON.parse(readFileSync(join(project, 'node_modules', '@errand', name, 'package.json'), 'utf8'));
      for (const entry of Object.values(manifest.exports as Record<string, { types?: string; import?: string }>)) {
        if (typeof entry !== 'object') continue;
        for (const file of [entry.types, entry.import]) {
          expect(() => readFileSync(join(project, 'node_modules', '@errand', name, file!))).not.toThrow();
        }
      }
    }
  });
});
