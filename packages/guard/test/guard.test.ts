import { performance } from 'node:perf_hooks';
import { createGuard, type Guard } from '@errand/guard';
import { type GuardEnv, guardMiddleware, protectedResourceMetadataRoute } from '@errand/guard/hono';
import { type ServerType, serve } from '@hono/node-server';
import { Hono } from 'hono';
import { base64url, decodeJwt, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  type Api,
  delegateViaCiba,
  delegationWorld,
  exchange,
  TT_JWT,
} from '../../../broker/test/delegation-fixtures.js';
import { addAgent, clientAssertion, postForm, startBroker, type TestAgent } from '../../../broker/test/fixtures.js';
import { readServerSentEvents } from '../src/sse.js';

const SCOPES = ['notes', 'notes:read', 'notes:write'];
const OTHER = 'https://calendar.example.test/api';

/** A real tool server on 127.0.0.1:0 whose guard a test can swap. */
async function toolServer() {
  let app = new Hono();
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: (req) => app.fetch(req), hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const address = server.address();
  const origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    origin,
    resource: `${origin}/mcp`,
    use(guard: Guard) {
      const next = new Hono<GuardEnv>();
      next.route('/', protectedResourceMetadataRoute(guard));
      next.post('/mcp', guardMiddleware(guard, { scopes: ['notes:read'] }), (c) =>
        c.json({ sub: c.var.auth.sub, client_id: c.var.auth.clientId, task_id: c.var.auth.taskId }),
      );
      next.post('/mcp/write', guardMiddleware(guard, { scopes: ['notes:write'] }), (c) => c.json({ written: true }));
      app = next as unknown as Hono;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A broker, a tool server registered as a resource, a delegation covering it, and a way to mint task tokens. */
async function setUp(env: Record<string, string>) {
  const tb = await startBroker(env);
  const srv = await toolServer();
  const w = await delegationWorld(tb, { agents: 1, resources: { [srv.resource]: SCOPES, [OTHER]: ['calendar:read'] } });
  const agent = w.agents[0]!;
  const { credential } = await delegateViaCiba(tb, w.as, agent, w.user, {
    scope: `openid ${SCOPES.join(' ')} calendar:read`,
    resource: [srv.resource, OTHER],
  });
  const calls: string[] = [];
  const countingFetch: typeof fetch = (input, init) => {
    calls.push(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    return fetch(input, init);
  };
  const taskToken = async (scope: string, resource = srv.resource) => {
    const t = await exchange(tb, w.as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource,
      scope,
    });
    return { token: t.access_token, taskId: t.task_id, jti: decodeJwt(t.access_token).jti as string };
  };
  const guardFor = (over: Partial<Parameters<typeof createGuard>[0]> = {}) =>
    createGuard({
      issuer: tb.url,
      resource: srv.resource,
      scopesSupported: SCOPES,
      resourceName: 'Notes',
      scopeHierarchy: { 'notes:write': ['notes:read'] },
      fetch: countingFetch,
      ...over,
    });
  const call = (token: string | null, path = '/mcp', headers: Record<string, string> = {}) =>
    fetch(`${srv.origin}${path}`, {
      method: 'POST',
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });
  const endTask = async (taskId: string) => {
    const res = await postForm(`${tb.url}/tasks/${taskId}/end`, {
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(agent, tb.url),
      state: 'canceled',
    });
    expect(res.status).toBe(200);
  };
  return { tb, srv, ...w, agent, credential, calls, taskToken, guardFor, call, endTask };
}

/** A resource-server client of Errand for `resources` (it may open the push channel for them). */
const resourceServer = (api: Api, resources: string[]) =>
  addAgent(api, { kind: 'resource_server', name: 'tool server', resources, grant_types: ['client_credentials'] });

const challengeOf = (res: Response) => res.headers.get('www-authenticate') ?? '';

describe('guard: token checks against the real broker', () => {
  let s: Awaited<ReturnType<typeof setUp>>;
  let guard: Guard;
  beforeAll(async () => {
    s = await setUp({ ERRAND_STATUS_LIST_TTL: '30' });
    guard = s.guardFor();
    s.srv.use(guard);
  });
  afterAll(async () => {
    await s.srv.close();
    await s.tb.close();
  });

  test('a valid task token is accepted and its caller, agent and task are known', async () => {
    const t = await s.taskToken('notes:read');
    const res = await s.call(t.token);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      sub: decodeJwt(t.token).sub,
      client_id: s.agent.clientId,
      task_id: t.taskId,
    });
  });

  test('no token: 401 with resource_metadata and a scope hint, no error code', async () => {
    const res = await s.call(null);
    expect(res.status).toBe(401);
    const challenge = challengeOf(res);
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain(`resource_metadata="${guard.metadataUrl}"`);
    expect(challenge).toContain('scope="notes:read"');
    expect(challenge).not.toContain('error=');
  });

  test('a token for another audience is refused with invalid_token', async () => {
    const t = await s.taskToken('calendar:read', OTHER);
    const res = await s.call(t.token);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({
      error: 'invalid_token',
      error_description: expect.stringMatching(/resource/),
    });
    expect(challengeOf(res)).toContain('error="invalid_token"');
    expect(challengeOf(res)).toContain(`resource_metadata="${guard.metadataUrl}"`);
  });

  test('an expired token is refused', async () => {
    const t = await s.taskToken('notes:read');
    s.srv.use(s.guardFor({ now: () => Date.now() / 1000 + 3600 }));
    try {
      const res = await s.call(t.token);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: 'invalid_token', error_description: 'the access token has expired' });
    } finally {
      s.srv.use(guard);
    }
  });

  test('a token minted while the broker clock ran 2 h ahead is refused once the clock is back (iat in the future)', async () => {
    s.tb.clock.jump(7200);
    let t: Awaited<ReturnType<typeof s.taskToken>>;
    try {
      t = await s.taskToken('notes:read');
    } finally {
      s.tb.clock.jump(-7200);
    }
    const res = await s.call(t.token);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: 'invalid_token',
      error_description: 'the access token is not valid yet',
    });
    // An iat within the guard's clock skew (30 s) is accepted.
    s.srv.use(s.guardFor({ now: () => Date.now() / 1000 - 20 }));
    try {
      expect((await s.call((await s.taskToken('notes:read')).token)).status).toBe(200);
    } finally {
      s.srv.use(guard);
    }
  });

  test('wrong typ: an Errand delegation credential and a typ JWT token are refused', async () => {
    expect(decodeJwt(s.credential).aud).toBeDefined();
    const credential = await s.call(s.credential);
    expect(credential.status).toBe(401);
    expect(await credential.json()).toMatchObject({ error: 'invalid_token' });

    const { privateKey } = await generateKeyPair('ES256');
    const claims = decodeJwt((await s.taskToken('notes:read')).token);
    const plain = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'JWT' }).sign(privateKey);
    const res = await s.call(plain);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'invalid_token' });
  });

  test('alg none is refused', async () => {
    const claims = decodeJwt((await s.taskToken('notes:read')).token);
    const enc = (o: object) => base64url.encode(JSON.stringify(o));
    const res = await s.call(`${enc({ alg: 'none', typ: 'at+jwt' })}.${enc(claims)}.`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'invalid_token' });
  });

  test('a token signed by an unknown key is refused after one rate-limited JWKS refetch', async () => {
    let offset = 0;
    const g = s.guardFor({ now: () => Date.now() / 1000 + offset });
    s.srv.use(g);
    const jwksCalls = () => s.calls.filter((u) => u === `${s.tb.url}/jwks.json`).length;
    try {
      const t = await s.taskToken('notes:read');
      expect((await s.call(t.token)).status).toBe(200);
      const before = jwksCalls();
      offset = 11; // past the 10 s refetch cooldown
      const { privateKey } = await generateKeyPair('ES256');
      const forged = await new SignJWT(decodeJwt(t.token))
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'not-a-broker-key' })
        .sign(privateKey);
      const res = await s.call(forged);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: 'invalid_token', error_description: 'the access token is not valid' });
      expect(jwksCalls()).toBe(before + 1);
      // Within the cooldown another unknown kid does not cause another fetch.
      expect((await s.call(forged)).status).toBe(401);
      expect(jwksCalls()).toBe(before + 1);
    } finally {
      s.srv.use(guard);
    }
  });

  test('a missing scope is 403 insufficient_scope naming the scope and the metadata', async () => {
    const t = await s.taskToken('notes:read');
    const res = await s.call(t.token, '/mcp/write');
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: 'insufficient_scope' });
    const challenge = challengeOf(res);
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="notes:write"');
    expect(challenge).toContain(`resource_metadata="${guard.metadataUrl}"`);
  });

  test('a broader scope is accepted for a narrower one (prefix and configured hierarchy)', async () => {
    const broad = await s.taskToken('notes');
    expect((await s.call(broad.token, '/mcp/write')).status).toBe(200);
    expect((await s.call(broad.token, '/mcp')).status).toBe(200);
    const write = await s.taskToken('notes:write');
    expect((await s.call(write.token, '/mcp')).status).toBe(200);
  });

  test('a token in the query string is refused, even beside a header', async () => {
    const t = await s.taskToken('notes:read');
    const query = await fetch(`${s.srv.origin}/mcp?access_token=${t.token}`, { method: 'POST' });
    expect(query.status).toBe(401);
    expect(await query.json()).toMatchObject({ error: 'invalid_request' });
    expect(challengeOf(query)).toContain(`resource_metadata="${guard.metadataUrl}"`);
    const both = await fetch(`${s.srv.origin}/mcp?access_token=${t.token}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.token}` },
    });
    expect(both.status).toBe(401);
  });

  test('protected resource metadata is served at the path-specific well-known URL', async () => {
    expect(guard.metadataPath).toBe('/.well-known/oauth-protected-resource/mcp');
    expect(guard.metadataUrl).toBe(`${s.srv.origin}/.well-known/oauth-protected-resource/mcp`);
    const res = await fetch(guard.metadataUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({
      resource: s.srv.resource,
      authorization_servers: [s.tb.url],
      scopes_supported: SCOPES,
      bearer_methods_supported: ['header'],
      resource_name: 'Notes',
      dpop_signing_alg_values_supported: expect.arrayContaining(['ES256', 'RS256']),
    });
  });
});

