/**
 * `npm run demo`: Errand and the example notes server, and a scripted agent that asks a person for a
 * delegation, works under a task, hands a sub-agent a narrower token, ends the task and is refused.
 * `npm run demo -- --auto-approve` approves on the person's behalf instead of waiting for the UI.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ServerType, serve } from '@hono/node-server';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { buildBroker } from '../../broker/broker.js';
import { loadConfig } from '../../broker/config.js';
import { hashPassword } from '../../broker/identity/passwords.js';
import { createLogger } from '../../broker/log.js';
import { newId, newSecret } from '../../broker/tokens/random.js';
import { createNotesServer } from './notes-server.js';

const autoApprove = process.argv.includes('--auto-approve');
const say = (line: string) => process.stdout.write(`${line}\n`);
const step = (n: number, text: string) => say(`\n[${n}] ${text}`);
const ok = (text: string) => say(`    ✓ ${text}`);

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const address = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  return typeof address === 'object' && address ? address.port : 0;
}

function structured(result: unknown): Record<string, unknown> {
  const r = result as { structuredContent?: Record<string, unknown>; isError?: boolean; content?: unknown[] };
  // A refusal says why in its text content.
  if (r.isError) throw new Error(`tool refused: ${JSON.stringify(r.content)}`);
  return r.structuredContent ?? {};
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'errand-demo-'));
  const [errandPort, notesPort] = [await freePort(), await freePort()];
  const config = loadConfig({ ERRAND_PORT: String(errandPort), ERRAND_DATA_DIR: dir, ERRAND_STATUS_LIST_TTL: '60' });
  const broker = await buildBroker(config, { log: createLogger({ level: 'warn' }) });
  const errandServer: ServerType = serve({ fetch: broker.app.fetch, hostname: '127.0.0.1', port: errandPort });
  const issuer = config.issuer;
  const notesUrl = `http://127.0.0.1:${notesPort}/mcp`;
  say(`Errand:       ${issuer}`);
  say(`Notes server: ${notesUrl}`);

  // An administrator and a person, as the first start and the People page would create them.
  const now = Math.floor(Date.now() / 1000);
  const person = { username: 'alice', password: newSecret().slice(0, 20) };
  const admin = { username: 'demo-admin', password: newSecret().slice(0, 20) };
  for (const [u, role] of [
    [admin, 'admin'],
    [person, 'user'],
  ] as const) {
    await broker.deps.users.insert({
      id: newId('usr'),
      username: u.username,
      displayName: null,
      passwordHash: await hashPassword(u.password),
      role,
      createdAt: now,
      disabledAt: null,
      failedSignins: 0,
      lockedUntil: null,
    });
  }
  const session = async (u: { username: string; password: string }) => {
    const res = await fetch(`${issuer}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(u),
    });
    const cookie = res.headers.getSetCookie()[0]?.split(';')[0] ?? '';
    const { csrf_token: csrf } = (await res.json()) as { csrf_token: string };
    return (method: string, path: string, body?: unknown) =>
      fetch(`${issuer}${path}`, {
        method,
        headers: { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
  };
  const adminCall = await session(admin);

  step(1, 'An administrator registers the notes server and two agents (each holds its key in memory).');
  await adminCall('POST', '/api/admin/resources', {
    url: notesUrl,
    name: 'Notes',
    scopes: ['notes:read', 'notes:write', 'notes:delete'],
  });
  const register = async (body: Record<string, unknown>) => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const kid = newId('k');
    const res = await adminCall('POST', '/api/admin/clients', {
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] },
      ...body,
    });
    const { client_id: clientId } = (await res.json()) as { client_id: string };
    return { clientId, privateKey, kid };
  };
  const scope = ['errand:delegate', 'errand:tasks', 'notes:read', 'notes:write'];
  const planner = await register({ kind: 'agent', name: 'planner', scope });
  const helper = await register({ kind: 'agent', name: 'helper', scope });
  const rs = await register({
    kind: 'resource_server',
    name: 'notes server',
    grant_types: ['client_credentials'],
    resources: [notesUrl],
  });
  ok(`planner ${planner.clientId}, helper ${helper.clientId}`);

  const notes = createNotesServer({
    issuer,
    resource: notesUrl,
    push: { clientId: rs.clientId, privateKey: rs.privateKey, kid: rs.kid },
  });
  const notesServer: ServerType = serve({ fetch: notes.app.fetch, hostname: '127.0.0.1', port: notesPort });
  await notes.guard.connect();
  ok('the notes server subscribed to Errand’s revocation push channel');

  const as = await oauth.processDiscoveryResponse(
    new URL(issuer),
    await oauth.discoveryRequest(new URL(issuer), { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true }),
  );
  const mcp = async (url: string, token: string) => {
    const client = new Client({ name: 'errand-demo', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), { authProvider: { token: async () => token } }),
    );
    return client;
  };

  step(2, 'The planner agent signs in to Errand’s MCP endpoint with its key (client_credentials, private_key_jwt).');
  const ccClient = { client_id: planner.clientId };
  const cc = await oauth.clientCredentialsGrantRequest(
    as,
    ccClient,
    oauth.PrivateKeyJwt({ key: planner.privateKey, kid: planner.kid }),
    new URLSearchParams({ resource: `${issuer}/mcp`, scope: 'errand:delegate errand:tasks' }),
    { [oauth.allowInsecureRequests]: true },
  );
  const errand = await mcp(
    `${issuer}/mcp`,
    (await oauth.processClientCredentialsResponse(as, ccClient, cc)).access_token,
  );
  ok(`whoami: ${JSON.stringify(structured(await errand.callTool({ name: 'whoami', arguments: {} })))}`);

  step(3, 'It asks alice for a delegation: read and write her notes, one sub-agent level.');
  const asked = structured(
    await errand.callTool({
      name: 'request_delegation',
      arguments: {
        user: person.username,
        resources: [notesUrl],
        scopes: ['notes:read', 'notes:write'],
        max_depth: 1,
        binding_message: 'Tidy my notes',
      },
    }),
  );
  if (autoApprove) {
    const aliceCall = await session(person);
    await aliceCall('POST', `/api/me/delegations/${asked.delegation_id}/approve`, {});
    ok('approved on alice’s behalf (--auto-approve)');
  } else {
    say(
      `    Open ${issuer}/my/requests, sign in as "${person.username}" with password "${person.password}", and approve.`,
    );
    for (let waited = 0; ; waited += 2) {
      const list = structured(await errand.callTool({ name: 'list_delegations', arguments: {} })) as {
        delegations: { delegation_id: string; status: string }[];
      };
      const status = list.delegations.find((d) => d.delegation_id === asked.delegation_id)?.status;
      if (status === 'active') break;
      if (status === 'denied' || waited > 600)
        throw new Error(`the delegation was not approved (${status ?? 'timed out'})`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    ok('alice approved in the web UI');
  }

  step(4, 'It starts a task and works at the notes server with the task token.');
  const task = structured(
    await errand.callTool({
      name: 'start_task',
      arguments: { delegation_id: asked.delegation_id, resource: notesUrl },
    }),
  );
  const plannerNotes = await mcp(notesUrl, task.access_token as string);
  structured(
    await plannerNotes.callTool({ name: 'write_note', arguments: { title: 'groceries', body: 'milk, bread' } }),
  );
  const listed = structured(await plannerNotes.callTool({ name: 'list_notes', arguments: {} })) as { notes: unknown[] };
  ok(`task ${task.task_id}: wrote a note; alice has ${listed.notes.length} note(s) (token scope: ${task.scope})`);

  step(5, 'It hands the helper a read-only token for the same task; the helper takes part with an actor token.');
  // RFC 8693 §2.1: the sub-agent signs a short-lived actor token for Errand with its own key.
  const iat = Math.floor(Date.now() / 1000);
  const helperActorToken = await new SignJWT({
    iss: helper.clientId,
    sub: helper.clientId,
    aud: issuer,
    jti: newId('j'),
    iat,
    exp: iat + 60,
  })
    .setProtectedHeader({ alg: 'ES256', kid: helper.kid, typ: 'actor+jwt' })
    .sign(helper.privateKey);
  const sub = structured(
    await errand.callTool({
      name: 'delegate_to_subagent',
      arguments: {
        task_id: task.task_id,
        sub_agent_id: helper.clientId,
        actor_token: helperActorToken,
        scope: 'notes:read',
      },
    }),
  );
  const helperNotes = await mcp(notesUrl, sub.access_token as string);
  structured(await helperNotes.callTool({ name: 'list_notes', arguments: {} }));
  ok('the helper can read');
  const write = await fetch(notesUrl, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${sub.access_token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'write_note', arguments: { title: 'x', body: 'y' } },
    }),
  });
  if (write.status !== 403) throw new Error(`expected the helper's write to be refused, got ${write.status}`);
  ok(`the helper cannot write: ${write.status} ${write.headers.get('www-authenticate')}`);

  step(6, 'The planner ends the task; the notes server hears it over the push channel.');
  const pushed = new Promise<number>((resolve) => {
    const off = notes.guard.onRevoked(() => {
      off();
      resolve(performance.now());
    });
  });
  const start = performance.now();
  await errand.callTool({ name: 'end_task', arguments: { task_id: task.task_id } });
  ok(`revocation reached the notes server in ${Math.round((await pushed) - start)} ms`);
  const again = await fetch(notesUrl, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${task.access_token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'list_notes', arguments: {} },
    }),
  });
  if (again.status !== 401) throw new Error(`expected the ended task's token to be refused, got ${again.status}`);
  ok(`the next call with the task token is refused: ${again.status}`);

  say('\nDemo complete.');
  notes.guard.close();
  await Promise.all([errand.close(), plannerNotes.close(), helperNotes.close()]);
  await new Promise<void>((r) => notesServer.close(() => r()));
  await new Promise<void>((r) => errandServer.close(() => r()));
  await broker.close();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
