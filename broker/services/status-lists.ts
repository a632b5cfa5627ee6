import { JWT_TYP, PATHS } from '@errand/protocol';
import type { TaskStore } from '../../db/stores/task-store.js';
import type { Clock } from '../core/ports.js';
import type { TokenMinter } from '../tokens/access-token.js';
import { encodeStatusList } from '../tokens/status-list.js';

/**
 * Lifetime of a Status List Token: a relying party may cache it for `ttl` and keep using it a while
 * longer when a refresh fails. Signing keys are kept at least this long after they stop signing.
 */
export function statusListTokenLifetime(ttl: number): number {
  return ttl * 12;
}

/** Entries per status list: 2^20 tokens, 128 KiB before compression. */
export const STATUS_LIST_SIZE = 1 << 20;

/**
 * Token Status Lists (draft-ietf-oauth-status-list): every task token has a bit; ending its task
 * sets it. Lists are numbered; a token's global index picks the list and the index within it.
 */
export class StatusLists {
  constructor(
    private readonly deps: { tasks: TaskStore; minter: TokenMinter; issuer: string; ttl: number; clock: Clock },
  ) {}

  uri(list: number): string {
    return `${this.deps.issuer}${PATHS.statusLists}/${list}`;
  }

  /** Where a token's status lives (`status.status_list` claim). */
  ref(globalIdx: number): { uri: string; idx: number } {
    return { uri: this.uri(Math.floor(globalIdx / STATUS_LIST_SIZE)), idx: globalIdx % STATUS_LIST_SIZE };
  }

  /** The signed Status List Token for a list, or null if no token references it yet. */
  async token(list: number): Promise<string | null> {
    const allocated = await this.deps.tasks.allocatedIndexes();
    const from = list * STATUS_LIST_SIZE;
    const size = Math.min(STATUS_LIST_SIZE, allocated - from);
    if (size <= 0) return null;
    const revoked = await this.deps.tasks.revokedIndexes(from, from + size);
    const lst = encodeStatusList(
      size,
      revoked.map((i) => [i - from, 1] as [number, number]),
    );
    const now = this.deps.clock.now();
    // Status List §5.1: sub = the list URI; ttl tells relying parties how long they may cache it.
    return this.deps.minter.sign(JWT_TYP.statusList, {
      sub: this.uri(list),
      iat: now,
      exp: now + statusListTokenLifetime(this.deps.ttl),
      ttl: this.deps.ttl,
      status_list: { bits: 1, lst },
    }).token;
  }
}
