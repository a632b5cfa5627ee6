import { Hono } from 'hono';
import { clientView } from '../../services/admin.js';
import { type AdmissionDeps, admitClient } from '../../services/admission.js';
import { findingView, listFindings } from '../../services/findings.js';
import type { AppEnv } from '../types.js';
import { adminActorId, requireAdmin } from './admin-api.js';

/**
 * Admin API for the intake of new registrations (README "Quarantine of new registrations and
 * findings"): admitting a quarantined client, and the findings list.
 */
export function intakeApiRoutes(deps: AdmissionDeps) {
  const app = new Hono<AppEnv>();
  app.use('/api/admin/findings', requireAdmin());
  app.use('/api/admin/clients/:id/admit', requireAdmin());

  app.post('/api/admin/clients/:id/admit', async (c) => {
    const client = await admitClient(deps, c.req.param('id'), {
      adminId: adminActorId(c),
      requestId: c.var.requestId,
      address: c.var.address,
    });
    return c.json(clientView(client));
  });
  app.get('/api/admin/findings', async (c) => c.json({ findings: (await listFindings(deps)).map(findingView) }));
  return app;
}
