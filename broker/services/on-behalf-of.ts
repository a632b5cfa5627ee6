import { CLAIM, formatScope } from '@errand/protocol';
import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { DelegationStore, StoredDelegation } from '../../db/stores/delegation-store.js';
import type { GrantStore } from '../../db/stores/grant-store.js';
import type { Parent } from '../core/attenuation.js';
import type { Client } from '../core/client.js';
import type { Denial } from '../core/denials.js';
import { OAuthError } from '../core/errors.js';
import { exchangeRuleFor, isOwnAudience } from '../core/exchange-rule.js';
import type { Clock } from '../core/ports.js';
import type { VerifiedAccessToken } from '../tokens/access-token.js';
import { newId } from '../tokens/random.js';

export interface OnBehalfOfDeps {
  db: Db;
  grants: GrantStore;
  delegations: DelegationStore;
  audit: AuditStore;
  clock: Clock;
  /** How long a delegation an exchange rule stands for lasts before another is recorded. */
  ruleDelegationTtl: number;
}

/** Who the subject token came from, recorded with the exchange (README "On-behalf-of exchange"). */
export interface OnBehalfOf {
  subjectJti: string;
  /** The client the user's token was issued to (e.g. the person's MCP client). */
  subjectClientId: string;
  /** The subject token's audience: the requesting resource server's own resource. */
  subjectAudience: string;
  via: 'delegation' | 'exchange_rule';
}

export type UserSubject =
  | { ok: true; delegation: StoredDelegation; parent: Parent; onBehalfOf: OnBehalfOf }
  | { ok: false; denial: Denial; userId: string };

const INVALID_SUBJECT = 'subject_token is invalid, expired or revoked';

/**
 * The subject of an on-behalf-of exchange: a user's ordinary access token that a resource server (an
 * MCP server, a gateway) received for its own audience, exchanged for a task token to a downstream
 * resource. Governed by a delegation from that user to that client, or an administrator's exchange
 * rule for the client (recorded as a delegation of source `exchange_rule`), which then is the
 * parent every rule of `attenuate` applies to; the subject token bounds the expiry.
 */
export async function readUserSubject(
  deps: OnBehalfOfDeps,
  req: { client: Client; actor: Client; audience: string | null; dpopJkt: string | null; requestId: string },
  verified: VerifiedAccessToken,
): Promise<UserSubject> {
  const row = await deps.grants.getToken(verified.jti);
  if (!row || row.revokedAt !== null || row.taskId !== null) throw new OAuthError('invalid_request', INVALID_SUBJECT);
  // A client_credentials token has no grant: it speaks for the client itself, not for a person.
  if (row.grantId === null) {
    throw new OAuthError('invalid_request', 'subject_token speaks for no user: it was issued to a client for itself');
  }
  // No passthrough: a token meant for another resource is not this client's to exchange.
  if (!isOwnAudience(req.client, row.audience)) {
    throw new OAuthError(
      'invalid_request',
      `subject_token is an access token for "${row.audience}", not for a resource of the requesting client`,
    );
  }
  if (req.actor.id !== req.client.id) {
    throw new OAuthError(
      'invalid_request',
      'in an on-behalf-of exchange the resource server the subject token is for acts: an actor_token must prove that same client',
    );
  }
  // RFC 9449: a sender-constrained token is used only with a proof by its key.
  const jkt = (verified.claims[CLAIM.confirmation] as { jkt?: unknown } | undefined)?.jkt;
  if (typeof jkt === 'string' && jkt !== req.dpopJkt) {
    throw new OAuthError(
      'invalid_request',
      'subject_token is DPoP-bound: the exchange request must carry a DPoP proof by the key it is bound to',
    );
  }
  if (req.audience === null) {
    throw new OAuthError('invalid_target', 'resource (or audience) is required: name the downstream resource');
  }
  const audience = req.audience;
  const userId = row.subject;
  const now = deps.clock.now();
  // The user's own decision first (consent or CIBA), then what an exchange rule already recorded.
  const covering = (await deps.delegations.activeFor(req.client.id, userId))
    .filter((d) => d.expiresAt > now && d.grants[audience] !== undefined)
    .sort((a, b) => Number(a.source === 'exchange_rule') - Number(b.source === 'exchange_rule'));
  let delegation = covering[0] ?? null;
  if (!delegation) {
    const rule = exchangeRuleFor(req.client, audience);
    if (!rule)
      return { ok: false, denial: { reason: 'not_delegated_for_user', clientId: req.client.id, audience }, userId };
    delegation = await recordRuleDelegation(deps, { client: req.client, userId, rule, requestId: req.requestId });
  }
  return {
    ok: true,
    delegation,
    // The delegation (or rule) is the ceiling at the downstream resource; the subject token's own
    // scopes are another resource's and neither widen nor narrow it. Its expiry bounds everything.
    parent: {
      kind: 'delegation',
      grants: delegation.grants,
      details: delegation.authorizationDetails,
      exp: Math.min(row.expiresAt, delegation.expiresAt),
      task: null,
    },
    onBehalfOf: {
      subjectJti: row.jti,
      subjectClientId: row.clientId,
      subjectAudience: row.audience,
      via: delegation.source === 'exchange_rule' ? 'exchange_rule' : 'delegation',
    },
  };
}

/**
 * Records what an administrator's exchange rule grants this client for this user as a delegation,
 * so tasks, revocation and the user's view work as for any other (the user sees it and may revoke
 * it; changing the client's rules revokes it). No sub-agents: `max_depth` 0.
 */
async function recordRuleDelegation(
  deps: OnBehalfOfDeps,
  input: {
    client: Client;
    userId: string;
    rule: { resource: string; scopes: string[]; maxTokenTtl: number };
    requestId: string;
  },
): Promise<StoredDelegation> {
  const { rule } = input;
  const grants = { [rule.resource]: [...rule.scopes] };
  return deps.db.write(async (tx) => {
    const now = deps.clock.now();
    const d: StoredDelegation = {
      id: newId('dlg'),
      userId: input.userId,
      agentId: input.client.id,
      status: 'active',
      requested: {
        grants,
        authorizationDetails: null,
        maxTokenTtl: rule.maxTokenTtl,
        maxDepth: 0,
        subAgents: null,
        expiresIn: deps.ruleDelegationTtl,
      },
      grants,
      authorizationDetails: null,
      maxTokenTtl: rule.maxTokenTtl,
      maxDepth: 0,
      subAgents: null,
      expiresAt: now + deps.ruleDelegationTtl,
      createdAt: now,
      decidedAt: now,
      revokedAt: null,
      source: 'exchange_rule',
      bindingMessage: null,
      credentialJti: null,
      minAssurance: null,
    };
    await deps.delegations.insert(d, tx);
    await deps.audit.append(
      {
        type: 'delegation.approved',
        result: 'allowed',
        userId: d.userId,
        clientId: d.agentId,
        delegationId: d.id,
        audience: rule.resource,
        scope: formatScope(rule.scopes),
        requestId: input.requestId,
        details: { source: 'exchange_rule' },
      },
      now,
      tx,
    );
    return d;
  });
}
