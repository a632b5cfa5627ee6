import { GRANT_TYPE, type GrantType } from '@errand/protocol';

/** The grants an agent may register for with an initial access token (README "Clients"). */
export const AGENT_GRANTS: readonly GrantType[] = [
  GRANT_TYPE.clientCredentials,
  GRANT_TYPE.tokenExchange,
  GRANT_TYPE.ciba,
];

/**
 * An initial access token (RFC 7591 §3): issued by an administrator, presented by an agent that
 * registers itself. Its rules bound what the agent may register and whether it waits for approval.
 */
export interface InitialAccessToken {
  id: string;
  name: string;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  /** Registrations it may make; null = any number until it expires. */
  maxUses: number | null;
  uses: number;
  /** Agents registered with it are active at once; otherwise they wait for an administrator. */
  autoApprove: boolean;
  /** Scopes a registered agent may hold; null = no limit beyond what each resource offers. */
  scopes: string[] | null;
  /** Grant types a registered agent may use (a subset of `AGENT_GRANTS`). */
  grantTypes: GrantType[];
  revokedAt: number | null;
}

export type InitialAccessTokenState = 'active' | 'expired' | 'used_up' | 'revoked';

/** Whether the token can still register an agent at `now`, and if not, why. */
export function initialAccessTokenState(t: InitialAccessToken, now: number): InitialAccessTokenState {
  if (t.revokedAt !== null) return 'revoked';
  if (t.expiresAt <= now) return 'expired';
  if (t.maxUses !== null && t.uses >= t.maxUses) return 'used_up';
  return 'active';
}
