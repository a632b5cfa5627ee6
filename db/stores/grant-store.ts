import { and, count, desc, eq, gt, gte, inArray, isNotNull, isNull, lt, or } from 'drizzle-orm';
import type { DelegationRequest } from '../../broker/core/delegation.js';
import { affected, type Db, type Tx } from '../open.js';
import { insertRow, selectOneBy } from '../prepared.js';
import { authorizationCodes, authorizationRequests, issuedTokens, refreshTokens } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

const tokenByJti = selectOneBy(issuedTokens, issuedTokens.jti);
const insertToken = insertRow(issuedTokens);

export interface AuthorizationRequest {
  id: string;
  /** For agents: the delegation asked for, decided on the consent page. */
  delegation?: DelegationRequest | null;
  clientId: string;
  redirectUri: string;
  redirectUriSent: boolean;
  state: string | null;
  codeChallenge: string;
  scope: string[];
  resources: string[];
  /** OIDC Core §3.1.2.1: the request had the `openid` scope, so the code also yields an ID token. */
  openid?: boolean;
  /** OIDC Core §3.1.2.1: echoed in the ID token. */
  nonce?: string | null;
  createdAt: number;
  expiresAt: number;
}

export interface AuthorizationCode {
  /** Set when the code redeems to a delegation credential. */
  delegationId?: string | null;
  codeHash: string;
  grantId: string;
  clientId: string;
  userId: string;
  redirectUri: string;
  redirectUriSent: boolean;
  codeChallenge: string;
  scope: string[];
  resources: string[];
  openid?: boolean;
  nonce?: string | null;
  /** When the person approved (the ID token's `auth_time`); the code's creation time. */
  createdAt: number;
  expiresAt: number;
}

export interface IssuedToken {
  jti: string;
  grantId: string | null;
  clientId: string;
  subject: string;
  audience: string;
  scope: string;
  kid: string;
  issuedAt: number;
  expiresAt: number;
  revokedAt: number | null;
  taskId?: string | null;
  delegationId?: string | null;
  actorChain?: string | null;
  statusIdx?: number | null;
  /** RFC 9396 `mcp_tool` details the token carries, as JSON. */
  authorizationDetails?: string | null;
}

export interface RefreshToken {
  tokenHash: string;
  familyId: string;
  clientId: string;
  userId: string;
  scope: string[];
  resources: string[];
  createdAt: number;
  expiresAt: number;
  familyExpiresAt: number;
  usedAt: number | null;
  graceResponse: string | null;
  revokedAt: number | null;
  /** The DPoP key (JWK thumbprint) a public client's refresh token is bound to (RFC 9449 §5). */
  dpopJkt?: string | null;
}

function toRefresh(row: typeof refreshTokens.$inferSelect): RefreshToken {
  return { ...row, scope: parseJson<string[]>(row.scope, []), resources: parseJson<string[]>(row.resources, []) };
}

export class GrantStore {
  constructor(private readonly db: Db) {}

  // Authorization requests ----------------------------------------------------------------------

  async saveRequest(req: AuthorizationRequest): Promise<void> {
    await this.db.write(async (tx) => {
      await tx.delete(authorizationRequests).where(lt(authorizationRequests.expiresAt, req.createdAt));
      await tx.insert(authorizationRequests).values({
        ...req,
        scope: toJson(req.scope),
        resources: toJson(req.resources),
        delegation: req.delegation ? toJson(req.delegation) : null,
      });
    });
  }

  async getRequest(id: string, now: number): Promise<AuthorizationRequest | null> {
    const [row] = await this.db.q.select().from(authorizationRequests).where(eq(authorizationRequests.id, id)).limit(1);
    if (!row || row.expiresAt <= now) return null;
    return {
      ...row,
      scope: parseJson<string[]>(row.scope, []),
      resources: parseJson<string[]>(row.resources, []),
      delegation: parseJson<DelegationRequest | null>(row.delegation, null),
    };
  }

  /** Removes a request and returns whether it was still there (a request is answered once). */
  async takeRequest(id: string, tx: Tx): Promise<boolean> {
    const res = await tx.delete(authorizationRequests).where(eq(authorizationRequests.id, id));
    return affected(res) === 1;
  }

  // Authorization codes -------------------------------------------------------------------------

  async insertCode(code: AuthorizationCode, tx: Tx): Promise<void> {
    await tx
      .insert(authorizationCodes)
      .values({ ...code, scope: toJson(code.scope), resources: toJson(code.resources) });
  }

  async getCode(codeHash: string): Promise<(AuthorizationCode & { usedAt: number | null }) | null> {
    const [row] = await this.db.q
      .select()
      .from(authorizationCodes)
      .where(eq(authorizationCodes.codeHash, codeHash))
      .limit(1);
    if (!row) return null;
    return { ...row, scope: parseJson<string[]>(row.scope, []), resources: parseJson<string[]>(row.resources, []) };
  }

  /** Marks a code used; false when another request redeemed it first (a code works once). */
  async redeemCode(codeHash: string, now: number, tx: Tx): Promise<boolean> {
    const res = await tx
      .update(authorizationCodes)
      .set({ usedAt: now })
      .where(and(eq(authorizationCodes.codeHash, codeHash), isNull(authorizationCodes.usedAt)));
    return affected(res) === 1;
  }

  // Access tokens -------------------------------------------------------------------------------

  async insertToken(token: IssuedToken, tx: Tx): Promise<void> {
    await insertToken(tx, token);
  }

  async getToken(jti: string, tx?: Tx): Promise<IssuedToken | null> {
    const row = await tokenByJti(tx ?? this.db.q, jti);
    return row ?? null;
  }

