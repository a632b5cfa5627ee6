import { CLAIM, formatScope, isScopeSubset } from '@errand/protocol';
import { z } from 'zod';
import type { Db, Tx } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { GrantStore, RefreshToken } from '../../db/stores/grant-store.js';
import type { AssuranceLevel, Client } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import type { TokenResponse } from '../grants/types.js';
import { actorClaims, type TokenMinter, tokenTypeFor } from '../tokens/access-token.js';
import type { CryptoBox } from '../tokens/crypto-box.js';
import { hashSecret, newId, newSecret } from '../tokens/random.js';
import type { RevocationEvent, TaskService } from './tasks.js';

export interface TokenServiceDeps {
  db: Db;
  grants: GrantStore;
  audit: AuditStore;
  minter: TokenMinter;
  box: CryptoBox;
  clock: Clock;
  /** Tolerated clock difference (ERRAND_CLOCK_SKEW), here between broker processes sharing the database. */
  clockSkew: number;
  issuer: string;
  ttl: { accessToken: number; refreshToken: number; refreshTokenIdle: number; refreshGrace: number };
  /** Ends the on-behalf-of tasks started from a revoked token (README "On-behalf-of exchange"). */
  tasks: Pick<TaskService, 'endWhere' | 'flush'>;
}

export interface IssueRequest {
  clientId: string;
  /** The resource owner: a user id, or the client itself for client_credentials. */
  subject: string;
  userId: string | null;
  audience: string;
  scope: string[];
  /** The grant the token belongs to (revoking the grant revokes the token); null for client_credentials. */
  grantId: string | null;
  /**
   * Start a refresh-token family covering these resources and scopes; `dpopJkt` binds it to a
   * public client's DPoP key (RFC 9449 §5).
   */
  refresh?: { resources: string[]; scope: string[]; dpopJkt?: string | null };
  /** The assurance level of the client's authentication for this request (README "Assurance levels"). */
  assurance?: AssuranceLevel | null;
  /** The DPoP key thumbprint to bind the access token to (RFC 9449 §6.1). */
  dpopJkt?: string | null;
  /** Scope the client asked for, to report narrowing (RFC 6749 §5.1). */
  requestedScope?: string[];
  auditType: string;
  requestId: string;
}

const REFRESH_PREFIX = 'ert_';

export interface RefreshInput {
  refreshToken: string;
  clientId: string;
  scope: string[] | undefined;
  audience: (row: RefreshToken) => string;
  requestId: string;
  /** The key of the request's DPoP proof, if any. */
  dpopJkt?: string | null;
  assurance?: AssuranceLevel | null;
}

type RefreshOutcome = { ok: TokenResponse } | { error: OAuthError };

/** What the grace window keeps of a refresh token's first use (sealed with the master key). */
const FirstUseSchema = z.object({
  response: z.record(z.string(), z.unknown()),
  dpopJkt: z.string().nullable(),
  scope: z.array(z.string()),
  audience: z.string(),
  jti: z.string(),
});
type FirstUse = z.infer<typeof FirstUseSchema>;

const graceAad = (tokenHash: string) => `refresh-grace:${tokenHash}`;

const invalid = (why: string): { error: OAuthError } => ({ error: new OAuthError('invalid_grant', why) });

/**
 * Whether a retry at `now` falls in the grace window of a first use at `usedAt`: at most `grace`
 * seconds later, and earlier by no more than the clock skew (a process a little behind the one that
 * served the first use). A first use further in the future means the clock stepped back; without the
 * lower bound the window would last as long as the step (README "Clock skew and clock jumps").
 */
export function isWithinRefreshGrace(usedAt: number, now: number, grace: number, skew: number): boolean {
  return now - usedAt <= grace && usedAt - now <= skew;
}

const isSameScope = (a: string[], b: string[]) => a.length === b.length && isScopeSubset(a, b) && isScopeSubset(b, a);

