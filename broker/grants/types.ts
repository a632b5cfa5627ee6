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
  /** The client's address (README "Behind a reverse proxy"), for policies and audit events. */
  address?: string;
}

export interface TokenResponse {
  access_token: string;
  /** `DPoP` for a token bound to a key (RFC 9449 §5), `Bearer` otherwise (delegation credentials too). */
  token_type: 'Bearer' | 'DPoP';
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
