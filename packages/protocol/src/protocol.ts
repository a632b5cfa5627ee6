/**
 * Protocol constants shared by the broker, the guard and the agent SDK. Code uses these names,
 * never string literals.
 */
export const GRANT_TYPE = {
  authorizationCode: 'authorization_code',
  refreshToken: 'refresh_token',
  clientCredentials: 'client_credentials',
  tokenExchange: 'urn:ietf:params:oauth:grant-type:token-exchange',
  jwtBearer: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
  ciba: 'urn:openid:params:grant-type:ciba',
} as const;
export type GrantType = (typeof GRANT_TYPE)[keyof typeof GRANT_TYPE];

export const TOKEN_TYPE = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  refreshToken: 'urn:ietf:params:oauth:token-type:refresh_token',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
} as const;

/** Claim names Errand adds to access tokens (RFC 8693 §4.1 `act`, Status List §6.2 `status`). */
export const CLAIM = {
  task: 'task_id',
  delegation: 'delegation_id',
  act: 'act',
  status: 'status',
  authorizationDetails: 'authorization_details',
  /** RFC 9449 §6.1 / RFC 7800: the confirmation claim (`cnf.jkt`) of a DPoP-bound token. */
  confirmation: 'cnf',
  /** The assurance level (NHI-AAL1..3) of the current actor, derived by Errand at authentication (README "Assurance levels"). */
  assurance: 'errand_aal',
} as const;

/** Assurance levels of non-human identities, lowest first (after NIST SP 800-63B AAL1–3). */
export const ASSURANCE_LEVELS = ['NHI-AAL1', 'NHI-AAL2', 'NHI-AAL3'] as const;

/** RFC 9449: the proof header, the server-nonce header and the token type of DPoP-bound tokens. */
export const DPOP = {
  header: 'DPoP',
  nonceHeader: 'DPoP-Nonce',
  tokenType: 'DPoP',
  /** Signing algorithms Errand accepts on DPoP proofs (asymmetric only). */
  algs: ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256'],
} as const;

/** RFC 9396 `authorization_details` types Errand understands. */
export const DETAILS_TYPE = {
  /** Names (or re-opens) the task a token exchange is for. */
  task: 'errand_task',
  /** Fine-grained grant of named MCP tools at one resource. */
  mcpTool: 'mcp_tool',
} as const;

export const CLIENT_ASSERTION_TYPE = {
  jwtBearer: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  /** draft-ietf-oauth-spiffe-client-auth: a JWT-SVID as the client assertion. */
  jwtSpiffe: 'urn:ietf:params:oauth:client-assertion-type:jwt-spiffe',
} as const;

export const AUTH_METHOD = {
  privateKeyJwt: 'private_key_jwt',
  none: 'none',
  clientSecretBasic: 'client_secret_basic',
  clientSecretPost: 'client_secret_post',
  /** No secret at Errand: the agent presents a workload token from a trusted issuer (RFC 7523, SPIFFE). */
  workloadFederation: 'workload_federation',
} as const;
export type AuthMethod = (typeof AUTH_METHOD)[keyof typeof AUTH_METHOD];

/** JWT `typ` header values (RFC 9068 §2.1, RFC 7523bis). */
export const JWT_TYP = {
  accessToken: 'at+jwt',
  clientAuthentication: 'client-authentication+jwt',
  /**
   * An RFC 8693 `actor_token` an agent signs with its own key. Required on such tokens and refused
   * on client assertions, so a token handed over to prove an actor can never authenticate as it.
   */
  actor: 'actor+jwt',
  /** The credential an agent holds for a delegation: usable only at Errand's token endpoint. */
  delegation: 'delegation+jwt',
  statusList: 'statuslist+jwt',
  /** RFC 9449 §4.2. */
  dpopProof: 'dpop+jwt',
} as const;

/**
 * The audience a workload token (JWT-SVID, Kubernetes or CI token) must name, as its only value, to
 * be presented as an RFC 8693 `actor_token`: Errand's issuer identifier with the fragment `#actor`.
 * Its platform signs it and chooses its `typ`, so the audience is what keeps it from also passing as
 * a client assertion (whose audience is the issuer). A fragment can never be a resource indicator
 * (RFC 8707 §2), so no resource shares it.
 *
 * @example actorAudience('https://errand.example') // 'https://errand.example#actor'
 */
export function actorAudience(issuer: string): string {
  return `${issuer}#actor`;
}

/** Signing algorithms Errand accepts on client assertions (never `none`, never a MAC). */
export const ASSERTION_ALGS = [
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
  'RS256',
  'PS256',
  'PS384',
  'PS512',
] as const;

/** Well-known paths. */
export const PATHS = {
  asMetadata: '/.well-known/oauth-authorization-server',
  /** OpenID Connect Discovery 1.0 §4: the same metadata, for OpenID clients. */
  openidConfiguration: '/.well-known/openid-configuration',
  /** OpenID Connect Core §5.3: claims about the person an access token speaks for. */
  userinfo: '/userinfo',
  jwks: '/jwks.json',
  authorize: '/authorize',
  token: '/token',
  register: '/register',
  revoke: '/revoke',
  introspect: '/introspect',
  backchannel: '/bc-authorize',
  /** Errand's revocation push channel (server-sent events of CAEP session-revoked payloads). */
  revocationEvents: '/events/revocations',
  statusLists: '/statuslists',
  signIn: '/signin',
  consent: '/authorize/consent',
  setup: '/setup',
  admin: '/admin',
  adminApi: '/api/admin',
  /** Agents end their tasks at `<tasks>/<task id>/end`. */
  tasks: '/tasks',
  /** Errand's own MCP endpoint (a protected resource, MCP Authorization). */
  mcp: '/mcp',
  /** Errand's own A2A endpoint (JSON-RPC binding). */
  a2a: '/a2a',
  /** Where a person reviews and approves the delegations agents asked for. */
  myRequests: '/my/requests',
} as const;

/** Scopes of Errand's own protected endpoints (`<issuer>/mcp` and `<issuer>/a2a`). */
export const ERRAND_SCOPE = {
  /** Ask users for delegations and read them. */
  delegate: 'errand:delegate',
  /** Start, re-open, hand down and end tasks (task tokens). */
  tasks: 'errand:tasks',
  /**
   * The admin API (`<issuer>/api/admin`) for automation: only an admin service client holds it, as
   * itself, through client_credentials (README "Admin API"). Not a scope of `/mcp` or `/a2a`.
   */
  admin: 'errand:admin',
} as const;

/** Every scope of those endpoints, in the order challenges and metadata list them. */
export const ERRAND_SCOPES = [ERRAND_SCOPE.delegate, ERRAND_SCOPE.tasks] as const;

/** OpenID Connect scopes (OIDC Core §3.1.2.1, §5.4): `openid` asks for an ID token, `profile` for name claims. */
export const OIDC_SCOPE = { openid: 'openid', profile: 'profile' } as const;

/** Scopes of the UserInfo endpoint (`<issuer>/userinfo`), a built-in resource like `/mcp`. */
export const USERINFO_SCOPES = [OIDC_SCOPE.openid, OIDC_SCOPE.profile] as const;

/** OpenID CAEP event type Errand's push channel carries (CAEP 1.0 §3.1 session revoked). */
export const CAEP_SESSION_REVOKED = 'https://schemas.openid.net/secevent/caep/event-type/session-revoked';