/**
 * The checks a refresh token's use must pass, first use or retry: not expired, presented with a
 * proof by the key it is bound to (RFC 9449 §5), a scope within the grant and a known resource.
 * `reason` is set when the refusal is worth auditing on a retry (a missing or wrong DPoP key).
 */
function checkRefresh(
  row: RefreshToken,
  input: RefreshInput,
  now: number,
): { scope: string[]; audience: string } | { error: OAuthError; reason?: string } {
  if (row.expiresAt <= now || row.familyExpiresAt <= now) return invalid('the refresh token has expired');
  if (row.dpopJkt && row.dpopJkt !== input.dpopJkt) {
    return {
      ...invalid('the refresh token is bound to a DPoP key: send a DPoP proof made with that key'),
      reason: 'dpop_key_mismatch',
    };
  }
  const scope = input.scope ?? row.scope;
  if (!isScopeSubset(scope, row.scope)) {
    return { error: new OAuthError('invalid_scope', 'scope exceeds what was granted') };
  }
  try {
    return { scope, audience: input.audience(row) };
  } catch (err) {
    if (err instanceof OAuthError) return { error: err };
    throw err;
  }
}

/**
 * Issues, rotates, revokes and describes tokens. Every write and its audit event share one
 * transaction, so a token that is returned is always recorded.
 */
export class TokenService {
  constructor(private readonly deps: TokenServiceDeps) {}

  /** Mints an access token (and optionally a refresh token); `inTx` adds the grant's own writes. */
  async issue(req: IssueRequest, inTx?: (tx: Tx) => Promise<void>): Promise<TokenResponse> {
    const { minter, db, grants, audit, clock, ttl } = this.deps;
    const minted = minter.mint({
      clientId: req.clientId,
      subject: req.subject,
      audience: req.audience,
      scope: req.scope,
      ttl: ttl.accessToken,
      grantId: req.grantId,
      claims: actorClaims(req),
    });
    const response: TokenResponse = {
      access_token: minted.token,
      token_type: tokenTypeFor(req.dpopJkt),
      expires_in: minted.expiresIn,
      ...(minted.record.scope ? { scope: minted.record.scope } : {}),
    };
    await db.write(async (tx) => {
      if (inTx) await inTx(tx);
      const now = clock.now();
      if (req.refresh && req.grantId && req.userId) {
        const refresh = newSecret(REFRESH_PREFIX);
        await grants.insertRefresh(
          {
            tokenHash: hashSecret(refresh),
            familyId: req.grantId,
            clientId: req.clientId,
            userId: req.userId,
            scope: req.refresh.scope,
            resources: req.refresh.resources,
            createdAt: now,
            expiresAt: Math.min(now + ttl.refreshTokenIdle, now + ttl.refreshToken),
            familyExpiresAt: now + ttl.refreshToken,
            usedAt: null,
            graceResponse: null,
            revokedAt: null,
            dpopJkt: req.refresh.dpopJkt ?? null,
          },
          tx,
        );
        response.refresh_token = refresh;
      }
      await grants.insertToken(minted.record, tx);
      await audit.append(
        {
          type: req.auditType,
          result: 'allowed',
          userId: req.userId,
          clientId: req.clientId,
          actorChain: [req.clientId],
          audience: req.audience,
          scope: minted.record.scope,
          requestId: req.requestId,
          details: { jti: minted.record.jti, kid: minted.record.kid },
        },
        now,
        tx,
      );
    });
    return response;
  }

