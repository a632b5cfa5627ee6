import type { z } from 'zod';
import type { AuthenticatedClient } from '../identity/client-auth.js';
import type { DpopBinding } from '../identity/dpop.js';
import type { Logger } from '../log.js';

export interface GrantContext {
  client: AuthenticatedClient;
  /** The request's verified DPoP proof (RFC 9449 §5): issued access tokens are bound to its key. */
  dpop: DpopBinding | null;
  log: Logger;
  requestId: string;
}

export interface TokenResponse {
  access_token: string;
  /** `Bearer` for access tokens; `N_A` for a delegation credential (RFC 8693 §2.2.1). */
  token_type: 'Bearer' | 'DPoP' | 'N_A';
  expires_in: number;
  scope?: string;
  refresh_token?: string;
  [extra: string]: unknown;
}

/** A grant type: its parameters (validated at the door) and what it does with them. */
export interface Grant<S extends z.ZodType = z.ZodType> {
  readonly type: string;
  readonly params: S;
  handle(params: z.output<S>, ctx: GrantContext): Promise<TokenResponse>;
}
