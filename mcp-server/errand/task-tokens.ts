import { z } from 'zod';
import { OAuthError } from '../../broker/core/errors.js';
import { parseScope } from '../../broker/core/scopes.js';
import type { ExchangeResponse } from '../../broker/services/exchange-token.js';
import { canonicalResources } from '../../broker/services/resource-policy.js';
import type { Guidance } from './results.js';

/** A task token as the task tools return it (RFC 8693 §2.2.1 names). */
export const TaskTokenOutputSchema = z.object({
  task_id: z.string(),
  access_token: z.string(),
  token_type: z.enum(['Bearer', 'DPoP']),
  expires_in: z.number().int(),
  scope: z.string(),
});
export type TaskTokenOutput = z.infer<typeof TaskTokenOutputSchema>;

export const ResourceArg = z.string().max(2048).describe('The resource (API or MCP server URL) the token is for.');
export const ScopeArg = z.string().max(2048).describe('Space-separated scopes; omit for all the parent holds there.');

export function taskTokenOutput(r: ExchangeResponse): TaskTokenOutput {
  return {
    task_id: r.task_id,
    access_token: r.access_token,
    token_type: r.token_type,
    expires_in: r.expires_in,
    scope: r.scope,
  };
}

/** The audience and scope of an exchange, in the forms the service expects (RFC 8707, RFC 6749 §3.3). */
export function exchangeTarget(resource: string | undefined, scope: string | undefined) {
  const [audience] = resource === undefined ? [] : canonicalResources(resource);
  const scopes = scope === undefined ? null : parseScope(scope);
  if (scopes === null && scope !== undefined)
    throw new OAuthError('invalid_scope', 'scope must be space-separated scope tokens');
  return { audience: audience ?? null, scope: scopes };
}

/** What to do about a refused exchange, by its error code. */
export function exchangeGuidance(target: { resource?: string | undefined; scope?: string | undefined }): Guidance {
  return (err) => {
    switch (err.code) {
      case 'invalid_target':
        return {
          missing: { resource: target.resource ?? 'a resource the delegation covers' },
          how: 'pass a resource the delegation covers (see list_delegations), or call request_delegation for this resource',
        };
      case 'invalid_scope':
        return {
          missing: { scope: target.scope ?? null },
          how: 'ask only for scopes the delegation grants (see list_delegations), or call request_delegation for more',
        };
      default:
        return { how: 'check the delegation and task with list_delegations and list_tasks, then call again' };
    }
  };
}
