import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  agentClient,
  delegateViaCiba,
  delegationWorld,
  exchange,
  exchangeRaw,
  TT_ACCESS,
  TT_JWT,
} from './delegation-fixtures.js';
import {
  actorToken,
  addAgent,
  clientAssertion,
  insecure,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

const NOTES = 'https://notes.example.test/mcp';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let tb: TestBroker;
let world: Awaited<ReturnType<typeof delegationWorld>>;
let a: TestAgent;
let b: TestAgent;

beforeAll(async () => {
  tb = await startBroker({ ERRAND_CIBA_INTERVAL: '1' });
  world = await delegationWorld(tb, { agents: 1 });
  [a] = world.agents as [TestAgent];
  // B may also get tokens of its own (client_credentials): what A must not be able to do in its name.
  b = await addAgent(world.api, { name: 'B', scope: ['notes:read'], grant_types: undefined });
});
afterAll(() => tb.close());

/** An actor token signed by `agent` on the broker's clock; `header` overrides its typ to build attacks. */
function actorJwt(agent: TestAgent, header: Record<string, unknown> = {}) {
  const now = tb.clock.now();
  return actorToken(agent, tb.url, { claims: { iat: now, exp: now + 60 }, header });
}

/** A client assertion signed by `agent`; `typ` undefined leaves the header without one. */
function assertionJwt(agent: TestAgent, typ: string | undefined) {
  const now = tb.clock.now();
  return clientAssertion(agent, tb.url, { claims: { iat: now, exp: now + 60 }, header: { typ } });
}

/** `client_credentials` authenticated by whatever JWT is presented as the client assertion. */
function clientCredentials(assertion: string) {
  return postForm(`${tb.url}/token`, {
    grant_type: 'client_credentials',
    client_assertion_type: JWT_BEARER,
    client_assertion: assertion,
    resource: NOTES,
    scope: 'notes:read',
  });
}

/** A CIBA request (an agent asking the user for a delegation) authenticated the same way. */
function backchannel(assertion: string) {
  return postForm(`${tb.url}/bc-authorize`, {
    client_assertion_type: JWT_BEARER,
    client_assertion: assertion,
    scope: 'openid notes:read',
    login_hint: world.user.username,
    resource: NOTES,
  });
}

async function expectError(res: Response, status: number, error: string, description: RegExp) {
  const body = (await res.json()) as { error: string; error_description: string };
  expect({ status: res.status, error: body.error }).toEqual({ status, error });
  expect(body.error_description).toMatch(description);
}

/** A's root task token under a fresh delegation that lets one sub-agent level follow. */
async function parentTask(): Promise<string> {
  const { credential } = await delegateViaCiba(tb, world.as, a, world.user, {
    scope: 'openid notes:read notes:write',
    resource: NOTES,
    max_depth: '1',
  });
  const root = await exchange(tb, world.as, a, { subject_token: credential, subject_token_type: TT_JWT });
  return root.access_token;
}

describe('actor tokens and client assertions are not interchangeable (RFC 8693 §2.1, RFC 7523)', () => {
  test("A cannot authenticate as B with B's actor token: client_credentials and /bc-authorize refuse it", async () => {
    const handed = await actorJwt(b);
    await expectError(await clientCredentials(handed), 401, 'invalid_client', /actor\+jwt.*cannot authenticate/);
    await expectError(await backchannel(await actorJwt(b)), 401, 'invalid_client', /actor_token/);
    // However the media type is spelled (RFC 7515 §4.1.9).
    for (const typ of ['application/actor+jwt', 'Actor+JWT']) {
      await expectError(await clientCredentials(await actorJwt(b, { typ })), 401, 'invalid_client', /actor/);
    }

    // The refused token was not spent: it still proves B as the actor of A's exchange.
    const parent = await parentTask();
    const t = await exchange(tb, world.as, a, {
      subject_token: parent,
      subject_token_type: TT_ACCESS,
      actor_token: handed,
      actor_token_type: TT_JWT,
      scope: 'notes:read',
    });
    expect(decodeJwt(t.access_token)).toMatchObject({
      client_id: b.clientId,
      sub: world.user.id,
      scope: 'notes:read',
      act: { sub: b.clientId, act: { sub: a.clientId } },
    });
  });

  test('a client assertion is refused as an actor token, whatever assertion typ it carries', async () => {
    const parent = await parentTask();
    for (const typ of [undefined, 'JWT', 'client-authentication+jwt']) {
      const res = await exchangeRaw(tb, world.as, a, {
        subject_token: parent,
        subject_token_type: TT_ACCESS,
        actor_token: await assertionJwt(b, typ),
        actor_token_type: TT_JWT,
      });
      await expectError(res, 400, 'invalid_request', /^actor_token typ must be actor\+jwt/);
    }
  });

  test('client assertions as client libraries send them still authenticate; other JWT types do not', async () => {
    // oauth4webapi's private_key_jwt: no typ at all.
    const [client, auth] = agentClient(tb, b);
    const res = await oauth.clientCredentialsGrantRequest(
      world.as,
      client,
      auth,
      new URLSearchParams({ resource: NOTES, scope: 'notes:read' }),
      insecure,
    );
    const tokens = await oauth.processClientCredentialsResponse(world.as, client, res);
    expect(decodeJwt(tokens.access_token).client_id).toBe(b.clientId);
    for (const typ of ['JWT', 'client-authentication+jwt', 'application/client-authentication+jwt']) {
      expect((await clientCredentials(await assertionJwt(b, typ))).status).toBe(200);
    }
    for (const typ of ['at+jwt', 'dpop+jwt', 'delegation+jwt']) {
      await expectError(await clientCredentials(await assertionJwt(b, typ)), 401, 'invalid_client', /typ must be/);
    }
  });
});
