import type { User, UserStore } from '../../db/stores/user-store.js';
import type { RateLimiter } from './rate-limit.js';

export type UserLookupResult =
  | { ok: true; user: User }
  | { ok: false; reason: 'unknown_user' }
  | { ok: false; reason: 'too_many_unknown'; retryAfter: number };

/**
 * Finds the person an agent names when it asks for a delegation (CIBA `login_hint`, the MCP tool,
 * the A2A skill). An unknown or disabled user is CIBA's `unknown_user_id` (CIBA Core §13), which
 * tells the caller whether a username exists; so each client may get only a few such answers per
 * window, and once it has used them up every lookup it makes is refused until the window ends —
 * known names included, so the refusal itself reveals nothing.
 */
export class UserLookup {
  constructor(private readonly deps: { users: Pick<UserStore, 'findByUsername'>; limiter: RateLimiter }) {}

  async resolve(clientId: string, username: string): Promise<UserLookupResult> {
    const wait = this.deps.limiter.blocked(clientId);
    if (wait > 0) return { ok: false, reason: 'too_many_unknown', retryAfter: wait };
    const user = await this.deps.users.findByUsername(username);
    if (user && user.disabledAt === null) {
      const { passwordHash: _omit, ...found } = user;
      return { ok: true, user: found };
    }
    this.deps.limiter.hit(clientId);
    return { ok: false, reason: 'unknown_user' };
  }
}
