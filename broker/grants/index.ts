import type { z } from 'zod';
import { OAuthError } from '../core/errors.js';
import { type Metrics, noMetrics } from '../core/metrics.js';
import type { Grant, GrantContext, TokenResponse } from './types.js';

/** The grants the token endpoint offers; adding one touches its module and this list. */
export class GrantRegistry {
  private readonly grants = new Map<string, Grant>();

  constructor(
    grants: readonly Grant[],
    private readonly metrics: Metrics = noMetrics,
  ) {
    for (const g of grants) this.grants.set(g.type, g);
  }

  /** Runs a selected grant; a token it issues is counted by grant type (README "Metrics and traces"). */
  async handle<S extends z.ZodType>(grant: Grant<S>, params: z.output<S>, ctx: GrantContext): Promise<TokenResponse> {
    const body = await grant.handle(params, ctx);
    this.metrics.tokenIssued(grant.type);
    return body;
  }

  get types(): string[] {
    return [...this.grants.keys()];
  }

  select(grantType: string | string[] | undefined): Grant {
    if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is required');
    if (Array.isArray(grantType)) throw new OAuthError('invalid_request', 'grant_type must not be repeated');
    const grant = this.grants.get(grantType);
    if (!grant)
      throw new OAuthError('unsupported_grant_type', `grant_type "${grantType.slice(0, 100)}" is not supported`);
    return grant;
  }
}
