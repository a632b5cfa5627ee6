import { describe, expect, test } from 'vitest';
import { createGuard } from '../src/guard.js';
import { inflateStatusList, readStatusAt } from '../src/status-list.js';
import { accessClaims, fakeIssuer } from './fake-issuer.js';

const RESOURCE = 'https://tools.example.test/mcp';

describe('status list decoding (draft-ietf-oauth-status-list §4.1 test vectors)', () => {
  test('bits=1 and bits=2 vectors', () => {
    const one = inflateStatusList('eNrbuRgAAhcBXQ');
    expect(Buffer.from(one).toString('hex')).toBe('b9a3');
    expect([...Array(16).keys()].map((i) => readStatusAt(one, i, 1))).toEqual([
      1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1,
    ]);
    expect(readStatusAt(one, 16, 1)).toBeNull();
    const two = inflateStatusList('eNo76fITAAPfAgc');
    expect([...Array(12).keys()].map((i) => readStatusAt(two, i, 2))).toEqual([1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]);
  });
});

/** A guard on a fake issuer whose clock the test moves. */
async function world(maxTtl = 60) {
  const as = await fakeIssuer();
  const uri = `${as.issuer}/statuslists/0`;
  let now = Math.floor(Date.now() / 1000);
  const guard = createGuard({
    issuer: as.issuer,
    resource: RESOURCE,
    fetch: as.fetch,
    now: () => now,
    statusList: { maxTtl },
  });
  const tokenAt = (idx: number, listUri = uri) =>
    as.sign(accessClaims(as.issuer, RESOURCE, { status: { status_list: { idx, uri: listUri } } }));
  const verify = async (token: string) =>
    guard.verify({ authorization: `Bearer ${token}`, method: 'POST', url: RESOURCE });
  return { as, uri, guard, tokenAt, verify, advance: (s: number) => (now += s), fetches: () => as.count(uri) };
}

describe('the guard reads the status list (Token Status List §8.3)', () => {
  test('a 0 bit is accepted and a 1 bit refused', async () => {
    const w = await world();
    await w.as.serveStatusList(w.uri, [0, 1, 0]);
    expect(await w.verify(await w.tokenAt(0))).toMatchObject({ ok: true });
    expect(await w.verify(await w.tokenAt(1))).toMatchObject({
      ok: false,
      status: 401,
      error: 'invalid_token',
      description: 'the access token has been revoked',
    });
  });

  test('an index beyond the list is refused (§8.3 step 6)', async () => {
    const w = await world();
    await w.as.serveStatusList(w.uri, [0, 0, 0]);
    // 3 entries fit in one byte: indexes 0..7 exist, 8 does not.
    expect(await w.verify(await w.tokenAt(8))).toMatchObject({
      ok: false,
      description: expect.stringMatching(/outside/),
    });
  });

  test('an index beyond a cached list older than the token causes one refetch (the list grew)', async () => {
    const w = await world();
    const now = Math.floor(Date.now() / 1000);
    await w.as.serveStatusList(w.uri, [0, 0, 0], { claims: { iat: now - 5 } });
    expect(await w.verify(await w.tokenAt(0))).toMatchObject({ ok: true });
    await w.as.serveStatusList(w.uri, new Array(16).fill(0));
    expect(await w.verify(await w.tokenAt(12))).toMatchObject({ ok: true });
    expect(w.fetches()).toBe(2);
    // A token older than the cached list gets no refetch: the list already had every index it could have.
    const old = await w.as.sign(
      accessClaims(w.as.issuer, RESOURCE, { iat: now - 100, status: { status_list: { idx: 20, uri: w.uri } } }),
    );
    expect(await w.verify(old)).toMatchObject({ ok: false, description: expect.stringMatching(/outside/) });
    expect(w.fetches()).toBe(2);
  });

  test('a list with the wrong sub, expired, wrong typ, unsigned by the issuer, or unavailable: refused (fail closed)', async () => {
    const cases: [string, (w: Awaited<ReturnType<typeof world>>) => Promise<void>][] = [
      ['sub', (w) => w.as.serveStatusList(w.uri, [0], { claims: { sub: `${w.as.issuer}/statuslists/9` } })],
      ['exp', (w) => w.as.serveStatusList(w.uri, [0], { claims: { exp: Math.floor(Date.now() / 1000) - 120 } })],
      ['typ', (w) => w.as.serveStatusList(w.uri, [0], { header: { typ: 'JWT' } })],
      ['kid', (w) => w.as.serveStatusList(w.uri, [0], { header: { kid: 'unknown' } })],
      ['500', async (w) => void w.as.routes.set(w.uri, () => new Response('oops', { status: 500 }))],
      ['ctype', (w) => w.as.serveStatusList(w.uri, [0], { headers: { 'content-type': 'text/plain' } })],
    ];
    for (const [name, serve] of cases) {
      const w = await world();
      await serve(w);
      const result = await w.verify(await w.tokenAt(0));
      expect(result, name).toMatchObject({ ok: false, status: 401, error: 'invalid_token' });
    }
  });

  test('a status list URI outside the issuer is never fetched', async () => {
    const w = await world();
    const foreign = 'https://elsewhere.example.test/statuslists/0';
    await w.as.serveStatusList(foreign, [0]);
    expect(await w.verify(await w.tokenAt(0, foreign))).toMatchObject({ ok: false, error: 'invalid_token' });
    expect(w.as.count(foreign)).toBe(0);
  });

  test('caching follows the token ttl, not HTTP cache headers, clamped to maxTtl', async () => {
    const w = await world(60);
    // ttl 10 s; the HTTP layer says "do not cache": the token wins (§8.2).
    await w.as.serveStatusList(w.uri, [0, 0], { headers: { 'cache-control': 'no-store' } });
    const token = await w.tokenAt(0);
    for (let i = 0; i < 3; i++) expect(await w.verify(token)).toMatchObject({ ok: true });
    expect(w.fetches()).toBe(1);
    w.advance(11);
    expect(await w.verify(token)).toMatchObject({ ok: true });
    expect(w.fetches()).toBe(2);

    const clamped = await world(5);
    await clamped.as.serveStatusList(clamped.uri, [0], { claims: { ttl: 100_000 } });
    const t = await clamped.tokenAt(0);
    await clamped.verify(t);
    clamped.advance(6);
    await clamped.verify(t);
    expect(clamped.fetches()).toBe(2);

    const tiny = await world(60);
    await tiny.as.serveStatusList(tiny.uri, [0], { claims: { ttl: 0.001 } });
    const t2 = await tiny.tokenAt(0);
    await tiny.verify(t2);
    await tiny.verify(t2);
    expect(tiny.fetches()).toBe(1);
  });
});
