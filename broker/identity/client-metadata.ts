import { AUTH_METHOD, type AuthMethod, ERRAND_SCOPE, GRANT_TYPE, type GrantType, parseScope } from '@errand/protocol';
import { z } from 'zod';
import { redirectUriProblem } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import { AGENT_GRANTS } from '../core/initial-access-token.js';

// README "Admin API": only a client an administrator creates as an admin service may hold it.
const ADMIN_SCOPE_REFUSED = `scope: "${ERRAND_SCOPE.admin}" is only for admin service clients an administrator creates`;

/**
 * Client metadata (RFC 7591 §2), shared by Dynamic Client Registration and Client ID Metadata
 * Documents. Unknown members are ignored, as RFC 7591 §2 asks; known ones are checked strictly.
 */
const httpsUrl = z.string().max(2048).url();
export const ClientMetadataSchema = z.object({
  client_id: z.string().max(2048).optional(),
  redirect_uris: z.array(z.string().max(2048)).max(20).optional(),
  token_endpoint_auth_method: z.string().max(64).optional(),
  grant_types: z.array(z.string().max(128)).max(10).optional(),
  response_types: z.array(z.string().max(64)).max(5).optional(),
  client_name: z.string().min(1).max(200).optional(),
  client_uri: httpsUrl.optional(),
  logo_uri: httpsUrl.optional(),
  tos_uri: httpsUrl.optional(),
  policy_uri: httpsUrl.optional(),
  contacts: z.array(z.string().max(320)).max(10).optional(),
  scope: z.string().max(2048).optional(),
  jwks_uri: httpsUrl.optional(),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) }).optional(),
  software_id: z.string().max(200).optional(),
  software_version: z.string().max(100).optional(),
  software_statement: z.string().optional(),
  application_type: z.enum(['web', 'native']).optional(),
  /** RFC 9449 §5.2: the client always sends DPoP proofs; requests without one are refused. */
  dpop_bound_access_tokens: z.boolean().optional(),
  client_secret: z.unknown().optional(),
  client_secret_expires_at: z.unknown().optional(),
});
export type ClientMetadataInput = z.input<typeof ClientMetadataSchema>;
type ClientMetadata = z.output<typeof ClientMetadataSchema>;

export interface ValidatedClientMetadata {
  name: string;
  authMethod: AuthMethod;
  redirectUris: string[];
  grantTypes: GrantType[];
  scope: string[] | null;
  jwks: { keys: Record<string, unknown>[] } | null;
  jwksUri: string | null;
  applicationType: 'web' | 'native' | null;
  /** Display metadata kept as registered (client_uri, logo_uri, contacts …). */
  display: Record<string, unknown>;
}

const SELF_SERVICE_GRANTS: readonly GrantType[] = [GRANT_TYPE.authorizationCode, GRANT_TYPE.refreshToken];

function invalid(description: string): OAuthError {
  return new OAuthError('invalid_client_metadata', description);
}

/**
 * Validates metadata from a self-service door (DCR or a metadata document). Shared secrets are not
 * offered there: an administrator must enable a static secret for a client explicitly.
 */
export function validateSelfServiceMetadata(input: unknown): ValidatedClientMetadata {
  const m = parseMetadata(input);
  const authMethod = (m.token_endpoint_auth_method ?? AUTH_METHOD.none) as string;
  if (authMethod !== AUTH_METHOD.none && authMethod !== AUTH_METHOD.privateKeyJwt) {
    throw invalid(
      `token_endpoint_auth_method "${authMethod}" is not available here: use "none" (with PKCE) or "private_key_jwt"`,
    );
  }
  if (m.jwks && m.jwks_uri) throw invalid('send jwks or jwks_uri, not both (RFC 7591 §2)');
  if (authMethod === AUTH_METHOD.privateKeyJwt && !m.jwks && !m.jwks_uri) {
    throw invalid('private_key_jwt needs jwks or jwks_uri');
  }
  for (const key of m.jwks?.keys ?? []) {
    if ('d' in key || 'p' in key || 'k' in key) throw invalid('jwks must hold public keys only');
  }

  const grantTypes = (m.grant_types ?? [GRANT_TYPE.authorizationCode]) as GrantType[];
  for (const g of grantTypes) {
    if (!SELF_SERVICE_GRANTS.includes(g)) {
      throw invalid(
        (AGENT_GRANTS as readonly string[]).includes(g)
          ? `grant_types: "${g}" is for agents, which register with an initial access token from an administrator (RFC 7591 §3); without one, allowed: ${SELF_SERVICE_GRANTS.join(', ')}`
          : `grant_types: "${g}" cannot be self-registered; allowed: ${SELF_SERVICE_GRANTS.join(', ')}`,
      );
    }
  }
  const responseTypes = m.response_types ?? ['code'];
  if (responseTypes.some((r) => r !== 'code')) throw invalid('response_types: only "code" is supported');

  const redirectUris = m.redirect_uris ?? [];
  if (grantTypes.includes(GRANT_TYPE.authorizationCode) && redirectUris.length === 0) {
    throw new OAuthError('invalid_redirect_uri', 'redirect_uris: at least one is required for authorization_code');
  }
  for (const uri of redirectUris) {
    const problem = redirectUriProblem(uri);
    if (problem) throw new OAuthError('invalid_redirect_uri', `redirect_uris: ${problem}`);
  }

  let scope: string[] | null = null;
  if (m.scope !== undefined) {
    scope = parseScope(m.scope);
    if (scope === null) throw invalid('scope: must be space-separated scope tokens');
    if (scope.includes(ERRAND_SCOPE.admin)) throw invalid(ADMIN_SCOPE_REFUSED);
  }

  return {
    name: m.client_name ?? 'Unnamed client',
    authMethod: authMethod as AuthMethod,
    redirectUris,
    grantTypes,
    scope,
    jwks: m.jwks ?? null,
    jwksUri: m.jwks_uri ?? null,
    applicationType: m.application_type ?? null,
    display: displayMetadata(m),
  };
}

