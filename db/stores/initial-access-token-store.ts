import type { GrantType } from '@errand/protocol';
import { and, desc, eq, gt, isNull, lt, or, sql } from 'drizzle-orm';
import type { InitialAccessToken } from '../../broker/core/initial-access-token.js';
import { affected, type Db, type Tx } from '../open.js';
import { initialAccessTokens } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

type Row = typeof initialAccessTokens.$inferSelect;

function toToken(row: Row): InitialAccessToken {
  return {
    id: row.id,
    name: row.name,
    createdBy: row.createdBy,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
    maxUses: row.maxUses,
    uses: row.uses,
    autoApprove: row.autoApprove,
    scopes: parseJson<string[] | null>(row.scopes, null),
    grantTypes: parseJson<GrantType[]>(row.grantTypes, []),
    revokedAt: row.revokedAt,
  };
}

/** Initial access tokens, kept by the hash of their value (never the value itself). */
export class InitialAccessTokenStore {
  constructor(private readonly db: Db) {}

  async list(): Promise<InitialAccessToken[]> {
    const rows = await this.db.q.select().from(initialAccessTokens).orderBy(desc(initialAccessTokens.createdAt));
    return rows.map(toToken);
  }

  async get(id: string): Promise<InitialAccessToken | null> {
    const [row] = await this.db.q.select().from(initialAccessTokens).where(eq(initialAccessTokens.id, id)).limit(1);
    return row ? toToken(row) : null;
  }

  /** The token whose value hashes to `tokenHash`, with that stored hash; null if none. */
  async findByHash(tokenHash: string): Promise<{ token: InitialAccessToken; storedHash: string } | null> {
    const [row] = await this.db.q
      .select()
      .from(initialAccessTokens)
      .where(eq(initialAccessTokens.tokenHash, tokenHash))
      .limit(1);
    return row ? { token: toToken(row), storedHash: row.tokenHash } : null;
  }

  async insert(t: InitialAccessToken, tokenHash: string, tx: Tx): Promise<void> {
    await tx.insert(initialAccessTokens).values({
      ...t,
      tokenHash,
      scopes: t.scopes ? toJson(t.scopes) : null,
      grantTypes: toJson(t.grantTypes),
    });
  }

  /**
   * Counts one registration against the token, only while it is unrevoked, unexpired and not used
   * up. One conditional update, so concurrent registrations (in any process) cannot exceed `maxUses`.
   */
  async consume(id: string, now: number, tx: Tx): Promise<boolean> {
    const t = initialAccessTokens;
    const res = await tx
      .update(t)
      .set({ uses: sql`${t.uses} + 1` })
      .where(
        and(eq(t.id, id), isNull(t.revokedAt), gt(t.expiresAt, now), or(isNull(t.maxUses), lt(t.uses, t.maxUses))),
      );
    return affected(res) === 1;
  }

  /** Marks the token revoked; false when it was revoked already (or does not exist). */
  async revoke(id: string, now: number, tx: Tx): Promise<boolean> {
    const res = await tx
      .update(initialAccessTokens)
      .set({ revokedAt: now })
      .where(and(eq(initialAccessTokens.id, id), isNull(initialAccessTokens.revokedAt)));
    return affected(res) === 1;
  }
}
