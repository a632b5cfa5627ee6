import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentClient, delegationWorld, userApi } from './delegation-fixtures.js';
import { clientAssertion, insecure, postForm, startBroker, type TestAgent, type TestBroker } from './fixtures.js';

const NOTES = 'https://notes.example.test/mcp';
const ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let tb: TestBroker;
let world: Awaited<ReturnType<typeof delegationWorld>>;
let agent: TestAgent;

beforeAll(async () => {
  tb = await startBroker();
  world = await delegationWorld(tb, { agents: 1 });
  agent = world.agents[0]!;
});
afterAll(() => tb.close());

type Line = Record<string, unknown> & { level: string; event: string };

/** The log lines of one request, found by the X-Request-Id it answered with. */
function linesOf(res: Response): Line[] {
  const id = res.headers.get('x-request-id');
  expect(id).toBeTruthy();
  return tb.logs.map((l) => JSON.parse(l) as Line).filter((l) => l.requestId === id);
}

describe('access log', () => {
  test('one http.request line per request: method, route pattern, status, duration, client id, request id', async () => {
    const code = 'authorization-code-value-9f2c';
    const res = await postForm(`${tb.url}/token`, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: 'https://app.example.test/cb',
      client_id: agent.clientId,
      client_assertion_type: ASSERTION,
      client_assertion: await clientAssertion(agent, tb.url),
    });
    expect(res.status).toBe(400);
    const lines = linesOf(res);
    const access = lines.filter((l) => l.event === 'http.request');
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({
      level: 'info',
      method: 'POST',
      route: '/token',
      status: 400,
      clientId: agent.clientId,
      requestId: res.headers.get('x-request-id'),
    });
    expect(typeof access[0]!.ms).toBe('number');
    // The OAuth error code is logged; the authorization code is not.
    const rejected = lines.find((l) => l.event === 'request.rejected');
    expect(rejected).toMatchObject({ level: 'info', error: ((await res.json()) as { error: string }).error });
    expect(JSON.stringify(lines)).not.toContain(code);
  });

  test('the route is the pattern: no ids from the path, no query string; the signed-in user is named', async () => {
    const me = await userApi(tb, world.user);
    const res = await me.call('GET', '/api/me/delegations/dlg_lookslikeanid42?token=query-secret-77');
    expect(res.status).toBe(404);
    const [line] = linesOf(res).filter((l) => l.event === 'http.request');
    expect(line).toMatchObject({ method: 'GET', route: '/api/me/delegations/:id', status: 404, userId: world.user.id });
    expect(JSON.stringify(line)).not.toMatch(/lookslikeanid42|query-secret-77/);

    const missing = await fetch(`${tb.url}/no/such/path/abc123`);
    expect(missing.status).toBe(404);
    const [unmatched] = linesOf(missing).filter((l) => l.event === 'http.request');
    expect(unmatched).toMatchObject({ method: 'GET', route: '(no route)', status: 404 });
    expect(JSON.stringify(unmatched)).not.toContain('abc123');
  });

  test('pending CIBA polls (authorization_pending, slow_down) write no info lines', async () => {
    const [client, auth] = agentClient(tb, agent);
    const body = new URLSearchParams({
      scope: 'openid notes:read',
      resource: NOTES,
      login_hint: world.user.username,
    });
    const started = await oauth.processBackchannelAuthenticationResponse(
      world.as,
      client,
      await oauth.backchannelAuthenticationRequest(world.as, client, auth, body, insecure),
    );
    const poll = () =>
      oauth.backchannelAuthenticationGrantRequest(world.as, client, auth, started.auth_req_id, insecure);
    const pending = await poll();
    const slow = await poll();
    expect(((await pending.json()) as { error: string }).error).toBe('authorization_pending');
    expect(((await slow.json()) as { error: string }).error).toBe('slow_down');
    for (const res of [pending, slow]) {
      const lines = linesOf(res);
      // Still there at debug level, for whoever turns it on.
      expect(lines.find((l) => l.event === 'http.request')).toMatchObject({ level: 'debug', route: '/token' });
      expect(lines.filter((l) => l.level !== 'debug')).toEqual([]);
    }
  });

  test('ERRAND_ACCESS_LOG=false turns the access log off', async () => {
    const quiet = await startBroker({ ERRAND_ACCESS_LOG: 'false' });
    try {
      const res = await fetch(`${quiet.url}/.well-known/oauth-authorization-server`);
      expect(res.status).toBe(200);
      expect(quiet.logs.some((l) => l.includes('"http.request"'))).toBe(false);
      const loud = await fetch(`${tb.url}/.well-known/oauth-authorization-server`);
      expect(linesOf(loud).filter((l) => l.event === 'http.request')).toHaveLength(1);
    } finally {
      await quiet.close();
    }
  });
});
