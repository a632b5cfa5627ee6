import { Hono } from 'hono';
import type { Readiness } from '../../services/readiness.js';
import type { AppEnv } from '../types.js';

/**
 * Liveness (`/healthz`: the process answers) and readiness (`/readyz`: it can sign and commit a
 * write; 503 with the reason otherwise).
 */
export function healthRoutes(deps: { ready: () => Promise<Readiness> }) {
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }, 200, { 'Cache-Control': 'no-store' }))
    .get('/readyz', async (c) => {
      const r = await deps.ready().catch((): Readiness => ({ ready: false, reason: 'storage' }));
      return r.ready
        ? c.json({ status: 'ready' }, 200, { 'Cache-Control': 'no-store' })
        : c.json({ status: 'not_ready', reason: r.reason }, 503, { 'Cache-Control': 'no-store' });
    });
}
