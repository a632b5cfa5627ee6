import { createServer } from 'node:http';
import Provider from 'oidc-provider';

/**
 * The reference peer: panva's oidc-provider issuing JWT access tokens (resource indicators,
 * accessTokenFormat 'jwt', ES256) for client_credentials with private_key_jwt. State in memory.
 * Reads its setup as JSON from BENCH_PEER; prints "ready" when listening.
 */
const setup = JSON.parse(process.env.BENCH_PEER ?? '{}') as {
  port: number;
  clientId: string;
  clientJwk: Record<string, unknown>;
  signingJwk: Record<string, unknown>;
  resource: string;
};
const issuer = `http://127.0.0.1:${setup.port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: setup.clientId,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      id_token_signed_response_alg: 'ES256',
      jwks: { keys: [setup.clientJwk] },
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  scopes: ['read'],
  ttl: { ClientCredentials: 300 },
  jwks: { keys: [setup.signingJwk] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => setup.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read',
        audience: setup.resource,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.on('server_error', (_ctx: unknown, err: unknown) =>
  process.stderr.write(`peer server_error ${String(err)}\n`),
);
createServer(provider.callback()).listen(setup.port, '127.0.0.1', () => process.stdout.write('ready\n'));
