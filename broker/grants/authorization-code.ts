import { createHash } from 'node:crypto';
import { GRANT_TYPE } from '@errand/protocol';
import { z } from 'zod';
import type { Db, Tx } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { DelegationStore } from '../../db/stores/delegation-store.js';
import type { AuthorizationCode, GrantStore } from '../../db/stores/grant-store.js';
import type { UserStore } from '../../db/stores/user-store.js';
import { isConfidential } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import { param } from '../core/params.js';
import type { Clock } from '../core/ports.js';
import type { DelegationService } from '../services/delegations.js';
import { canonicalResources, pickAudience } from '../services/resource-policy.js';
import type { TokenService } from '../services/token-service.js';
import type { TokenMinter } from '../tokens/access-token.js';
import { profileClaims, signIdToken } from '../tokens/id-token.js';
import { hashSecret, safeEqual } from '../tokens/random.js';
import type { Grant } from './types.js';

// RFC 7636 §4.1: 43–128 characters of the unreserved set.
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;

const Params = z.object({
  code: param(512),
  code_verifier: param(256).optional(),
  redirect_uri: param(2048).optional(),
  resource: z.array(z.string()).optional(),
});

/** RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))). */
export function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** `authorization_code` with PKCE S256 only (OAuth 2.1 §4.1.3). */
export function authorizationCodeGrant(deps: {
  db: Db;
  audit: AuditStore;
  grants: GrantStore;
  tokens: TokenService;
  delegations: DelegationStore;
  delegationService: DelegationService;
  users: Pick<UserStore, 'get'>;
  minter: TokenMinter;
  clock: Clock;
}): Grant<typeof Params> {
  /** OIDC Core §3.1.3.3: an OpenID request's code also yields an ID token for the client. */
  const idToken = async (code: AuthorizationCode): Promise<{ id_token?: string }> => {
    if (!code.openid) return {};
    const user = await deps.users.get(code.userId);
    if (!user) throw new OAuthError('invalid_grant', 'the person who approved no longer exists');
    const token = signIdToken(deps.minter, deps.clock.now(), {
      sub: code.userId,
      clientId: code.clientId,
      // The person signed in and approved on the consent page when the code was made.
      authTime: code.createdAt,
      nonce: code.nonce ?? null,
      claims: profileClaims(user, code.scope),
    });
    return { id_token: token };
  };

  // The first proof that the client received the code the person's consent produced.
  const redeem = async (codeHash: string, code: AuthorizationCode, now: number, requestId: string, tx: Tx) => {
    if (!(await deps.grants.redeemCode(codeHash, now, tx))) {
      throw new OAuthError('invalid_grant', 'the authorization code was already used');
    }
    await deps.audit.append(
      {
        type: 'authorization_code.redeemed',
        result: 'allowed',
        userId: code.userId,
        clientId: code.clientId,
        delegationId: code.delegationId ?? null,
        scope: code.scope.join(' '),
        audience: code.resources.join(' '),
        requestId,
      },
      now,
      tx,
    );
  };
  return {
    type: GRANT_TYPE.authorizationCode,
    params: Params,
    async handle(p, ctx) {
      const { client } = ctx.client;
      if (!client.grantTypes.includes(GRANT_TYPE.authorizationCode)) {
        throw new OAuthError('unauthorized_client', 'this client is not allowed to use authorization_code');
      }
      const codeHash = hashSecret(p.code);
      const code = await deps.grants.getCode(codeHash);
      const now = deps.clock.now();
      if (!code || code.clientId !== client.id)
        throw new OAuthError('invalid_grant', 'the authorization code is invalid');
      if (code.usedAt !== null) {
        // OAuth 2.1 §4.1.3: a second redemption revokes what the first one produced.
        await deps.tokens.revokeGrant(code.grantId, {
          type: 'authorization_code.reused',
          clientId: client.id,
          reason: 'authorization_code_reuse',
          requestId: ctx.requestId,
        });
        // An agent's code produced a delegation: revoking it ends its tasks, so its credential and
        // every task token issued under it stop working.
        if (code.delegationId) {
          await deps.delegationService.revokeForReusedCode(code.delegationId, ctx.requestId);
          throw new OAuthError(
            'invalid_grant',
            'the authorization code was already used; the delegation issued from it is revoked',
          );
        }
        throw new OAuthError(
          'invalid_grant',
          'the authorization code was already used; tokens issued from it are revoked',
        );
      }
      if (code.expiresAt <= now) throw new OAuthError('invalid_grant', 'the authorization code has expired');
      // Every code Errand issues carries a challenge, so a missing verifier is a downgrade attempt.
      if (!p.code_verifier) throw new OAuthError('invalid_grant', 'code_verifier is required (PKCE)');
      if (!VERIFIER.test(p.code_verifier)) {
        throw new OAuthError('invalid_grant', 'code_verifier must be 43-128 characters of [A-Za-z0-9-._~]');
      }
      if (!safeEqual(s256(p.code_verifier), code.codeChallenge)) {
        throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge');
      }
      // OAuth 2.1 §4.1.3: a redirect_uri sent with the authorization request must be repeated exactly.
      if (code.redirectUriSent || p.redirect_uri !== undefined) {
        if (p.redirect_uri !== code.redirectUri) {
          throw new OAuthError('invalid_grant', 'redirect_uri does not match the authorization request');
        }
      }
      if (code.delegationId) {
        // An agent's consent: the code redeems to the delegation credential, never to resource tokens.
        await deps.db.write((tx) => redeem(codeHash, code, now, ctx.requestId, tx));
        const delegation = await deps.delegations.get(code.delegationId);
        if (delegation?.status !== 'active')
          throw new OAuthError('invalid_grant', 'the delegation is no longer active');
        const credential = await deps.delegationService.issueCredential(delegation, ctx.client.assurance);
        return { ...credential, ...(await idToken(code)) };
      }
      const audience = pickAudience(canonicalResources(p.resource), code.resources);
      const withRefresh = client.grantTypes.includes(GRANT_TYPE.refreshToken);
      const oidc = await idToken(code);
      const issued = await deps.tokens.issue(
        {
          clientId: client.id,
          subject: code.userId,
          userId: code.userId,
          audience,
          scope: code.scope,
          grantId: code.grantId,
          ...(withRefresh
            ? {
                refresh: {
                  resources: code.resources,
                  scope: code.scope,
                  // RFC 9449 §5: a public client's refresh token is bound to its DPoP key.
                  dpopJkt: isConfidential(client) ? null : (ctx.dpop?.jkt ?? null),
                },
              }
            : {}),
          assurance: ctx.client.assurance,
          dpopJkt: ctx.dpop?.jkt ?? null,
          auditType: 'token.issued',
          requestId: ctx.requestId,
        },
        (tx) => redeem(codeHash, code, now, ctx.requestId, tx),
      );
      return { ...issued, ...oidc };
    },
  };
}
