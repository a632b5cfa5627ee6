import { OAuthError } from '../core/errors.js';
import type { Grant } from './types.js';

/** The grants the token endpoint offers; adding one touches its module and this list. */
export class GrantRegistry {
  private readonly grants = new Map<string, Grant>();

  constructor(grants: readonly Grant[]) {
    for (const g of grants) this.grants.set(g.type, g);
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
