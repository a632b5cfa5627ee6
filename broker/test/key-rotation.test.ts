import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createGuard } from '@errand/guard';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterEach, describe, expect, test } from 'vitest';
import { signingKeys } from '../../db/schema/index.js';
import { postgresMode } from '../../e2e/postgres/databases.js';
import {
  addAgent,
  addResource,
  adminApi,
  discover,
  insecure,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

const RESOURCE = 'https://api.example.test';
const ROTATION = {
  ERRAND_KEY_ROTATION_PERIOD: '3600',
  ERRAND_KEY_PUBLISH_AHEAD: '600',
  ERRAND_ACCESS_TOKEN_TTL: '300',
  ERRAND_CLOCK_SKEW: '30',
};

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.close();
  tb = undefined;
});

async function setup(env: Record<string, string>) {
  tb = await startBroker(env);
  const api = await adminApi(tb);
  await addResource(api, RESOURCE, ['read']);
  const agent = await addAgent(api, { scope: ['read'] });
  const as = await discover(tb);
  const b = tb;
  const clientOf = (a: TestAgent): oauth.Client => ({ client_id: a.clientId, [oauth.clockSkew]: b.clock.offset });
  const request = (a: TestAgent = agent) =>
    oauth.clientCredentialsGrantRequest(
      as,
      clientOf(a),
      oauth.PrivateKeyJwt({ key: a.privateKey, kid: a.kid }),
      new URLSearchParams({ resource: RESOURCE }),
      insecure,
    );
  const issue = async (a: TestAgent = agent) =>
    (await oauth.processClientCredentialsResponse(as, clientOf(a), await request(a))).access_token;
  const jwks = async () =>
    (await (await fetch(`${b.url}/jwks.json`)).json()) as { keys: { kid: string; alg: string }[] };
  const verify = async (token: string) =>
    jwtVerify(token, createLocalJWKSet(await jwks()), {
      issuer: b.url,
      audience: RESOURCE,
      currentDate: new Date(b.clock.now() * 1000),
    });
  return { tb: b, request, issue, jwks, verify };
}

