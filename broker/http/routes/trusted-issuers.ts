import { Hono } from 'hono';
import { OAuthError } from '../../core/errors.js';
import {
  CreateTrustedIssuerSchema,
  createTrustedIssuer,
  deleteTrustedIssuer,
  type TrustedIssuerDeps,
  trustedIssuerView,
  UpdateTrustedIssuerSchema,
  updateTrustedIssuer,
} from '../../services/trusted-issuers.js';
import { jsonBody } from '../api.js';
import { parseParams } from '../params.js';
import type { AppEnv } from '../types.js';
import { requireAdmin } from './admin-api.js';

const PATH = '/api/admin/trusted-issuers';

/**
 * Admin API for trusted workload issuers (OIDC, SPIFFE trust domains, Kubernetes, CI) and their
 * rules. Same rules as the rest of the admin API: administrators only, CSRF on unsafe methods.
 */
export function trustedIssuerRoutes(deps: TrustedIssuerDeps) {
  const app = new Hono<AppEnv>();
  app.use(PATH, requireAdmin());
  app.use(`${PATH}/*`, requireAdmin());

  app.get(PATH, async (c) => c.json({ trusted_issuers: (await deps.trustedIssuers.list()).map(trustedIssuerView) }));
  app.post(PATH, async (c) => {
    const input = parseParams(CreateTrustedIssuerSchema, await jsonBody(c));
    const created = await createTrustedIssuer(deps, input, c.get('user')!.id, c.var.requestId, c.var.address);
    return c.json(trustedIssuerView(created), 201);
  });
  app.get(`${PATH}/:id`, async (c) => {
    const found = await deps.trustedIssuers.get(c.req.param('id'));
    if (!found) throw new OAuthError('not_found', 'no such trusted issuer');
    return c.json(trustedIssuerView(found));
  });
  app.patch(`${PATH}/:id`, async (c) => {
    const patch = parseParams(UpdateTrustedIssuerSchema, await jsonBody(c));
    const updated = await updateTrustedIssuer(
      deps,
      c.req.param('id'),
      patch,
      c.get('user')!.id,
      c.var.requestId,
      c.var.address,
    );
    return c.json(trustedIssuerView(updated));
  });
  app.delete(`${PATH}/:id`, async (c) => {
    await deleteTrustedIssuer(deps, c.req.param('id'), c.get('user')!.id, c.var.requestId, c.var.address);
    return c.body(null, 204);
  });
  return app;
}