  /**
   * Refresh with rotation (OAuth 2.1 §4.3.1). A refresh token works once; after the grace window a
   * second use is treated as theft and the whole family is revoked. Within the window, the retry of a
   * concurrent refresh (common with MCP clients) gets the very same successor response, but only
   * after every check a first use gets and only for the same request from the same DPoP key.
   */
  async refresh(input: RefreshInput): Promise<TokenResponse> {
    const { db, grants, audit, clock, minter, box, ttl } = this.deps;
    const tokenHash = hashSecret(input.refreshToken);
    let ended: RevocationEvent[] = [];
    const outcome = await db.write(async (tx): Promise<RefreshOutcome> => {
      const now = clock.now();
      const row = await grants.getRefresh(tokenHash, tx);
      if (!row || row.clientId !== input.clientId) return invalid('the refresh token is invalid');
      if (row.revokedAt !== null) return invalid('the refresh token has been revoked');
      if (row.usedAt !== null) {
        if (row.graceResponse && isWithinRefreshGrace(row.usedAt, now, ttl.refreshGrace, this.deps.clockSkew)) {
          return this.retryWithinGrace({ ...row, usedAt: row.usedAt }, row.graceResponse, tokenHash, input, now, tx);
        }
        await grants.revokeGrant(row.familyId, now, tx);
        ended = await this.endTasksFrom(tx, { subjectGrantId: row.familyId }, now, input.requestId);
        await audit.append(
          {
            type: 'refresh_token.reused',
            result: 'denied',
            userId: row.userId,
            clientId: row.clientId,
            reason: 'refresh_token_reuse',
            requestId: input.requestId,
            details: { familyId: row.familyId },
          },
          now,
          tx,
        );
        return invalid('the refresh token was already used; its token family has been revoked');
      }
      const checked = checkRefresh(row, input, now);
      if ('error' in checked) return { error: checked.error };
      const { scope, audience } = checked;
      const minted = minter.mint({
        clientId: row.clientId,
        subject: row.userId,
        audience,
        scope,
        ttl: ttl.accessToken,
        grantId: row.familyId,
        claims: actorClaims(input),
      });
      const successor = newSecret(REFRESH_PREFIX);
      const response: TokenResponse = {
        access_token: minted.token,
        token_type: tokenTypeFor(input.dpopJkt),
        expires_in: minted.expiresIn,
        refresh_token: successor,
        ...(minted.record.scope ? { scope: minted.record.scope } : {}),
      };
      // The first use, kept sealed for the grace window: the response and what it answered.
      const first: FirstUse = { response, dpopJkt: input.dpopJkt ?? null, scope, audience, jti: minted.record.jti };
      const sealed = ttl.refreshGrace > 0 ? box.seal(Buffer.from(JSON.stringify(first)), graceAad(tokenHash)) : null;
      await grants.markRefreshUsed(tokenHash, now, sealed, tx);
      await grants.insertRefresh(
        {
          ...row,
          tokenHash: hashSecret(successor),
          createdAt: now,
          expiresAt: Math.min(now + ttl.refreshTokenIdle, row.familyExpiresAt),
          usedAt: null,
          graceResponse: null,
          revokedAt: null,
        },
        tx,
      );
      await grants.insertToken(minted.record, tx);
      await audit.append(
        {
          type: 'token.refreshed',
          result: 'allowed',
          userId: row.userId,
          clientId: row.clientId,
          actorChain: [row.clientId],
          audience,
          scope: formatScope(scope),
          requestId: input.requestId,
          details: { jti: minted.record.jti, familyId: row.familyId },
        },
        now,
        tx,
      );
      return { ok: response };
    });
    this.deps.tasks.flush(ended);
    if ('error' in outcome) throw outcome.error;
    return outcome.ok;
  }