/** Schema, software statement and shared-secret checks common to every self-service door. */
function parseMetadata(input: unknown): ClientMetadata {
  const parsed = ClientMetadataSchema.safeParse(input);
  if (!parsed.success) {
    const [issue] = parsed.error.issues;
    const field = issue?.path.join('.') ?? '';
    const code = field.startsWith('redirect_uris') ? 'invalid_redirect_uri' : 'invalid_client_metadata';
    throw new OAuthError(code, `${field || 'metadata'}: ${issue?.message ?? 'invalid'}`);
  }
  const m = parsed.data;
  if (m.software_statement !== undefined) {
    throw new OAuthError('invalid_software_statement', 'software statements are not accepted');
  }
  // CIMD §4.1: a metadata document must not carry a shared secret.
  if (m.client_secret !== undefined || m.client_secret_expires_at !== undefined) {
    throw invalid('client_secret must not be sent: Errand issues no shared secrets to self-registered clients');
  }
  return m;
}

/** What an agent presenting an initial access token may register: the token's rules bound it. */
export interface AgentRegistrationRules {
  grantTypes: readonly GrantType[];
  /** null = no limit beyond what each resource offers. */
  scopes: readonly string[] | null;
}

/**
 * Validates an agent's registration (RFC 7591 with an initial access token, README "Clients"): a
 * confidential client authenticating with `private_key_jwt` (`jwks` or `jwks_uri`), for the agent
 * grants the token allows, with scopes within the token's. No redirect URIs: agents do not use
 * the authorization endpoint.
 */
export function validateAgentMetadata(input: unknown, rules: AgentRegistrationRules): ValidatedClientMetadata {
  const m = parseMetadata(input);
  // RFC 7591 §2 defaults the method to client_secret_basic, which Errand does not issue; an agent
  // that names none but sends keys means private_key_jwt.
  const authMethod = m.token_endpoint_auth_method ?? AUTH_METHOD.privateKeyJwt;
  if (authMethod !== AUTH_METHOD.privateKeyJwt) {
    throw invalid(
      `token_endpoint_auth_method "${authMethod}" is not available to agents: they are confidential and use "private_key_jwt" with jwks or jwks_uri`,
    );
  }
  if (m.jwks && m.jwks_uri) throw invalid('send jwks or jwks_uri, not both (RFC 7591 §2)');
  if (!m.jwks && !m.jwks_uri) throw invalid('private_key_jwt needs jwks or jwks_uri');
  for (const key of m.jwks?.keys ?? []) {
    if ('d' in key || 'p' in key || 'k' in key) throw invalid('jwks must hold public keys only');
  }
  const grantTypes = (m.grant_types ?? [...rules.grantTypes]) as GrantType[];
  for (const g of grantTypes) {
    if (!rules.grantTypes.includes(g)) {
      throw invalid(
        `grant_types: "${g}" is not allowed by the initial access token; allowed: ${rules.grantTypes.join(', ')}`,
      );
    }
  }
  if (grantTypes.length === 0) throw invalid('grant_types: at least one is required');
  if ((m.redirect_uris ?? []).length > 0) throw invalid('redirect_uris: agents do not use redirects; send none');
  if ((m.response_types ?? []).length > 0) throw invalid('response_types: agents use no response types; send none');

  let scope: string[] | null = rules.scopes ? [...rules.scopes] : null;
  if (m.scope !== undefined) {
    scope = parseScope(m.scope);
    if (scope === null) throw invalid('scope: must be space-separated scope tokens');
    if (scope.includes(ERRAND_SCOPE.admin)) throw invalid(ADMIN_SCOPE_REFUSED);
    const outside = rules.scopes ? scope.filter((s) => !rules.scopes!.includes(s)) : [];
    if (outside.length > 0) {
      throw invalid(`scope: "${outside.join(' ')}" is not allowed by the initial access token`);
    }
  }
  return {
    name: m.client_name ?? 'Unnamed agent',
    authMethod: AUTH_METHOD.privateKeyJwt,
    redirectUris: [],
    grantTypes: [...new Set(grantTypes)],
    scope,
    jwks: m.jwks ?? null,
    jwksUri: m.jwks_uri ?? null,
    applicationType: null,
    display: displayMetadata(m),
  };
}

function displayMetadata(m: ClientMetadata): Record<string, unknown> {
  const display: Record<string, unknown> = {};
  for (const k of [
    'client_uri',
    'logo_uri',
    'tos_uri',
    'policy_uri',
    'contacts',
    'software_id',
    'software_version',
    'dpop_bound_access_tokens',
  ] as const) {
    if (m[k] !== undefined) display[k] = m[k];
  }
  return display;
}