  /**
   * The most recently issued access token of a task that is neither revoked nor expired: what the
   * task holds right now (its audience, scope, tools and expiry), or null when it holds nothing live.
   */
  async latestLiveTokenForTask(taskId: string, now: number, tx?: Tx): Promise<IssuedToken | null> {
    const [row] = await (tx ?? this.db.q)
      .select()
      .from(issuedTokens)
      .where(and(eq(issuedTokens.taskId, taskId), isNull(issuedTokens.revokedAt), gt(issuedTokens.expiresAt, now)))
      .orderBy(desc(issuedTokens.issuedAt), desc(issuedTokens.jti))
      .limit(1);
    return row ?? null;
  }

  /** Access tokens issued per client since a time (the inventory's "tokens in the last 24 h"). */
  async countIssuedSince(since: number): Promise<Map<string, number>> {
    const rows = await this.db.q
      .select({ clientId: issuedTokens.clientId, n: count() })
      .from(issuedTokens)
      .where(gte(issuedTokens.issuedAt, since))
      .groupBy(issuedTokens.clientId);
    return new Map(rows.map((r) => [r.clientId, r.n]));
  }

  /** Access tokens issued per task. */
  async countByTask(taskIds: string[]): Promise<Map<string, number>> {
    if (taskIds.length === 0) return new Map();
    const rows = await this.db.q
      .select({ taskId: issuedTokens.taskId, n: count() })
      .from(issuedTokens)
      .where(inArray(issuedTokens.taskId, taskIds))
      .groupBy(issuedTokens.taskId);
    return new Map(rows.map((r) => [r.taskId ?? '', r.n]));
  }

  async revokeToken(jti: string, now: number, tx: Tx): Promise<boolean> {
    const res = await tx
      .update(issuedTokens)
      .set({ revokedAt: now })
      .where(and(eq(issuedTokens.jti, jti), isNull(issuedTokens.revokedAt)));
    return affected(res) === 1;
  }

  /** Revokes every access and refresh token of a grant (a refresh family or a code's grant). */
  async revokeGrant(grantId: string, now: number, tx: Tx): Promise<void> {
    await tx
      .update(issuedTokens)
      .set({ revokedAt: now })
      .where(and(eq(issuedTokens.grantId, grantId), isNull(issuedTokens.revokedAt)));
    await tx
      .update(refreshTokens)
      .set({ revokedAt: now, graceResponse: null })
      .where(and(eq(refreshTokens.familyId, grantId), isNull(refreshTokens.revokedAt)));
  }

  /** Revokes every access and refresh token a client holds (a disabled client). */
  async revokeClientTokens(clientId: string, now: number, tx: Tx): Promise<void> {
    await tx
      .update(issuedTokens)
      .set({ revokedAt: now })
      .where(and(eq(issuedTokens.clientId, clientId), isNull(issuedTokens.revokedAt)));
    await tx
      .update(refreshTokens)
      .set({ revokedAt: now, graceResponse: null })
      .where(and(eq(refreshTokens.clientId, clientId), isNull(refreshTokens.revokedAt)));
  }

  /** Revokes every access token issued for an audience (a deleted resource). */
  async revokeAudienceTokens(audience: string, now: number, tx: Tx): Promise<void> {
    await tx
      .update(issuedTokens)
      .set({ revokedAt: now })
      .where(and(eq(issuedTokens.audience, audience), isNull(issuedTokens.revokedAt)));
  }

  /** Revokes every access token issued for a person (`sub`) and every refresh token of theirs (a disabled person). */
  async revokeUserTokens(userId: string, now: number, tx: Tx): Promise<void> {
    await tx
      .update(issuedTokens)
      .set({ revokedAt: now })
      .where(and(eq(issuedTokens.subject, userId), isNull(issuedTokens.revokedAt)));
    await tx
      .update(refreshTokens)
      .set({ revokedAt: now, graceResponse: null })
      .where(and(eq(refreshTokens.userId, userId), isNull(refreshTokens.revokedAt)));
  }

  // Refresh tokens ------------------------------------------------------------------------------

  async insertRefresh(rt: RefreshToken, tx: Tx): Promise<void> {
    await tx.insert(refreshTokens).values({ ...rt, scope: toJson(rt.scope), resources: toJson(rt.resources) });
  }

  async getRefresh(tokenHash: string, tx?: Tx): Promise<RefreshToken | null> {
    const [row] = await (tx ?? this.db.q)
      .select()
      .from(refreshTokens)
      .where(eq(refreshTokens.tokenHash, tokenHash))
      .limit(1);
    return row ? toRefresh(row) : null;
  }

  /** Marks a refresh token used and keeps its sealed successor response for the grace window. */
  async markRefreshUsed(tokenHash: string, now: number, graceResponse: string | null, tx: Tx): Promise<boolean> {
    const res = await tx
      .update(refreshTokens)
      .set({ usedAt: now, graceResponse })
      .where(and(eq(refreshTokens.tokenHash, tokenHash), isNull(refreshTokens.usedAt)));
    return affected(res) === 1;
  }

  /** Drops the kept successor responses of refresh tokens used outside `[from, to]` (epoch seconds). */
  async clearGraceResponses(from: number, to: number): Promise<number> {
    const res = await this.db.write((tx) =>
      tx
        .update(refreshTokens)
        .set({ graceResponse: null })
        .where(
          and(isNotNull(refreshTokens.graceResponse), or(lt(refreshTokens.usedAt, from), gt(refreshTokens.usedAt, to))),
        ),
    );
    return affected(res);
  }
}
