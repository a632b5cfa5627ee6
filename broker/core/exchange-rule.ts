import type { Client } from './client.js';

/**
 * An administrator's standing permission for a resource server (an MCP server or gateway) to
 * exchange its users' access tokens for tokens to one downstream resource (README "On-behalf-of
 * exchange"). Kept on the client (`metadata.exchange_rules`), one rule per downstream resource.
 */
export interface ExchangeRule {
  /** The downstream resource (canonical URL). */
  resource: string;
  /** The most the issued tokens may carry at that resource. */
  scopes: string[];
  /** Longest lifetime of an issued token, in seconds. */
  maxTokenTtl: number;
}

/** The metadata key the rules are kept under. */
export const EXCHANGE_RULES_KEY = 'exchange_rules';

/** The client's exchange rules (none when it has none, or when what is stored is not a list of rules). */
export function exchangeRulesOf(client: Pick<Client, 'metadata'>): ExchangeRule[] {
  const raw = client.metadata[EXCHANGE_RULES_KEY];
  if (!Array.isArray(raw)) return [];
  return raw.filter(
    (r): r is ExchangeRule =>
      typeof r === 'object' &&
      r !== null &&
      typeof r.resource === 'string' &&
      Array.isArray(r.scopes) &&
      r.scopes.every((s: unknown) => typeof s === 'string') &&
      typeof r.maxTokenTtl === 'number',
  );
}

/** The rule that lets the client exchange user tokens for `resource`, if any. */
export function exchangeRuleFor(client: Pick<Client, 'metadata'>, resource: string): ExchangeRule | null {
  return exchangeRulesOf(client).find((r) => r.resource === resource) ?? null;
}

/**
 * Whether a client may present a user's access token addressed to `audience` as an on-behalf-of
 * subject: the token must be for one of the client's own resources (no passthrough of a token meant
 * for someone else, RFC 8693 §2.1 leaves the subject's acceptability to the server's policy).
 */
export function isOwnAudience(client: Pick<Client, 'resources'>, audience: string): boolean {
  return client.resources.includes(audience);
}
