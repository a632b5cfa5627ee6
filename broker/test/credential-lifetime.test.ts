import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { signingKeys } from '../../db/schema/index.js';
import { delegateViaCiba, delegationWorld, exchangeRaw, introspector, TT_JWT } from './delegation-fixtures.js';
import { freePort, startBroker, type TestBroker } from './fixtures.js';

const NOTES = 'https://notes.example.test/mcp';
const TASKS = 'https://tasks.example.test/api';
const PERIOD = 60;
const SKEW = 5;
// Rotation every minute, 30 s access tokens, delegations of 10 minutes: a credential and an ID token
// (300 s) outlive many keys. Publish-ahead 20 s is above the least the config accepts here (8 s).
const ENV = {
  ERRAND_KEY_ROTATION_PERIOD: String(PERIOD),
  ERRAND_KEY_PUBLISH_AHEAD: '20',
  ERRAND_JWKS_MAX_AGE: '0',
  ERRAND_CLOCK_SKEW: String(SKEW),
  ERRAND_ACCESS_TOKEN_TTL: '30',
  ERRAND_DELEGATION_DEFAULT_TTL: '600',
};
const STEP = 10;
/** HTTP checks stay this far from an `exp`: the broker's clock may tick between our reading and its own. */
const MARGIN = 2;

let tb: TestBroker;
beforeAll(async () => {
  tb = await startBroker(ENV);
});
afterAll(() => tb.close());

describe('credentials outlive the key that signed them', () => {
  test('a delegation credential, its ID token and task tokens stay valid across rotations until their own exp', async () => {
    const w = await delegationWorld(tb, { agents: 1, resources: { [NOTES]: ['notes:read'] } });
    const agent = w.agents[0]!;
    const { credential, tokens } = await delegateViaCiba(tb, w.as, agent, w.user, {
      scope: 'openid notes:read',
      resource: NOTES,
    });
    const idToken = tokens.id_token!;
    const introspect = await introspector(tb, w.api, [NOTES]);
    const credentialKid = decodeProtectedHeader(credential).kid!;
    expect(decodeProtectedHeader(idToken).kid).toBe(credentialKid);
    const credentialExp = decodeJwt(credential).exp!;
    const idTokenExp = decodeJwt(idToken).exp!;
    expect(credentialExp - tb.clock.now()).toBeGreaterThan(8 * PERIOD);

    const failures: string[] = [];
    const signers = new Set<string>();
    let live: { token: string; exp: number; kid: string }[] = [];
    const jwks = async () => (await (await fetch(`${tb.url}/jwks.json`)).json()) as JSONWebKeySet;

    while (tb.clock.now() < credentialExp + SKEW + 3 * STEP) {
      tb.clock.advance(STEP);
      await tb.broker.maintain();
      const now = tb.clock.now();
      const keySet = createLocalJWKSet(await jwks());
      const at = `t+${now - idTokenExp + 300}s`;

      // The credential still starts tasks at /token until its exp, and only then is refused.
      const res = await exchangeRaw(tb, w.as, agent, {
        subject_token: credential,
        subject_token_type: TT_JWT,
        resource: NOTES,
      });
      const body = (await res.json()) as { access_token?: string; error?: string };
      if (now < credentialExp - MARGIN) {
        if (res.status !== 200) failures.push(`${at}: credential refused (${res.status} ${body.error})`);
        else {
          const kid = decodeProtectedHeader(body.access_token!).kid!;
          signers.add(kid);
          live.push({ token: body.access_token!, exp: decodeJwt(body.access_token!).exp!, kid });
        }
      } else if (now > credentialExp + MARGIN && (res.status !== 400 || body.error !== 'invalid_request')) {
        failures.push(`${at}: expired credential answered ${res.status} ${body.error}`);
      }

      // The ID token verifies against the published JWKS with an independent library until its exp.
      const id = await jwtVerify(idToken, keySet, {
        issuer: tb.url,
        audience: agent.clientId,
        currentDate: new Date(now * 1000),
      }).then(
        () => 'ok',
        (err: Error) => err.name,
      );
      if (now < idTokenExp && id !== 'ok') failures.push(`${at}: ID token refused (${id})`);
      if (now >= idTokenExp && id === 'ok') failures.push(`${at}: expired ID token accepted`);

      // Task tokens verify and introspect active until their exp, whichever key signed them.
      for (const t of live) {
        const verified = await jwtVerify(t.token, keySet, {
          issuer: tb.url,
          audience: NOTES,
          currentDate: new Date(now * 1000),
        }).then(
          () => 'ok',
          (err: Error) => err.name,
        );
        if (now < t.exp && verified !== 'ok') failures.push(`${at}: task token by ${t.kid} refused (${verified})`);
        if (now >= t.exp && verified === 'ok') failures.push(`${at}: expired task token accepted`);
        if (Math.abs(now - t.exp) > MARGIN) {
          const active = (await introspect(t.token)).active;
          if (active !== now < t.exp) failures.push(`${at}: task token by ${t.kid} introspects active=${active}`);
        }
      }
      live = live.filter((t) => now < t.exp + 2 * STEP);
    }

    expect(failures).toEqual([]);
    // Task tokens were signed by many successive keys while the credential's key stayed published.
    expect(signers.size).toBeGreaterThanOrEqual(8);
    // Once the credential has expired (plus skew), its key is gone: retention follows what was signed.
    const published = ((await jwks()).keys as { kid: string }[]).map((k) => k.kid);
    expect(published).not.toContain(credentialKid);
    const rows = await tb.broker.deps.db.q.select({ kid: signingKeys.kid }).from(signingKeys);
    expect(rows.map((r) => r.kid)).not.toContain(credentialKid);
  });

  test('another process on the same database keeps the key too: the record is in the database', async () => {
    // A second broker process (same issuer, same database and master key, its own port).
    const port = await freePort();
    const other = await startBroker(
      { ...ENV, ERRAND_PORT: String(port), ERRAND_ISSUER: tb.url },
      { dir: tb.dir, clock: tb.clock },
    );
    const otherUrl = `http://127.0.0.1:${port}`;
    try {
      const w = await delegationWorld(tb, { agents: 1, resources: { [TASKS]: ['tasks:read'] } });
      const agent = w.agents[0]!;
      const { credential } = await delegateViaCiba(tb, w.as, agent, w.user, {
        scope: 'openid tasks:read',
        resource: TASKS,
      });
      const kid = decodeProtectedHeader(credential).kid!;
      const atOther = { ...w.as, token_endpoint: `${otherUrl}/token` };
      const failures: string[] = [];
      // Past the usual retention (a rotation plus 300 s plus skew), maintained by both processes.
      for (let elapsed = 0; elapsed < 2 * PERIOD + 400; elapsed += 2 * STEP) {
        tb.clock.advance(2 * STEP);
        await other.broker.maintain();
        await tb.broker.maintain();
        const res = await exchangeRaw(tb, atOther, agent, {
          subject_token: credential,
          subject_token_type: TT_JWT,
          resource: TASKS,
        });
        if (res.status !== 200) failures.push(`+${elapsed}s: ${res.status} ${await res.text()}`);
        const published = ((await (await fetch(`${otherUrl}/jwks.json`)).json()) as { keys: { kid: string }[] }).keys;
        if (!published.some((k) => k.kid === kid)) failures.push(`+${elapsed}s: key missing from the other JWKS`);
      }
      expect(failures).toEqual([]);
    } finally {
      await other.close();
    }
  });
});
