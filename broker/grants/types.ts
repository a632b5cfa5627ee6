import type { z } from 'zod';
import type { AuthenticatedClient } from '../identity/client-auth.js';
import type { Logger } from '../log.js';

export interface GrantContext {
  client: AuthenticatedClient;
  log: Logger;
  requestId: string;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
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
