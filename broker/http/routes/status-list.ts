import { PATHS } from '@errand/protocol';
import { Hono } from 'hono';
import { OAuthError } from '../../core/errors.js';
import type { StatusLists } from '../../services/status-lists.js';
import type { AppEnv } from '../types.js';

/** Status List Tokens (draft-ietf-oauth-status-list §8): `application/statuslist+jwt`. */
export function statusListRoutes(deps: { lists: StatusLists; ttl: number }) {
  return new Hono<AppEnv>().get(`${PATHS.statusLists}/:list`, async (c) => {
    const raw = c.req.param('list');
    if (!/^\d{1,6}$/.test(raw)) throw new OAuthError('not_found', 'no such status list');
    if (c.req.query('time') !== undefined) {
      throw new OAuthError('invalid_request', 'historical status lookups are not supported', { status: 501 });
    }
    const token = await deps.lists.token(Number(raw));
    if (!token) throw new OAuthError('not_found', 'no such status list');
    // Relying parties may cache for `ttl` seconds: that bounds how late they learn a revocation.
    return c.body(token, 200, {
      'Content-Type': 'application/statuslist+jwt',
      'Cache-Control': `public, max-age=${deps.ttl}`,
      'Access-Control-Allow-Origin': '*',
    });
  });
}
