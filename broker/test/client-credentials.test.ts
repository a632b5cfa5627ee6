import { decodeProtectedHeader, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  addAgent,
  addResource,
  adminApi,
  clientAssertion,
  discover,
  insecure,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
  verifyAccessToken,
} from './fixtures.js';

const RESOURCE = 'https://notes.example.test/mcp';

let tb: TestBroker;
let as: oauth.AuthorizationServer;
let agent: TestAgent;

beforeAll(async () => {
  tb = await startBroker();
  const api = await adminApi(tb);
  await addResource(api, RESOURCE, ['notes:read', 'notes:write', 'notes:admin']);
  agent = await addAgent(api, { scope: ['notes:read', 'notes:write'] });
  as = await discover(tb);
});
afterAll(() => tb.close());

async function ccRequest(
  params: Record<string, string>,
  auth: oauth.ClientAuth = oauth.PrivateKeyJwt({ key: agent.privateKey, kid: agent.kid }),
) {
  return oauth.clientCredentialsGrantRequest(
    as,
    { client_id: agent.clientId },
    auth,
    new URLSearchParams(params),
    insecure,
  );
}

describe('client_credentials with private_key_jwt', () => {
  test('discovery advertises exactly what is supported', () => {
    expect(as.issuer).toBe(tb.url);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(as.grant_types_supported).toEqual(
      expect.arrayContaining(['authorization_code', 'refresh_token', 'client_credentials']),
    );
    expect(as.grant_types_supported).not.toContain('implicit');
    expect(as.grant_types_supported).not.toContain('password');
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
    expect(as.client_id_metadata_document_supported).toBe(true);
    expect(as.token_endpoint_auth_signing_alg_values_supported).not.toContain('none');
    expect(as.scopes_supported).toEqual(expect.arrayContaining(['notes:admin', 'notes:read', 'notes:write']));
    expect(as.scopes_supported).not.toContain('offline_access');
  });

  test('an agent gets an RFC 9068 JWT for one resource, verifiable with the published JWKS', async () => {
    const res = await ccRequest({ resource: RESOURCE, scope: 'notes:read' });
    expect(res.headers.get('cache-control')).toBe('no-store');
    const result = await oauth.processClientCredentialsResponse(as, { client_id: agent.clientId }, res);
    expect(result.token_type).toBe('bearer');
    expect(result.scope).toBe('notes:read');
    const { payload, protectedHeader } = await verifyAccessToken(as, result.access_token, RESOURCE, tb.url);
    expect(protectedHeader.kid).toBeTruthy();
    expect(payload).toMatchObject({ sub: agent.clientId, client_id: agent.clientId, scope: 'notes:read' });
    for (const claim of ['iat', 'exp', 'jti']) expect(payload[claim]).toBeDefined();
    expect((payload.exp as number) - (payload.iat as number)).toBe(300);
  });

  test('without a scope parameter the agent gets its registered scopes for that resource', async () => {
    const result = await oauth.processClientCredentialsResponse(
      as,
      { client_id: agent.clientId },
      await ccRequest({ resource: RESOURCE }),
    );
    expect(result.scope).toBe('notes:read notes:write');
  });

  test('a resource trailing slash and case variants name the same resource (RFC 8707 normalisation)', async () => {
    const res = await ccRequest({ resource: 'HTTPS://Notes.Example.Test:443/mcp', scope: 'notes:read' });
    const result = await oauth.processClientCredentialsResponse(as, { client_id: agent.clientId }, res);
    const header = decodeProtectedHeader(result.access_token);
    expect(header.typ).toBe('at+jwt');
  });

  test('scope the client is not registered for is invalid_scope', async () => {
    const res = await ccRequest({ resource: RESOURCE, scope: 'notes:admin' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_scope' });
  });

  test('scope the resource does not offer is invalid_scope', async () => {
    const res = await ccRequest({ resource: RESOURCE, scope: 'calendar:read' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_scope' });
  });

  test('an unknown resource is invalid_target', async () => {
    const res = await ccRequest({ resource: 'https://unknown.example.test/api', scope: 'notes:read' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_target' });
  });

  test('a malformed resource is invalid_target', async () => {
    for (const params of [{ resource: 'not a url' }, { resource: 'https://a.test/x#frag' }]) {
      const res = await ccRequest(params);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_target' });
    }
  });

  test('two resources in one request are refused: one audience per token', async () => {
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(agent, tb.url),
    });
    body.append('resource', RESOURCE);
    body.append('resource', 'https://other.example.test/');
    const res = await fetch(`${tb.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_target' });
  });
});

describe('client assertion attacks', () => {
  const token = async (assertion: string, extra: Record<string, string> = {}) =>
    postForm(`${tb.url}/token`, {
      grant_type: 'client_credentials',
      resource: RESOURCE,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      ...extra,
    });
  const expectInvalidClient = async (res: Response) => {
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: string; error_description: string };
    expect(body.error).toBe('invalid_client');
    expect(body.error_description).not.toMatch(/at |stack|Error:/);
    return body;
  };

  // ES256 with a kid is checked on node:crypto; without a kid it takes the general (jose) path.
  // Both must reach the same verdicts.
  test.each([
    ['with kid', {}],
    ['without kid', { kid: undefined }],
  ])('the same rules hold %s: accepted once, refused on replay, wrong key, expiry, iss or nbf', async (_, header) => {
    const now = Math.floor(Date.now() / 1000);
    const ok = await clientAssertion(agent, tb.url, { header });
    expect((await token(ok)).status).toBe(200);
    expect((await expectInvalidClient(await token(ok))).error_description).toMatch(/already been used/);
    const other = (await generateKeyPair('ES256')).privateKey;
    await expectInvalidClient(await token(await clientAssertion(agent, tb.url, { header, key: other })));
    const expired = { iat: now - 700, exp: now - 600 };
    expect(
      (await expectInvalidClient(await token(await clientAssertion(agent, tb.url, { header, claims: expired }))))
        .error_description,
    ).toMatch(/expired/);
    await expectInvalidClient(await token(await clientAssertion(agent, tb.url, { header, claims: { iss: 'x' } })));
    await expectInvalidClient(
      await token(await clientAssertion(agent, tb.url, { header, claims: { nbf: now + 600 } })),
    );
    await expectInvalidClient(await token(await clientAssertion(agent, tb.url, { header, claims: { exp: 'later' } })));
  });

  test('a replayed assertion (same jti) is refused', async () => {
    const assertion = await clientAssertion(agent, tb.url);
    expect((await token(assertion)).status).toBe(200);
    const body = await expectInvalidClient(await token(assertion));
    expect(body.error_description).toMatch(/already been used/);
  });

  test('aud = token endpoint is refused: the issuer is the only audience (RFC 7523bis)', async () => {
    await expectInvalidClient(await token(await clientAssertion(agent, `${tb.url}/token`)));
    await expectInvalidClient(
      await token(await clientAssertion(agent, tb.url, { claims: { aud: [tb.url, 'https://x.test'] } })),
    );
  });

  test('an expired assertion is refused', async () => {
    const past = Math.floor(Date.now() / 1000) - 600;
    const body = await expectInvalidClient(
      await token(await clientAssertion(agent, tb.url, { claims: { iat: past - 60, exp: past } })),
    );
    expect(body.error_description).toMatch(/expired/);
  });

  test('an assertion living longer than the maximum is refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectInvalidClient(await token(await clientAssertion(agent, tb.url, { claims: { exp: now + 3600 } })));
  });

  test('an assertion without jti is refused', async () => {
    await expectInvalidClient(await token(await clientAssertion(agent, tb.url, { claims: { jti: undefined } })));
  });

  test('alg none is refused', async () => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${b64({ alg: 'none', kid: agent.kid })}.${b64({ iss: agent.clientId, sub: agent.clientId, aud: tb.url, jti: 'n1', exp: now + 60 })}.`;
    await expectInvalidClient(await token(unsigned));
  });

  test('HS256 signed with the public key as secret is refused', async () => {
    const { SignJWT } = await import('jose');
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({
      iss: agent.clientId,
      sub: agent.clientId,
      aud: tb.url,
      jti: 'hs1',
      exp: now + 60,
    })
      .setProtectedHeader({ alg: 'HS256', kid: agent.kid })
      .sign(new TextEncoder().encode(JSON.stringify(agent.publicJwk)));
    await expectInvalidClient(await token(forged));
  });

  test('an unknown kid is refused', async () => {
    await expectInvalidClient(await token(await clientAssertion(agent, tb.url, { header: { kid: 'nope' } })));
  });

  test('a signature by another key is refused', async () => {
    const { generateKeyPair } = await import('jose');
    const other = await generateKeyPair('ES256');
    await expectInvalidClient(await token(await clientAssertion(agent, tb.url, { key: other.privateKey })));
  });

  test('iss different from sub is refused', async () => {
    await expectInvalidClient(await token(await clientAssertion(agent, tb.url, { claims: { iss: 'someone-else' } })));
  });

  test('a client_id parameter that disagrees with the assertion is refused', async () => {
    await expectInvalidClient(await token(await clientAssertion(agent, tb.url), { client_id: 'cli_other' }));
  });

  test('two authentication methods at once are invalid_request', async () => {
    const res = await token(await clientAssertion(agent, tb.url), { client_secret: 'x', client_id: agent.clientId });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_request' });
  });

  test('wrong client credentials (client_secret for a key-only client) are refused', async () => {
    const res = await postForm(
      `${tb.url}/token`,
      { grant_type: 'client_credentials', resource: RESOURCE },
      {
        authorization: `Basic ${Buffer.from(`${agent.clientId}:guess`).toString('base64')}`,
      },
    );
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect(await res.json()).toMatchObject({ error: 'invalid_client' });
  });
});
