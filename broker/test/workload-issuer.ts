import { type ServerType, serve } from '@hono/node-server';
import { Hono } from 'hono';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { newId } from '../tokens/random.js';
import { freePort } from './fixtures.js';

/**
 * A small workload identity platform for tests, played by a real HTTP server: it publishes OpenID
 * metadata and a JWKS (with `use: jwt-svid` keys, as a SPIFFE bundle does, next to an X.509-SVID
 * entry that must be ignored) and signs workload tokens: SPIFFE JWT-SVIDs, Kubernetes-style and
 * CI-style OIDC tokens. Its clock is the caller's, so tests can move time.
 */
export interface WorkloadIssuer {
  /** The issuer identifier (`iss` of its OIDC tokens). */
  url: string;
  /** Its OpenID JWKS (`use: sig`), named by its metadata. */
  jwksUri: string;
  /** Its SPIFFE trust bundle (`use: jwt-svid`, plus an X.509-SVID entry). */
  bundleUri: string;
  /** The SPIFFE bundle it publishes, for registering it statically. */
  jwks(): { keys: JWK[] };
  /** Signs a token; claims and header can be overridden to build attacks. */
  sign(
    claims: Record<string, unknown>,
    opts?: { lifetime?: number; header?: Record<string, unknown>; key?: CryptoKey; omitIss?: boolean },
  ): Promise<string>;
  /** A fresh JWT-SVID for a SPIFFE ID (no `iss`, as SPIRE issues them by default). */
  svid(spiffeId: string, audience: string, extra?: Record<string, unknown>): Promise<string>;
  /** How many times the JWKS was fetched. */
  jwksFetches: number;
  close(): Promise<void>;
}

export async function startWorkloadIssuer(opts: { now: () => number }): Promise<WorkloadIssuer> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = newId('svid');
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'jwt-svid' };
  // An X.509-SVID entry of the bundle: a JWT verifier must never use it (SPIFFE bundle §4).
  const x509 = await generateKeyPair('ES256');
  const x509Jwk: JWK = { ...(await exportJWK(x509.publicKey)), kid: 'x509-entry', use: 'x509-svid' };
  const jwks = { keys: [publicJwk, x509Jwk] };
  const oidcJwks = { keys: [{ ...publicJwk, use: 'sig' }] };

  const state = { jwksFetches: 0 };
  const app = new Hono()
    .get('/.well-known/openid-configuration', (c) =>
      c.json({ issuer: url, jwks_uri: `${url}/keys`, id_token_signing_alg_values_supported: ['ES256'] }),
    )
    .get('/keys', (c) => {
      state.jwksFetches++;
      return c.json(oidcJwks);
    })
    .get('/bundle', (c) => {
      state.jwksFetches++;
      return c.json(jwks);
    });
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () => resolve(s));
  });

  const sign: WorkloadIssuer['sign'] = async (claims, o = {}) => {
    const iat = opts.now();
    const body: Record<string, unknown> = {
      iss: url,
      iat,
      exp: iat + (o.lifetime ?? 120),
      jti: newId('wl'),
      ...claims,
    };
    if (o.omitIss) delete body.iss;
    return new SignJWT(body)
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT', ...o.header })
      .sign(o.key ?? privateKey);
  };
  return {
    url,
    jwksUri: `${url}/keys`,
    bundleUri: `${url}/bundle`,
    jwks: () => structuredClone(jwks),
    sign,
    svid: (spiffeId, audience, extra = {}) => sign({ sub: spiffeId, aud: [audience], ...extra }, { omitIss: true }),
    get jwksFetches() {
      return state.jwksFetches;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
