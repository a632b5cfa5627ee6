import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  addAgent,
  addResource,
  adminApi,
  discover,
  insecure,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

const RESOURCE = 'https://files.example.test/api';

let tb: TestBroker;
let as: oauth.AuthorizationServer;
let agent: TestAgent;
let other: TestAgent;
let rs: TestAgent;

const auth = (a: TestAgent) => oauth.PrivateKeyJwt({ key: a.privateKey, kid: a.kid });

async function issue(a: TestAgent): Promise<string> {
  const res = await oauth.clientCredentialsGrantRequest(
    as,
    { client_id: a.clientId },
    auth(a),
    new URLSearchParams({ resource: RESOURCE }),
    insecure,
  );
  return (await oauth.processClientCredentialsResponse(as, { client_id: a.clientId }, res)).access_token;
}

async function introspect(caller: TestAgent, token: string) {
  // The client signs its assertion on the broker's (possibly advanced) clock.
  const client: oauth.Client = { client_id: caller.clientId, [oauth.clockSkew]: tb.clock.offset };
  const res = await oauth.introspectionRequest(as, client, auth(caller), token, insecure);
  expect(res.headers.get('cache-control')).toBe('no-store');
  return res.json() as Promise<Record<string, unknown>>;
}

beforeAll(async () => {
  tb = await startBroker();
  const api = await adminApi(tb);
  await addResource(api, RESOURCE, ['files:read']);
  agent = await addAgent(api, { scope: ['files:read'] });
  other = await addAgent(api, { scope: ['files:read'] });
  rs = await addAgent(api, {
    kind: 'resource_server',
    name: 'files api',
    resources: [RESOURCE],
    grant_types: ['client_credentials'],
  });
  as = await discover(tb);
});
afterAll(() => tb.close());

describe('introspection (RFC 7662)', () => {
  test('the token client and the audience resource server see an active token with its claims', async () => {
    const token = await issue(agent);
    for (const caller of [agent, rs]) {
      const body = await introspect(caller, token);
      expect(body).toMatchObject({
        active: true,
        token_type: 'Bearer',
        client_id: agent.clientId,
        sub: agent.clientId,
        aud: RESOURCE,
        iss: tb.url,
        scope: 'files:read',
      });
      expect(typeof body.exp).toBe('number');
      expect(typeof body.jti).toBe('string');
    }
  });

  test('another client learns nothing: exactly {"active":false}', async () => {
    expect(await introspect(other, await issue(agent))).toEqual({ active: false });
  });

  test('garbage, forged and unknown tokens are inactive', async () => {
    const token = await issue(agent);
    const [h, p, s] = token.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), scope: 'files:admin' })).toString('base64url')}.${s}`;
    for (const t of ['not-a-token', tampered, `${h}.${p}.`, 'ert_unknown'])
      expect(await introspect(agent, t)).toEqual({ active: false });
  });

  test('an expired token is inactive', async () => {
    const token = await issue(agent);
    tb.clock.advance(301);
    try {
      expect(await introspect(agent, token)).toEqual({ active: false });
    } finally {
      tb.clock.advance(-301);
    }
  });

  test('callers must authenticate: none → 401 invalid_client', async () => {
    const token = await issue(agent);
    const res = await postForm(`${tb.url}/introspect`, { token });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'invalid_client' });
  });
});

describe('revocation (RFC 7009)', () => {
  test('revoke then introspect: active false at once', async () => {
    const token = await issue(agent);
    expect((await introspect(rs, token)).active).toBe(true);
    const res = await oauth.revocationRequest(as, { client_id: agent.clientId }, auth(agent), token, insecure);
    await oauth.processRevocationResponse(res);
    expect(await introspect(rs, token)).toEqual({ active: false });
    expect(await introspect(agent, token)).toEqual({ active: false });
  });

  test('revocation is audited', async () => {
    const token = await issue(agent);
    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, { client_id: agent.clientId }, auth(agent), token, insecure),
    );
    const events = await tb.broker.deps.audit.query({ type: 'token.revoked', clientId: agent.clientId });
    expect(events.length).toBeGreaterThan(0);
    expect(events[0]).toMatchObject({ result: 'allowed', audience: RESOURCE });
  });

  test('unknown tokens answer 200 (no oracle)', async () => {
    const res = await oauth.revocationRequest(as, { client_id: agent.clientId }, auth(agent), 'whatever', insecure);
    expect(res.status).toBe(200);
  });

  test("a client cannot revoke another client's token", async () => {
    const token = await issue(agent);
    const res = await oauth.revocationRequest(as, { client_id: other.clientId }, auth(other), token, insecure);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'unauthorized_client' });
    expect((await introspect(agent, token)).active).toBe(true);
  });

  test('an unsupported token_type_hint is unsupported_token_type', async () => {
    const res = await oauth.revocationRequest(as, { client_id: agent.clientId }, auth(agent), 'x', {
      ...insecure,
      additionalParameters: { token_type_hint: 'id_token' },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'unsupported_token_type' });
  });

  test('revocation needs client authentication', async () => {
    const res = await postForm(`${tb.url}/revoke`, { token: 'x' });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'invalid_client' });
  });
});
