import { deflateSync } from 'node:zlib';
import { type CryptoKey, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';

/**
 * An in-memory authorization server for unit tests of the guard: RFC 8414 metadata, a JWKS and
 * status lists served through the guard's `fetch` option, with a signer for hand-made tokens
 * (DPoP-bound ones, RS256 ones, broken status lists) that Errand itself does not issue.
 */
export async function fakeIssuer(opts: { alg?: 'ES256' | 'RS256' | 'PS256' } = {}) {
  const alg = opts.alg ?? 'ES256';
  const issuer = 'https://as.example.test';
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg, use: 'sig' };
  const routes = new Map<string, () => Response | Promise<Response>>();
  const calls: string[] = [];
  routes.set(`${issuer}/.well-known/oauth-authorization-server`, () =>
    Response.json({ issuer, jwks_uri: `${issuer}/jwks.json` }),
  );
  routes.set(`${issuer}/jwks.json`, () => Response.json({ keys: [jwk] }));
  const fetchImpl: typeof fetch = async (input) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    calls.push(url);
    const route = routes.get(url);
    return route ? route() : new Response('not found', { status: 404 });
  };
  const sign = (claims: JWTPayload, header: Record<string, unknown> = {}, key: CryptoKey = privateKey) =>
    new SignJWT(claims).setProtectedHeader({ alg, kid: 'k1', typ: 'at+jwt', ...header }).sign(key);
  return {
    issuer,
    alg,
    routes,
    calls,
    fetch: fetchImpl,
    sign,
    /** Calls to one URL so far. */
    count: (url: string) => calls.filter((c) => c === url).length,
    /** Serves a Status List Token at `uri` (statuses by index; other claims and headers overridable). */
    async serveStatusList(
      uri: string,
      statuses: number[],
      over: {
        claims?: Record<string, unknown>;
        header?: Record<string, unknown>;
        headers?: Record<string, string>;
      } = {},
    ) {
      const bytes = Buffer.alloc(Math.max(1, Math.ceil(statuses.length / 8)));
      statuses.forEach((s, i) => {
        if (s) bytes[i >> 3]! |= 1 << (i & 7);
      });
      const now = Math.floor(Date.now() / 1000);
      const token = await sign(
        {
          sub: uri,
          iat: now,
          exp: now + 600,
          ttl: 10,
          status_list: { bits: 1, lst: deflateSync(bytes).toString('base64url') },
          ...over.claims,
        },
        { typ: 'statuslist+jwt', ...over.header },
      );
      routes.set(
        uri,
        () =>
          new Response(token, {
            headers: { 'content-type': 'application/statuslist+jwt', ...over.headers },
          }),
      );
    },
  };
}

/** Standard claims of a valid access token from the fake issuer for `aud`. */
export function accessClaims(issuer: string, aud: string, over: Record<string, unknown> = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: issuer,
    sub: 'usr_1',
    aud,
    exp: now + 300,
    iat: now,
    jti: `at_${Math.random().toString(36).slice(2)}`,
    client_id: 'agt_1',
    scope: 'notes:read',
    ...over,
  };
}
