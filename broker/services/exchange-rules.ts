import { canonicalizeResource, isScopeToken } from '@errand/protocol';
import { z } from 'zod';
import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { DelegationStore } from '../../db/stores/delegation-store.js';
import { canExchange } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import { EXCHANGE_RULES_KEY, type ExchangeRule, exchangeRulesOf } from '../core/exchange-rule.js';
import type { Clock } from '../core/ports.js';
import { checkAdminScope } from './resource-policy.js';
import type { TaskService } from './tasks.js';

export const ExchangeRulesSchema = z
  .object({
    rules: z
      .array(
        z
          .object({
            resource: z.string().max(2048),
            scopes: z.array(z.string().max(128).refine(isScopeToken, 'is not a valid scope token')).min(1).max(100),
            max_token_ttl: z.number().int().min(30).max(3600).optional(),
          })
          .strict(),
      )
      .max(50),
  })
  .strict();

export interface ExchangeRulesDeps {
  db: Db;
  clients: ClientStore;
  delegations: DelegationStore;
  audit: AuditStore;
  taskService: TaskService;
  clock: Clock;
  /** The default (and ceiling of) `max_token_ttl`: ERRAND_ACCESS_TOKEN_TTL. */
  accessTokenTtl: number;
}

/** The wire view of a rule. */
export function exchangeRuleView(r: ExchangeRule) {
  return { resource: r.resource, scopes: r.scopes, max_token_ttl: r.maxTokenTtl };
}

/**
 * Replaces a resource server's exchange rules (README "On-behalf-of exchange"). The delegations
 * the previous rules were recorded as are revoked in the same transaction, ending their tasks and
 * tokens, so a narrowed or removed rule takes effect at once.
 */
export async function setExchangeRules(
  deps: ExchangeRulesDeps,
  clientId: string,
  input: z.output<typeof ExchangeRulesSchema>,
  adminId: string,
  requestId: string,
  address?: string,
): Promise<ExchangeRule[]> {
  const client = await deps.clients.get(clientId);
  if (!client) throw new OAuthError('not_found', 'no such client');
  if (input.rules.length > 0 && !canExchange(client)) {
    throw new OAuthError(
      'invalid_request',
      'the client is not allowed token exchange: it must be an active confidential client whose grant_types include token exchange',
    );
  }
  if (input.rules.length > 0 && client.resources.length === 0) {
    throw new OAuthError(
      'invalid_request',
      'the client speaks for no resource (its "resources" list is empty): users\' tokens for it could never be exchanged',
    );
  }
  const rules: ExchangeRule[] = [];
  for (const r of input.rules) {
    const url = canonicalizeResource(r.resource);
    const resource = url ? await deps.clients.getResource(url) : null;
    if (!url || !resource)
      throw new OAuthError('invalid_request', `resource "${r.resource}" is not a registered resource`);
    if (rules.some((x) => x.resource === url))
      throw new OAuthError('invalid_request', `resource "${url}" is named twice`);
    const unknown = r.scopes.filter((s) => !resource.scopes.includes(s));
    if (unknown.length > 0) {
      throw new OAuthError('invalid_request', `scope "${unknown.join(' ')}" is not offered by ${url}`);
    }
    // On-behalf-of tokens speak for a person: never the admin API's scope.
    checkAdminScope(r.scopes, client, false);
    const ttl = r.max_token_ttl ?? deps.accessTokenTtl;
    if (ttl > deps.accessTokenTtl) {
      throw new OAuthError(
        'invalid_request',
        `max_token_ttl exceeds ERRAND_ACCESS_TOKEN_TTL (${deps.accessTokenTtl} s)`,
      );
    }
    rules.push({ resource: url, scopes: [...new Set(r.scopes)].sort(), maxTokenTtl: ttl });
  }
  const events = await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    await deps.clients.setMetadata(clientId, { ...client.metadata, [EXCHANGE_RULES_KEY]: rules }, tx);
    await deps.audit.append(
      {
        type: 'exchange_rules.updated',
        result: 'allowed',
        userId: adminId,
        clientId,
        requestId,
        details: {
          before: exchangeRulesOf(client).map(exchangeRuleView),
          after: rules.map(exchangeRuleView),
          ...(address ? { address } : {}),
        },
      },
      now,
      tx,
    );
    const recorded = (await deps.delegations.listForAgent(clientId, tx)).filter(
      (d) => d.source === 'exchange_rule' && d.status === 'active',
    );
    const ended = [];
    for (const d of recorded) {
      if (!(await deps.delegations.revoke(d.id, now, tx))) continue;
      await deps.audit.append(
        {
          type: 'delegation.revoked',
          result: 'allowed',
          userId: d.userId,
          clientId,
          delegationId: d.id,
          reason: 'exchange_rules_changed',
          requestId,
          details: { by: adminId },
        },
        now,
        tx,
      );
      ended.push(
        ...(await deps.taskService.endWhere(tx, { delegationId: d.id }, 'delegation_revoked', now, requestId)),
      );
    }
    return ended;
  });
  deps.taskService.flush(events);
  return rules;
}