  /**
   * A used refresh token presented again within the grace window. Every check of a first use applies
   * (client and revocation were checked by the caller; expiry, the DPoP binding of RFC 9449 §5, scope
   * and resource here), and the response is served only to the DPoP key that made the first request
   * (or again without one, if that had none) and for the same scope and resource. Served or refused,
   * the retry is audited, so a replay by someone else shows up.
   */
  private async retryWithinGrace(
    row: RefreshToken & { usedAt: number },
    sealed: string,
    tokenHash: string,
    input: RefreshInput,
    now: number,
    tx: Tx,
  ): Promise<RefreshOutcome> {
    const record = (result: 'allowed' | 'denied', extra: { reason?: string; jti?: string; scope?: string[] }) =>
      this.deps.audit.append(
        {
          type: 'refresh_token.grace_reused',
          result,
          userId: row.userId,
          clientId: row.clientId,
          actorChain: [row.clientId],
          ...(extra.reason ? { reason: extra.reason } : {}),
          ...(extra.scope ? { scope: formatScope(extra.scope) } : {}),
          requestId: input.requestId,
          details: { familyId: row.familyId, firstUsedAt: row.usedAt, ...(extra.jti ? { jti: extra.jti } : {}) },
        },
        now,
        tx,
      );
    const checked = checkRefresh(row, input, now);
    if ('error' in checked) {
      if (checked.reason) await record('denied', { reason: checked.reason });
      return { error: checked.error };
    }
    const first = FirstUseSchema.safeParse(
      JSON.parse(this.deps.box.open(sealed, graceAad(tokenHash)).toString('utf8')),
    );
    if (!first.success || first.data.dpopJkt !== (input.dpopJkt ?? null)) {
      await record('denied', { reason: 'dpop_key_mismatch' });
      return invalid(
        'the refresh token was already used; within the grace window only the DPoP key of the first request gets its response',
      );
    }
    if (!isSameScope(checked.scope, first.data.scope) || checked.audience !== first.data.audience) {
      await record('denied', { reason: 'request_mismatch' });
      return invalid(
        'the refresh token was already used; within the grace window only the same scope and resource get the first response',
      );
    }
    await record('allowed', { jti: first.data.jti, scope: first.data.scope });
    return { ok: first.data.response as TokenResponse };
  }

  /**
   * Maintenance: drops the sealed successor responses no retry can get any more, by the same rule
   * as `refresh` (used more than the grace window ago, or further ahead than the clock skew).
   */
  async clearGraceResponses(): Promise<number> {
    const { grants, clock, clockSkew, ttl } = this.deps;
    const now = clock.now();
    return grants.clearGraceResponses(now - ttl.refreshGrace, now + clockSkew);
  }

  /** Revokes every token of a grant (a reused authorization code, a revoked refresh token). */
  async revokeGrant(grantId: string, audit: { type: string; clientId: string; reason: string; requestId: string }) {
    const ended = await this.deps.db.write(async (tx) => {
      const now = this.deps.clock.now();
      await this.deps.grants.revokeGrant(grantId, now, tx);
      await this.deps.audit.append({ ...audit, result: 'denied', details: { grantId } }, now, tx);
      return this.endTasksFrom(tx, { subjectGrantId: grantId }, now, audit.requestId);
    });
    this.deps.tasks.flush(ended);
  }

  /**
   * Ends the on-behalf-of tasks started from revoked user tokens, in the revoking transaction: a
   * resource server's downstream token does not outlive the user's token it was exchanged from.
   */
  private endTasksFrom(
    tx: Tx,
    by: { subjectJti: string } | { subjectGrantId: string },
    now: number,
    requestId: string,
  ) {
    return this.deps.tasks.endWhere(tx, by, 'subject_revoked', now, requestId);
  }