describe('revocation at the guard', () => {
  let s: Awaited<ReturnType<typeof setUp>>;
  let rs: TestAgent;
  const guards: Guard[] = [];
  beforeAll(async () => {
    s = await setUp({ ERRAND_STATUS_LIST_TTL: '30' });
    rs = await resourceServer(s.api, [s.srv.resource]);
  });
  afterAll(async () => {
    for (const g of guards) g.close();
    await s.srv.close();
    await s.tb.close();
  });

  const openStream = async (agent: TestAgent, audience: string, signal?: AbortSignal) =>
    fetch(`${s.tb.url}/events/revocations`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await clientAssertion(agent, s.tb.url),
        audience,
      }).toString(),
      ...(signal ? { signal } : {}),
    });

  test('the push endpoint refuses unauthenticated callers and audiences the client does not own', async () => {
    const anonymous = await postForm(`${s.tb.url}/events/revocations`, { audience: s.srv.resource });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: 'invalid_client' });

    const notOwned = await openStream(rs, OTHER);
    expect(notOwned.status).toBe(403);
    expect(await notOwned.json()).toMatchObject({ error: 'invalid_request' });

    // An agent is not a resource server, whatever audience it names.
    const agent = await openStream(s.agent, s.srv.resource);
    expect(agent.status).toBe(403);
    expect(await agent.json()).toMatchObject({ error: 'invalid_request' });

    const twoAudiences = await postForm(`${s.tb.url}/events/revocations`, {
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(rs, s.tb.url),
      audience: [s.srv.resource, OTHER],
    });
    expect(twoAudiences.status).toBe(400);
  });

  test('the push endpoint streams SSE: ready first, unbuffered, and unsubscribes on disconnect', async () => {
    const abort = new AbortController();
    const res = await openStream(rs, s.srv.resource, abort.signal);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const events = readServerSentEvents(res.body!);
    const first = await events.next();
    expect(first.value).toMatchObject({ event: 'ready' });
    abort.abort();
    await events.return(undefined).catch(() => undefined);
    await expect
      .poll(() => s.tb.logs.some((l) => l.includes('revocation_stream.closed')), { timeout: 2000 })
      .toBe(true);
  });

  test('with push: ending the task is refused at the next request, well under a second', async () => {
    const g = s.guardFor({
      push: { clientId: rs.clientId, privateKey: rs.privateKey, kid: rs.kid },
      statusList: { maxTtl: 60 },
    });
    guards.push(g);
    await g.connect();
    expect(g.pushConnected).toBe(true);
    s.srv.use(g);

    const t = await s.taskToken('notes:read');
    expect((await s.call(t.token)).status).toBe(200);
    const listUri = (decodeJwt(t.token).status as { status_list: { uri: string } }).status_list.uri;
    const listFetches = () => s.calls.filter((u) => u === listUri).length;
    const fetchesBefore = listFetches();
    const listFetchedAt = performance.now();

    const seen = new Promise<number>((resolve) => {
      const off = g.onRevoked((n) => {
        if (n.jti === t.jti) {
          off();
          resolve(performance.now());
        }
      });
    });
    const endedAt = performance.now();
    await s.endTask(t.taskId);
    const latency = (await seen) - endedAt;
    const res = await s.call(t.token);
    const refusedAt = performance.now();
    console.info(`guard push: revocation seen ${latency.toFixed(1)} ms after the end request was sent`);

    expect(latency).toBeLessThan(1000);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: 'invalid_token',
      error_description: 'the access token has been revoked',
    });
    // The status list (ttl 30 s) was neither refetched nor could it have expired yet: push did it.
    expect(listFetches()).toBe(fetchesBefore);
    expect(refusedAt - listFetchedAt).toBeLessThan(30_000);
  });

  test('push credentials the broker refuses make connect() fail', async () => {
    const stranger = await resourceServer(s.api, [OTHER]);
    const g = s.guardFor({ push: { clientId: stranger.clientId, privateKey: stranger.privateKey, kid: stranger.kid } });
    guards.push(g);
    await expect(g.connect()).rejects.toThrow(/refused \(403\)/);
    expect(g.pushConnected).toBe(false);
  });
});

