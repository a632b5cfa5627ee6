import { type ASSURANCE_LEVELS, type AuthMethod, GRANT_TYPE, type GrantType } from '@errand/protocol';

/** `admin_service`: automation an administrator created to call the admin API with tokens (README "Admin API"). */
export type ClientKind = 'agent' | 'mcp_client' | 'resource_server' | 'admin_service';
export type ClientSource = 'admin' | 'dcr' | 'cimd';
export type ClientStatus = 'active' | 'pending' | 'disabled' | 'expired';
export type CredentialKind = 'private_key_jwt' | 'workload_federation' | 'none' | 'client_secret';

/** A registered client, whatever the door it came in through. */
export interface Client {
  id: string;
  kind: ClientKind;
  name: string;
  ownerId: string | null;
  source: ClientSource;
  status: ClientStatus;
  authMethod: AuthMethod;
  secretHash: string | null;
  jwks: { keys: Record<string, unknown>[] } | null;
  jwksUri: string | null;
  redirectUris: string[];
  grantTypes: GrantType[];
  /** Scopes the client may ask for; null = any scope of a known resource, subject to consent. */
  scope: string[] | null;
  /** Resources a resource-server client speaks for (it may introspect their tokens). */
  resources: string[];
  applicationType: 'web' | 'native' | null;
  metadata: Record<string, unknown>;
  createdAt: number;
  lastUsedAt: number | null;
  expiresAt: number | null;
  cachedUntil: number | null;
  /** The level the agent last authenticated at; see `assuranceLevel`. */
  recordedAssurance?: AssuranceLevel | null;
  /** For workload identities: the trusted issuer that vouches for the agent. */
  trustedIssuerId?: string | null;
  /**
   * When the client, registered by itself (dynamic registration or a metadata document), was
   * quarantined; null or absent once admitted, and for clients an administrator created.
   */
  quarantinedAt?: number | null;
}

/** The credential kind shown in the inventory; static secrets are flagged as a risk. */
export function credentialKindOf(method: AuthMethod): CredentialKind {
  if (method === 'private_key_jwt') return 'private_key_jwt';
  if (method === 'workload_federation') return 'workload_federation';
  if (method === 'none') return 'none';
  return 'client_secret';
}

export type AssuranceLevel = (typeof ASSURANCE_LEVELS)[number];

/**
 * The assurance level of a non-human identity (README "Assurance levels"): the level Errand recorded when the agent
 * last authenticated (a workload token from a trusted issuer: AAL2, or AAL3 with hardware
 * attestation); otherwise a key or secret registered by hand, which proves nothing about where it
 * lives, so the lowest level. Public clients, and workload agents not yet seen, have none.
 */
export function assuranceLevel(
  client: Pick<Client, 'authMethod'> & Partial<Pick<Client, 'recordedAssurance'>>,
): AssuranceLevel | null {
  if (client.recordedAssurance) return client.recordedAssurance;
  if (client.authMethod === 'none' || client.authMethod === 'workload_federation') return null;
  return 'NHI-AAL1';
}

/** Whether the client authenticates (OAuth 2.1 §2.1: confidential clients). */
export function isConfidential(client: Pick<Client, 'authMethod'>): boolean {
  return client.authMethod !== 'none';
}

/**
 * Whether a client may take part in token exchange at all (RFC 8693 §2.1 leaves this to policy):
 * an active confidential client registered for the grant. A public client authenticates by its id
 * alone, so anyone could act as it: it never holds delegations, exchanges, or acts under a task.
 * The token endpoint, the MCP tools and the A2A skills all decide with this one rule.
 */
export function canExchange(client: Pick<Client, 'authMethod' | 'grantTypes' | 'status'>): boolean {
  return client.status === 'active' && isConfidential(client) && client.grantTypes.includes(GRANT_TYPE.tokenExchange);
}

/** Whether a client may be the actor of a task (RFC 8693 §4.1): an active, authenticating client. */
export function canAct(client: Pick<Client, 'authMethod' | 'status'>): boolean {
  return client.status === 'active' && isConfidential(client);
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Why a redirect URI is unacceptable, or null when it is fine. MCP-Auth §Communication Security
 * and OAuth 2.1 §2.3: https, or http on a loopback host; no fragment; no userinfo. Native apps
 * may use a private-use scheme (RFC 8252 §7.1) with a reverse-domain name.
 */
export function redirectUriProblem(uri: string): string | null {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return `"${uri}" is not an absolute URI`;
  }
  if (uri.includes('#')) return `"${uri}" must not contain a fragment`;
  if (url.username || url.password) return `"${uri}" must not contain user information`;
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:') {
    return LOOPBACK_HOSTS.has(url.hostname) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(url.hostname)
      ? null
      : `"${uri}" must use https (plain http is allowed only on a loopback host)`;
  }
  // RFC 8252 §7.1: private-use URI schemes are reverse domain names such as com.example.app.
  if (
    /^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+:$/.test(url.protocol) &&
    !['javascript:', 'data:', 'file:'].includes(url.protocol)
  ) {
    return null;
  }
  return `"${uri}" must use https, loopback http, or a private-use scheme`;
}

/** OAuth 2.1 §4.1.1: the redirect URI must match a registered one exactly (string comparison). */
export function isRegisteredRedirect(client: Pick<Client, 'redirectUris'>, uri: string): boolean {
  return client.redirectUris.includes(uri);
}
