import { ASSERTION_ALGS, AUTH_METHOD, DETAILS_TYPE, DPOP, OIDC_SCOPE, PATHS } from '@errand/protocol';
import { Hono } from 'hono';
import type { KeyRing } from '../../tokens/key-ring.js';
import type { AppEnv } from '../types.js';

export interface MetadataDeps {
  issuer: string;
  keys: KeyRing;
  grantTypes: () => string[];
  scopes: () => Promise<string[]>;
  dcrEnabled: boolean;
  cimdEnabled: boolean;
  jwksMaxAge: number;
}

/** Claims Errand's ID tokens and UserInfo responses carry (OpenID Connect Discovery §3 `claims_supported`). */
const CLAIMS = ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'name', 'preferred_username'];

/**
 * RFC 8414 metadata (only what Errand really supports), served again as the OpenID Provider
 * metadata (OpenID Connect Discovery 1.0 §3, §4: one document, so the two can never disagree),
 * and the JWKS (RFC 7517).
 */
export function metadataRoutes(deps: MetadataDeps) {
  const url = (path: string) => `${deps.issuer}${path}`;
  const metadata = async () => {
    const authMethods = [
      AUTH_METHOD.privateKeyJwt,
      AUTH_METHOD.clientSecretBasic,
      AUTH_METHOD.clientSecretPost,
      AUTH_METHOD.none,
    ];
    return {
      issuer: deps.issuer,
      authorization_endpoint: url(PATHS.authorize),
      token_endpoint: url(PATHS.token),
      jwks_uri: url(PATHS.jwks),
      // OIDC Core §5.3: claims about the person, for an access token issued for this endpoint.
      userinfo_endpoint: url(PATHS.userinfo),
      ...(deps.dcrEnabled ? { registration_endpoint: url(PATHS.register) } : {}),
      revocation_endpoint: url(PATHS.revoke),
      introspection_endpoint: url(PATHS.introspect),
      scopes_supported: [...new Set([OIDC_SCOPE.openid, ...(await deps.scopes())])].sort(),
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      // OpenID Connect Discovery §3: `sub` is the person's Errand user id, the same for every client.
      subject_types_supported: ['public'],
      claims_supported: CLAIMS,
      claims_parameter_supported: false,
      request_parameter_supported: false,
      // Its default is true (Discovery §3), and Errand refuses request objects.
      request_uri_parameter_supported: false,
      grant_types_supported: deps.grantTypes(),
      token_endpoint_auth_methods_supported: authMethods,
      token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
      revocation_endpoint_auth_methods_supported: authMethods,
      revocation_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
      // RFC 7662 §2.1: introspection callers must authenticate, so public clients cannot.
      introspection_endpoint_auth_methods_supported: authMethods.filter((m) => m !== AUTH_METHOD.none),
      introspection_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: true,
      client_id_metadata_document_supported: deps.cimdEnabled,
      resource_indicators_supported: true,
      access_token_signing_alg_values_supported: [deps.keys.signingKey().alg],
      // OpenID CIBA (poll mode): agents ask users for delegations without a browser.
      backchannel_authentication_endpoint: url(PATHS.backchannel),
      backchannel_token_delivery_modes_supported: ['poll'],
      backchannel_user_code_parameter_supported: false,
      // CIBA responses carry an ID token (CIBA §10.1.1), signed like every Errand JWT.
      id_token_signing_alg_values_supported: [deps.keys.signingKey().alg],
      // RFC 9396: named MCP tools, and the task a token exchange is for.
      authorization_details_types_supported: [DETAILS_TYPE.mcpTool, DETAILS_TYPE.task],
      // RFC 9449 §5.1: sender-constrained tokens; proofs with these algorithms are accepted.
      dpop_signing_alg_values_supported: [...DPOP.algs],
    };
  };
  const cache = { 'Cache-Control': 'public, max-age=300' };
  return new Hono<AppEnv>()
    .get(PATHS.asMetadata, async (c) => c.json(await metadata(), 200, cache))
    .get(PATHS.openidConfiguration, async (c) => c.json(await metadata(), 200, cache))
    .get(PATHS.jwks, (c) =>
      c.json(deps.keys.jwks(), 200, {
        'Content-Type': 'application/jwk-set+json',
        'Cache-Control': `public, max-age=${deps.jwksMaxAge}`,
      }),
    );
}