  /**
   * RFC 7662 introspection. Inactive, expired, revoked, unknown and not-yours all answer exactly
   * `{ active: false }` (§2.2). A caller sees a token it was issued, or one whose audience it serves.
   */
  async introspect(token: string, caller: Client): Promise<Record<string, unknown>> {
    const inactive = { active: false };
    const now = this.deps.clock.now();
    if (token.startsWith(REFRESH_PREFIX)) {
      const row = await this.deps.grants.getRefresh(hashSecret(token));
      if (!row || row.clientId !== caller.id || row.revokedAt !== null || row.usedAt !== null) return inactive;
      if (row.expiresAt <= now || row.familyExpiresAt <= now) return inactive;
      return {
        active: true,
        client_id: row.clientId,
        sub: row.userId,
        scope: formatScope(row.scope),
        iat: row.createdAt,
        exp: row.expiresAt,
        iss: this.deps.issuer,
      };
    }
    const verified = this.deps.minter.verify(token);
    if (!verified) return inactive;
    const row = await this.deps.grants.getToken(verified.jti);
    if (!row || row.revokedAt !== null || row.expiresAt <= now) return inactive;
    if (row.clientId !== caller.id && !caller.resources.includes(row.audience)) return inactive;
    const { claims } = verified;
    const cnf = claims[CLAIM.confirmation] as { jkt?: string } | undefined;
    return {
      active: true,
      // RFC 9449 §6.2: a bound token introspects as DPoP, with its confirmation.
      token_type: tokenTypeFor(cnf?.jkt),
      ...(cnf?.jkt ? { cnf: { jkt: cnf.jkt } } : {}),
      iss: claims.iss,
      sub: claims.sub,
      aud: claims.aud,
      client_id: claims.client_id,
      ...(row.scope ? { scope: row.scope } : {}),
      iat: claims.iat,
      exp: claims.exp,
      jti: claims.jti,
      // Task tokens: who acts for whom, and the task (RFC 8693 §4.1; RFC 7662 §2.2 extensions).
      ...(claims.act ? { act: claims.act } : {}),
      ...(claims.task_id ? { task_id: claims.task_id } : {}),
      ...(claims[CLAIM.assurance] ? { [CLAIM.assurance]: claims[CLAIM.assurance] } : {}),
      ...(claims.authorization_details ? { authorization_details: claims.authorization_details } : {}),
    };
  }

  /**
   * RFC 7009 revocation. Unknown or already invalid tokens answer 200 (§2.2). Revoking a refresh
   * token revokes its whole family and the access tokens issued from it (§2.1).
   */
  async revoke(token: string, hint: string | undefined, caller: Client, requestId: string): Promise<void> {
    if (hint !== undefined && hint !== 'access_token' && hint !== 'refresh_token') {
      throw new OAuthError('unsupported_token_type', `token_type_hint "${hint.slice(0, 40)}" is not supported`);
    }
    const { db, grants, audit, clock } = this.deps;
    if (token.startsWith(REFRESH_PREFIX)) {
      const row = await grants.getRefresh(hashSecret(token));
      if (!row) return;
      if (row.clientId !== caller.id)
        throw new OAuthError('unauthorized_client', 'the token was not issued to this client');
      const ended = await db.write(async (tx) => {
        const now = clock.now();
        await grants.revokeGrant(row.familyId, now, tx);
        await audit.append(
          {
            type: 'token.revoked',
            result: 'allowed',
            userId: row.userId,
            clientId: caller.id,
            requestId,
            details: { familyId: row.familyId },
          },
          now,
          tx,
        );
        return this.endTasksFrom(tx, { subjectGrantId: row.familyId }, now, requestId);
      });
      this.deps.tasks.flush(ended);
      return;
    }
    // RFC 7009 §2.1: a token minted while the clock ran ahead is not valid yet, but can be revoked.
    const verified = this.deps.minter.verify(token, { acceptFutureIat: true });
    if (!verified) return;
    const row = await grants.getToken(verified.jti);
    if (!row) return;
    if (row.clientId !== caller.id)
      throw new OAuthError('unauthorized_client', 'the token was not issued to this client');
    const ended = await db.write(async (tx) => {
      const now = clock.now();
      if (!(await grants.revokeToken(row.jti, now, tx))) return [];
      await audit.append(
        {
          type: 'token.revoked',
          result: 'allowed',
          userId: row.subject === row.clientId ? null : row.subject,
          clientId: caller.id,
          audience: row.audience,
          requestId,
          details: { jti: row.jti },
        },
        now,
        tx,
      );
      return this.endTasksFrom(tx, { subjectJti: row.jti }, now, requestId);
    });
    this.deps.tasks.flush(ended);
  }

  /** A new grant id (the id of a refresh family and of the tokens of one authorization). */
  newGrantId(): string {
    return newId('grt');
  }
}
