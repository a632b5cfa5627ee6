import type { Client } from './client.js';
import type { Denial } from './denials.js';

/**
 * Quarantine of new registrations (README "Quarantine of new registrations and findings"): a client
 * that registered itself, by dynamic registration (RFC 7591) or a Client ID Metadata Document,
 * starts with no access to non-public resources until an administrator or an admission rule admits it.
 */

/** Whether the client is still waiting to be admitted. */
export function isQuarantined(client: Pick<Client, 'quarantinedAt'>): boolean {
  return client.quarantinedAt !== undefined && client.quarantinedAt !== null;
}

/**
 * The one rule every door passes through before a token (or a delegation) for a resource is
 * decided for a client: a quarantined client may have public resources only. Null when allowed.
 */
export function quarantineDenial(
  client: Pick<Client, 'id' | 'quarantinedAt'>,
  resourceUrl: string,
  isPublic: boolean,
): Denial | null {
  if (isPublic || !isQuarantined(client)) return null;
  return { reason: 'agent_quarantined', clientId: client.id, audience: resourceUrl };
}
