import { describe, expect, test } from 'vitest';
import { IssuerKeys, remainingFreshness } from '../src/discovery.js';
import { fakeIssuer } from './fake-issuer.js';

const headers = (h: Record<string, string>) => new Headers(h);

describe('remainingFreshness (RFC 9111 §4.2)', () => {
  test('max-age less Age; no-store and no-cache are 0; nothing said is null', () => {
    expect(remainingFreshness(headers({ 'cache-control': 'public, max-age=300' }))).toBe(300);
    expect(remainingFreshness(headers({ 'cache-control': 'max-age=300', age: '120' }))).toBe(180);
    expect(remainingFreshness(headers({ 'cache-control': 'max-age=60', age: '500' }))).toBe(0);
    expect(remainingFreshness(headers({ 'cache-control': 'Max-Age="42"' }))).toBe(42);
    expect(remainingFreshness(headers({ 'cache-control': 'no-cache, max-age=300' }))).toBe(0);
    expect(remainingFreshness(headers({ 'cache-control': 'no-store' }))).toBe(0);
    // s-maxage is for shared caches; the guard is a private one.
    expect(remainingFreshness(headers({ 'cache-control': 's-maxage=30' }))).toBeNull();
    expect(remainingFreshness(headers({}))).toBeNull();
    expect(remainingFreshness(headers({ 'cache-control': 'max-age=abc' }))).toBeNull();
  });
});

describe('IssuerKeys', () => {
  async function world(jwksHeaders: Record<string, string>) {
    const as = await fakeIssuer();
    const jwksUrl = `${as.issuer}/jwks.json`;
    const serve = as.routes.get(jwksUrl)!;
    as.routes.set(jwksUrl, async () => {
      const res = await serve();
      return new Response(res.body, { headers: { 'content-type': 'application/json', ...jwksHeaders } });
    });
    let now = 1_000_000;
    const keys = new IssuerKeys({ issuer: as.issuer, fetch: as.fetch, now: () => now });
    const use = () => keys.getKey({ alg: 'ES256', kid: 'k1' }, { payload: '', signature: '', protected: '' });
    return {
      fetches: () => as.count(jwksUrl),
      use,
      advance: (s: number) => {
        now += s;
      },
    };
  }

  test('the JWKS is refreshed when its Cache-Control max-age has passed', async () => {
    const w = await world({ 'cache-control': 'public, max-age=5' });
    await w.use();
    expect(w.fetches()).toBe(1);
    w.advance(5);
    await w.use();
    expect(w.fetches()).toBe(1);
    w.advance(1);
    await w.use();
    expect(w.fetches()).toBe(2);
  });

  test('without Cache-Control it is kept for the 600 s ceiling; max-age=0 still holds for 1 s', async () => {
    const plain = await world({});
    await plain.use();
    plain.advance(600);
    await plain.use();
    expect(plain.fetches()).toBe(1);
    plain.advance(1);
    await plain.use();
    expect(plain.fetches()).toBe(2);

    const uncached = await world({ 'cache-control': 'max-age=0' });
    await uncached.use();
    await uncached.use();
    expect(uncached.fetches()).toBe(1);
    uncached.advance(2);
    await uncached.use();
    expect(uncached.fetches()).toBe(2);
  });
});
