import { type ServerType, serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { savePolicyDraft, setPolicyStatus } from '../../../broker/services/policy/policy-admin.js';
import { delegateViaCiba, delegationWorld, exchange, TT_JWT } from '../../../broker/test/delegation-fixtures.js';
import { addAgent, startBroker, type TestAgent, type TestBroker } from '../../../broker/test/fixtures.js';
import { type GuardMcpEnv, guardMcpMiddleware } from '../src/hono.js';
import { type AuthzenCheck, authzenCheck, createGuard, type Guard } from '../src/index.js';

/**
 * The guard's AuthZEN option: before a tools/call runs, Errand's policy decision point is asked
 * (a real broker, a real MCP endpoint behind the Hono middleware), and a call the organisation's
 * policies forbid is refused even though the token allows it.
 */

const SCOPES = ['notes:read', 'notes:write'];
const TOOL_SCOPES = { list_notes: 'notes:read', write_note: 'notes:write' };

let tb: TestBroker;
let server: ServerType;
let resource: string;
let guard: Guard;
let token: string;
let rs: TestAgent;
let world: Awaited<ReturnType<typeof delegationWorld>>;
/** The check each request uses (tests swap it). */
let check: AuthzenCheck;

beforeAll(async () => {
  tb = await startBroker();
  const app = new Hono<GuardMcpEnv>();
  server = await new Promise((resolve) => {
    const s = serve({ fetch: (req) => app.fetch(req), hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const address = server.address();
  resource = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/mcp`;
  guard = createGuard({ issuer: tb.url, resource, scopesSupported: SCOPES });
  app.all(
    '/mcp',
    (c, next) => guardMcpMiddleware(guard, { toolScopes: TOOL_SCOPES, authzen: (...a) => check(...a) })(c, next),
    (c) => c.json({ ran: true }),
  );

  world = await delegationWorld(tb, { agents: 1, resources: { [resource]: SCOPES } });
  rs = await addAgent(world.api, {
    kind: 'resource_server',
    name: 'notes server',
    resources: [resource],
    grant_types: ['client_credentials'],
  });
  const agent = world.agents[0] as TestAgent;
  const { credential } = await delegateViaCiba(tb, world.as, agent, world.user, {
    scope: `openid ${SCOPES.join(' ')}`,
    resource,
  });
  token = (await exchange(tb, world.as, agent, { subject_token: credential, subject_token_type: TT_JWT })).access_token;
  check = authzenCheck({ pdp: tb.url, clientAuth: { clientId: rs.clientId, privateKey: rs.privateKey, kid: rs.kid } });
});

afterAll(async () => {
  await new Promise<void>((r) => server?.close(() => r()));
  await tb?.close();
});

const callTool = (name: string) =>
  fetch(resource, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name } }),
  });

describe('guard AuthZEN option', () => {
  test('a call the policies allow runs; once a policy forbids the tool, the same token is refused', async () => {
    expect((await callTool('write_note')).status).toBe(200);
    expect((await callTool('list_notes')).status).toBe(200);

    const deps = tb.broker.deps;
    const actor = { adminId: world.api.admin.id, requestId: 'test' };
    const saved = await savePolicyDraft(
      deps,
      {
        text: `@id("default")
permit (principal, action in Errand::Action::"delegated", resource);

@id("no-writes-here")
forbid (principal, action == Errand::Action::"call_tool", resource == Errand::Tool::"${resource}#write_note");
`,
        tests: [],
      },
      actor,
    );
    await setPolicyStatus(deps, saved.version, 'published', actor);

    const refused = await callTool('write_note');
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({
      error: 'access_denied',
      error_description: `the organisation's policies do not allow tool "write_note" here`,
    });
    expect((await callTool('list_notes')).status).toBe(200);
    // The PDP audited the denial, naming the resource server that asked.
    const [event] = await deps.audit.query({ type: 'authzen.denied', limit: 5 });
    expect(event?.details).toMatchObject({
      resource_server: rs.clientId,
      tool: 'write_note',
      policies: ['no-writes-here'],
    });
  });

  test('no decision, no call: an unreachable PDP or one that refuses the credentials is 503', async () => {
    const agent = world.agents[0] as TestAgent;
    const cases: AuthzenCheck[] = [
      authzenCheck({ pdp: 'http://127.0.0.1:9', clientAuth: { clientId: rs.clientId, clientSecret: 'x' } }),
      // An agent's key: the PDP answers 403 (not a resource server).
      authzenCheck({
        pdp: tb.url,
        clientAuth: { clientId: agent.clientId, privateKey: agent.privateKey, kid: agent.kid },
      }),
    ];
    try {
      for (const c of cases) {
        check = c;
        const res = await callTool('list_notes');
        expect(res.status).toBe(503);
        expect(await res.json()).toMatchObject({ error: 'temporarily_unavailable' });
      }
    } finally {
      check = authzenCheck({
        pdp: tb.url,
        clientAuth: { clientId: rs.clientId, privateKey: rs.privateKey, kid: rs.kid },
      });
    }
  });
});
