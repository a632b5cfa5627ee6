import { GRANT_TYPE } from '@errand/protocol';
import { z } from 'zod';
import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { InitialAccessTokenStore } from '../../db/stores/initial-access-token-store.js';
import { OAuthError } from '../core/errors.js';
import { AGENT_GRANTS, type InitialAccessToken, initialAccessTokenState } from '../core/initial-access-token.js';
import type { Clock } from '../core/ports.js';
import { hashSecret, newId, newSecret, safeEqual } from '../tokens/random.js';
import { ScopeList } from './admin.js';

const DAY = 86_400;

export const CreateInitialAccessTokenSchema = z
  .object({
    name: z.string().min(1).max(200),
    /** Seconds the token may be used for: a minute to 30 days, a day by default. */
    expires_in: z
      .number()
      .int()
      .min(60)
      .max(30 * DAY)
      .default(DAY),
    max_uses: z.number().int().min(1).max(100_000).optional(),
    auto_approve: z.boolean().default(false),
    /** The scopes registered agents may hold (their registered `scope` must be within it). */
    scope: ScopeList.min(1).optional(),
    grant_types: z
      .array(z.enum([GRANT_TYPE.clientCredentials, GRANT_TYPE.tokenExchange, GRANT_TYPE.ciba]))
      .min(1)
      .max(3)
      .optional(),
  })
  .strict();

export interface InitialAccessTokenDeps {
  db: Db;
  initialAccessTokens: InitialAccessTokenStore;
  audit: AuditStore;
  clock: Clock;
}

/** The wire view of an initial access token: never its value or hash. */
export function initialAccessTokenView(t: InitialAccessToken, now: number) {
  return {
    id: t.id,
    name: t.name,
    state: initialAccessTokenState(t, now),
    created_by: t.createdBy,
    created_at: t.createdAt,
    expires_at: t.expiresAt,
    max_uses: t.maxUses,
    uses: t.uses,
    auto_approve: t.autoApprove,
    scope: t.scopes,
    grant_types: t.grantTypes,
    revoked_at: t.revokedAt,
  };
}

/** Issues a token; its value is returned here once and only its hash is stored. */
export async function issueInitialAccessToken(
  deps: InitialAccessTokenDeps,
  input: z.output<typeof CreateInitialAccessTokenSchema>,
  adminId: string,
  requestId: string,
) {
  const now = deps.clock.now();
  const value = newSecret('eiat_');
  const token: InitialAccessToken = {
    id: newId('iat'),
    name: input.name,
    createdBy: adminId,
    createdAt: now,
    expiresAt: now + input.expires_in,
    maxUses: input.max_uses ?? null,
    uses: 0,
    autoApprove: input.auto_approve,
    scopes: input.scope ? [...new Set(input.scope)].sort() : null,
    grantTypes: input.grant_types ? [...new Set(input.grant_types)] : [...AGENT_GRANTS],
    revokedAt: null,
  };
  await deps.db.write(async (tx) => {
    await deps.initialAccessTokens.insert(token, hashSecret(value), tx);
    await deps.audit.append(
      {
        type: 'initial_access_token.issued',
        result: 'allowed',
        userId: adminId,
        requestId,
        details: {
          initialAccessTokenId: token.id,
          expiresAt: token.expiresAt,
          maxUses: token.maxUses,
          autoApprove: token.autoApprove,
        },
      },
      now,
      tx,
    );
  });
  return { ...initialAccessTokenView(token, now), initial_access_token: value };
}

/** Revokes a token: later registrations with it are refused; agents it registered stay. */
export async function revokeInitialAccessToken(
  deps: InitialAccessTokenDeps,
  id: string,
  adminId: string,
  requestId: string,
) {
  const now = deps.clock.now();
  const existing = await deps.initialAccessTokens.get(id);
  if (!existing) throw new OAuthError('not_found', 'no such initial access token');
  await deps.db.write(async (tx) => {
    if (!(await deps.initialAccessTokens.revoke(id, now, tx))) return;
    await deps.audit.append(
      {
        type: 'initial_access_token.revoked',
        result: 'allowed',
        userId: adminId,
        requestId,
        details: { initialAccessTokenId: id },
      },
      now,
      tx,
    );
  });
  return initialAccessTokenView((await deps.initialAccessTokens.get(id))!, now);
}

/**
 * RFC 6750 §3.1: a presented token that is unknown, expired, revoked or used up is 401 invalid_token.
 * One description for every case, so a caller cannot tell which tokens exist; the log says which.
 */
export function invalidInitialAccessToken(): OAuthError {
  const description = 'the initial access token is invalid, expired, revoked or used up';
  return new OAuthError('invalid_token', description, {
    headers: { 'WWW-Authenticate': `Bearer error="invalid_token", error_description="${description}"` },
  });
}

/**
 * The usable token a registration presents, or invalid_token. Looked up by hash (the value is never
 * stored) and the stored hash compared in constant time.
 */
export async function findUsableInitialAccessToken(
  deps: Pick<InitialAccessTokenDeps, 'initialAccessTokens' | 'clock'>,
  value: string,
): Promise<{ token: InitialAccessToken } | { refused: string }> {
  const hash = hashSecret(value);
  const found = await deps.initialAccessTokens.findByHash(hash);
  if (!found || !safeEqual(found.storedHash, hash)) return { refused: 'unknown' };
  const state = initialAccessTokenState(found.token, deps.clock.now());
  return state === 'active' ? { token: found.token } : { refused: state };
}
