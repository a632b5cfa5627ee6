import { ERRAND_SCOPE } from '@errand/protocol';
import type { Context } from 'hono';
import { z } from 'zod';
import { OAuthError } from '../core/errors.js';
import { hasValidCsrf } from './session.js';
import type { AppEnv } from './types.js';

/** Shared pieces of Errand's JSON APIs (admin and user). */

/** What an API client sends to be let in, in the words of 401 and 403 answers (README "Admin API"). */
export const API_CREDENTIALS = {
  session:
    'send the session cookie from POST /api/session (JSON username and password), and its csrf_token as the X-CSRF-Token header on POST, PUT, PATCH and DELETE',
  token: `send an access token with scope ${ERRAND_SCOPE.admin} as Authorization: Bearer <token> (or DPoP <token> with a DPoP proof)`,
} as const;

/** The session's CSRF token on unsafe methods (a cookie is sent by browsers on their own; a header is not). */
export function checkApiCsrf(c: Context<AppEnv>): void {
  if (['GET', 'HEAD', 'OPTIONS'].includes(c.req.method)) return;
  if (!hasValidCsrf(c, c.req.header('x-csrf-token'))) {
    throw new OAuthError(
      'forbidden',
      'missing or wrong X-CSRF-Token header: with a session cookie, unsafe methods carry the csrf_token POST /api/session returned',
    );
  }
}

export async function jsonBody(c: Context, optional = false): Promise<unknown> {
  const type = c.req.header('content-type') ?? '';
  if (optional && !type && (c.req.header('content-length') ?? '0') === '0') return {};
  if (!/^application\/json(\s*;|$)/i.test(type))
    throw new OAuthError('invalid_request', 'the body must be application/json');
  return c.req.json<unknown>().catch(() => {
    throw new OAuthError('invalid_request', 'the body is not valid JSON');
  });
}

export const AuditQuerySchema = z.object({
  type: z.string().max(100).optional(),
  user_id: z.string().max(100).optional(),
  client_id: z.string().max(2048).optional(),
  agent: z.string().max(2048).optional(),
  task_id: z.string().max(100).optional(),
  result: z.enum(['allowed', 'denied']).optional(),
  from: z.coerce.number().int().min(0).optional(),
  to: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/** Audit filters from a validated query. */
export function auditFilter(q: z.output<typeof AuditQuerySchema>) {
  return {
    ...(q.type ? { type: q.type } : {}),
    ...(q.user_id ? { userId: q.user_id } : {}),
    ...(q.client_id ? { clientId: q.client_id } : {}),
    ...(q.agent ? { agentId: q.agent } : {}),
    ...(q.task_id ? { taskId: q.task_id } : {}),
    ...(q.result ? { result: q.result } : {}),
    ...(q.from !== undefined ? { from: q.from } : {}),
    ...(q.to !== undefined ? { to: q.to } : {}),
    limit: q.limit,
  };
}