describe('revocation through the status list alone (ERRAND_STATUS_LIST_TTL=1)', () => {
  let s: Awaited<ReturnType<typeof setUp>>;
  beforeAll(async () => {
    s = await setUp({ ERRAND_STATUS_LIST_TTL: '1' });
  });
  afterAll(async () => {
    await s.srv.close();
    await s.tb.close();
  });

  test('a guard without push refuses the ended task token within the list ttl; the sibling stays valid', async () => {
    const g = s.guardFor();
    s.srv.use(g);
    const ended = await s.taskToken('notes:read');
    const sibling = await s.taskToken('notes:read');
    expect((await s.call(ended.token)).status).toBe(200);
    expect((await s.call(sibling.token)).status).toBe(200);

    const endedAt = performance.now();
    await s.endTask(ended.taskId);
    let res = await s.call(ended.token);
    while (res.status === 200 && performance.now() - endedAt < 5000) {
      await new Promise((r) => setTimeout(r, 50));
      res = await s.call(ended.token);
    }
    const delay = performance.now() - endedAt;
    console.info(`guard status list: revocation seen ${delay.toFixed(0)} ms after the end request (ttl 1 s)`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: 'invalid_token',
      error_description: 'the access token has been revoked',
    });
    // The bound is the list ttl (1 s) plus the time to refetch and answer; allow scheduling slack.
    expect(delay).toBeLessThan(2000);
    expect((await s.call(sibling.token)).status).toBe(200);
  });
});
