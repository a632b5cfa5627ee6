import { DPOP, ERRAND_SCOPE, PATHS } from '@errand/protocol';
import { Hono } from 'hono';
import { adminApiResourceMetadataUrl } from '../middleware/admin-token.js';
import type { AppEnv } from '../types.js';
import { openApiDocument } from './openapi-document.js';

/**
 * What an API client reads before it calls the admin API, both public: the OpenAPI document of the
 * admin and user APIs (it describes shapes, never data: the same file is committed as
 * docs/openapi.json, and code generators fetch it before they hold any credential), and the admin
 * API's RFC 9728 Protected Resource Metadata, which its 401 challenges point to.
 */
export function adminDiscoveryRoutes(deps: { issuer: string }) {
  let document: string | null = null;
  const cache = { 'Cache-Control': 'public, max-age=300' };
  return new Hono<AppEnv>()
    .get('/api/openapi.json', (c) => {
      document ??= JSON.stringify(openApiDocument(deps.issuer));
      return c.body(document, 200, { 'Content-Type': 'application/json', ...cache });
    })
    .get(new URL(adminApiResourceMetadataUrl(deps.issuer)).pathname, (c) =>
      c.json(
        {
          resource: `${deps.issuer}${PATHS.adminApi}`,
          authorization_servers: [deps.issuer],
          scopes_supported: [ERRAND_SCOPE.admin],
          bearer_methods_supported: ['header'],
          resource_name: 'Errand admin API',
          dpop_signing_alg_values_supported: [...DPOP.algs],
        },
        200,
        cache,
      ),
    );
}
