import { AgentKeys, privateKeyJwt } from '@errand/agent';
import { type ServerType, serve } from '@hono/node-server';
import { Hono } from 'hono';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { newId } from '../tokens/random.js';
import { addResource, adminApi, freePort, postForm, startBroker, type TestBroker } from './fixtures.js';

const NOTES = 'https://notes.example.test/mcp';

let tb: TestBroker;
let keys: AgentKeys;
let jwksServer: ServerType;
let jwksUri: string;
let fetches = 0;
let clientId: string;

/** client_credentials with the given assertion. */
function tokenWith(assertion: string) {
  return postForm(`${tb.url}/token`, {
    grant_type: 'client_credentials',
    resource: NOTES,
    scope: 'notes:read',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  });
}

/** An assertion signed with the agent's current key (the SDK's private_key_jwt). */
async function current(): Promise<string> {
  const { client_assertion } = await privateKeyJwt({ clientId, keys }).authenticate(tb.url, tb.clock.now());
  return client_assertion;
}

beforeAll(async () => {
  tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true' });
  keys = await AgentKeys.create({ keep: 2 });
  // The agent publishes its own JWKS; Errand only ever reads keys from here.
  const port = await freePort();
  jwksUri = `http://127.0.0.1:${port}/jwks.json`;
  const app = new Hono().get('/jwks.json', (c) => {
    fetches++;
    return c.json(keys.jwks());
  });
  jwksServer = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () => resolve(s));
  });
  const api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read']);
  const res = await api.call('POST', '/api/admin/clients', {
    kind: 'agent',
    name: 'rotating agent',
    jwks_uri: jwksUri,
    grant_types: ['client_credentials'],
    scope: ['notes:read'],
  });
  expect(res.status).toBe(201);
  clientId = ((await res.json()) as { client_id: string }).client_id;
});
afterAll(async () => {
  await new Promise<void>((r) => jwksServer?.close(() => r()));
  await tb?.close();
});

describe('agent key rotation through jwks_uri', () => {
  test('keys rotated every few minutes are picked up by refetching on an unknown kid', async () => {
    expect((await tokenWith(await current())).status).toBe(200);
    const afterFirst = fetches;
    expect(afterFirst).toBe(1);
    for (let i = 0; i < 4; i++) {
      tb.clock.advance(180); // every three minutes
      await keys.rotate();
      const res = await tokenWith(await current());
      expect(res.status, `rotation ${i + 1}`).toBe(200);
    }
    // One refetch per rotation, no more.
    expect(fetches).toBe(afterFirst + 4);
  });

  test('refetching is rate-limited: an unknown kid right after a fetch is refused without a new fetch', async () => {
    tb.clock.advance(60);
    await keys.rotate();
    expect((await tokenWith(await current())).status).toBe(200); // unknown kid: one refetch
    const before = fetches;
    // Rotated again at once: the set was fetched less than 10 s ago, so no new fetch and no key.
    await keys.rotate();
    const early = await tokenWith(await current());
    expect(early.status).toBe(401);
    expect(await early.json()).toMatchObject({ error: 'invalid_client' });
    expect(fetches).toBe(before);
    tb.clock.advance(11);
    expect((await tokenWith(await current())).status).toBe(200);
    expect(fetches).toBe(before + 1);
  });

  test('a key Errand has not seen from the registered source is never accepted', async () => {
    tb.clock.advance(30);
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(publicKey);
    const now = tb.clock.now();
    const claims = { iss: clientId, sub: clientId, aud: tb.url, iat: now, exp: now + 60 };
    // Its own key in the header (jwk) or a URL of its choosing (jku): ignored; the kid is unknown.
    const embedded = await new SignJWT({ ...claims, jti: newId('j') })
      .setProtectedHeader({ alg: 'ES256', kid: 'attacker', jwk, jku: 'http://127.0.0.1:1/jwks.json' })
      .sign(privateKey);
    const before = fetches;
    expect((await tokenWith(embedded)).status).toBe(401);
    expect(fetches).toBe(before + 1); // it looked at the registered source, and only there
    // A published kid with another key behind it: the signature does not verify.
    const impostor = await new SignJWT({ ...claims, jti: newId('j') })
      .setProtectedHeader({ alg: 'ES256', kid: keys.kid })
      .sign(privateKey);
    const res = await tokenWith(impostor);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'invalid_client' });
  });
});