describe('signing key rotation', () => {
  test('the next key is published before it signs; the previous one stays until its tokens expire', async () => {
    const { tb, issue, jwks, verify } = await setup(ROTATION);
    const first = (await jwks()).keys;
    expect(first).toHaveLength(1);
    const k1 = first[0]!.kid;
    expect(decodeProtectedHeader(await issue()).kid).toBe(k1);

    // Before the publish-ahead point nothing new appears.
    tb.clock.advance(2900);
    await tb.broker.maintain();
    expect((await jwks()).keys.map((k) => k.kid)).toEqual([k1]);

    // From rotation - publishAhead the next key is in the JWKS, but k1 still signs.
    tb.clock.advance(100);
    await tb.broker.maintain();
    const published = (await jwks()).keys.map((k) => k.kid);
    expect(published).toHaveLength(2);
    const k2 = published.find((k) => k !== k1)!;
    expect(decodeProtectedHeader(await issue()).kid).toBe(k1);

    // Just before the switch: a token signed by k1 that outlives the rotation.
    tb.clock.advance(595);
    await tb.broker.maintain();
    const lastByK1 = await issue();
    expect(decodeProtectedHeader(lastByK1).kid).toBe(k1);

    // After the switch k2 signs, and k1's token still verifies against the published JWKS.
    tb.clock.advance(10);
    await tb.broker.maintain();
    const byK2 = await issue();
    expect(decodeProtectedHeader(byK2).kid).toBe(k2);
    expect((await verify(lastByK1)).protectedHeader.kid).toBe(k1);
    expect((await verify(byK2)).protectedHeader.kid).toBe(k2);
    expect((await jwks()).keys.map((k) => k.kid).sort()).toEqual([k1, k2].sort());

    // Once every token k1 signed has expired (ttl + skew), k1 leaves the JWKS and its row is deleted.
    tb.clock.advance(300 + 30 + 1);
    await tb.broker.maintain();
    expect((await jwks()).keys.map((k) => k.kid)).toEqual([k2]);
    const rows = await tb.broker.deps.db.q.select({ kid: signingKeys.kid }).from(signingKeys);
    expect(rows.map((r) => r.kid)).toEqual([k2]);
  });

  test('an admin rotate-now schedules the next key after the JWKS cache lifetime, not before', async () => {
    const { tb, issue, jwks } = await setup({ ...ROTATION, ERRAND_JWKS_MAX_AGE: '120' });
    const api = await adminApi(tb);
    const k1 = (await jwks()).keys[0]!.kid;
    // The test clock moves with real time, so bounds are taken before the call.
    const before = tb.clock.now();
    const res = await api.call('POST', '/api/admin/keys/rotate');
    expect(res.status).toBe(202);
    const { kid: k2, activates_at: activatesAt } = (await res.json()) as { kid: string; activates_at: number };
    // Max-age 120 s, plus skew (30 s), a maintenance interval (30 s) and 1 s: config keys.minPublishAhead.
    expect(activatesAt).toBeGreaterThanOrEqual(before + 181);
    expect((await jwks()).keys.map((k) => k.kid).sort()).toEqual([k1, k2].sort());
    expect(decodeProtectedHeader(await issue()).kid).toBe(k1);
    const keys = (await (await api.call('GET', '/api/admin/keys')).json()) as {
      keys: { kid: string; state: string }[];
    };
    expect(keys.keys).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kid: k1, state: 'current' }),
        expect.objectContaining({ kid: k2, state: 'next' }),
      ]),
    );
    // A few seconds short of the activation (real seconds may tick meanwhile), then past it.
    tb.clock.advance(activatesAt - tb.clock.now() - 3);
    expect(decodeProtectedHeader(await issue()).kid).toBe(k1);
    tb.clock.advance(4);
    expect(decodeProtectedHeader(await issue()).kid).toBe(k2);
  });

  test('after a backward clock step past every activation, the key that was signing keeps signing', async () => {
    const { tb, request, issue, jwks, verify } = await setup(ROTATION);
    const k1 = (await jwks()).keys[0]!.kid;
    // The next key is published (it activates in 600 s); then the clock steps back two hours, before
    // the activation of both keys.
    tb.clock.advance(3000);
    await tb.broker.maintain();
    const both = (await jwks()).keys.map((k) => k.kid).sort();
    expect(both).toHaveLength(2);
    tb.clock.advance(-3000 - 7200);

    const res = await request();
    expect(res.status).toBe(200);
    const { access_token: token } = (await res.json()) as { access_token: string };
    expect(decodeProtectedHeader(token).kid).toBe(k1);
    expect((await verify(token)).protectedHeader.kid).toBe(k1);

    // Maintenance creates no key to sign at once (verifiers would not know it) and deletes none.
    await tb.broker.maintain();
    expect((await jwks()).keys.map((k) => k.kid).sort()).toEqual(both);
    expect(decodeProtectedHeader(await issue()).kid).toBe(k1);
    const keys = (await (await (await adminApi(tb)).call('GET', '/api/admin/keys')).json()) as {
      keys: { kid: string; state: string }[];
    };
    expect(keys.keys.find((k) => k.kid === k1)?.state).toBe('current');

    // When the clock comes back, the schedule resumes where it was.
    tb.clock.advance(7200 + 3000 + 601);
    await tb.broker.maintain();
    const k2 = both.find((k) => k !== k1)!;
    const after = await issue();
    expect(decodeProtectedHeader(after).kid).toBe(k2);
    expect((await verify(after)).protectedHeader.kid).toBe(k2);
  });

  test('EdDSA is selectable', async () => {
    const { issue, verify, jwks } = await setup({ ERRAND_SIGNING_ALG: 'EdDSA' });
    const token = await issue();
    expect(decodeProtectedHeader(token).alg).toBe('EdDSA');
    expect((await jwks()).keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
    expect((await verify(token)).payload.aud).toBe(RESOURCE);
  });

  test('private keys are sealed at rest and the generated master key file is 0600', async () => {
    const { tb } = await setup({});
    expect(statSync(join(tb.dir, 'master.key')).mode & 0o777).toBe(0o600);
    const rows = await tb.broker.deps.db.q.select().from(signingKeys);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.privateKeySealed).toMatch(/^v1\./);
      expect(row.privateKeySealed).not.toMatch(/PRIVATE KEY/);
    }
    // The bytes of the embedded file; PostgreSQL keeps its pages elsewhere (the rows above are checked there too).
    if (postgresMode()) return;
    await tb.broker.deps.db.exec('PRAGMA wal_checkpoint(FULL)');
    const file = readFileSync(join(tb.dir, 'errand.db')).toString('latin1');
    expect(file).not.toMatch(/BEGIN PRIVATE KEY/);
    expect(file).not.toMatch(/"d":"/);
  });
});

describe('a guard across rotations', () => {
  test('accepts every freshly issued token right after each rotation, whenever it last fetched the JWKS', async () => {
    // Short rotation: publish-ahead 8 s is below the guard's 10 s unknown-kid refetch cooldown, and
    // above the least the config accepts with a 2 s JWKS max-age and no skew (4 s).
    const PERIOD = 20;
    const { tb, issue } = await setup({
      ERRAND_KEY_ROTATION_PERIOD: String(PERIOD),
      ERRAND_KEY_PUBLISH_AHEAD: '8',
      ERRAND_JWKS_MAX_AGE: '2',
      ERRAND_CLOCK_SKEW: '0',
      ERRAND_ACCESS_TOKEN_TTL: '30',
    });
    // A new guard starts every second, so some fetched the JWKS at every offset to a rotation; each
    // guard verifies the token just issued for one rotation period.
    const guards: { since: number; verify: (token: string) => Promise<string | null> }[] = [];
    const refused: string[] = [];
    const signers = new Set<string>();
    for (let step = 0; step < 3 * PERIOD; step++) {
      tb.clock.advance(1);
      await tb.broker.maintain();
      const token = await issue();
      signers.add(decodeProtectedHeader(token).kid!);
      const guard = createGuard({ issuer: tb.url, resource: RESOURCE, now: () => tb.clock.now(), clockSkew: 0 });
      guards.push({
        since: step,
        verify: async (t) => {
          const r = await guard.verify({ authorization: `Bearer ${t}`, method: 'GET', url: RESOURCE });
          return r.ok ? null : r.description;
        },
      });
      for (const g of guards.filter((g) => step - g.since < PERIOD)) {
        const problem = await g.verify(token);
        if (problem) refused.push(`step ${step}, guard started at step ${g.since}: ${problem}`);
      }
    }
    expect(signers.size).toBeGreaterThanOrEqual(3);
    expect(refused).toEqual([]);
  });
});
