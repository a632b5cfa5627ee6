import { Hono } from 'hono';
import type { AppEnv } from '../types.js';

/** Liveness (`/healthz`: the process answers) and readiness (`/readyz`: database and keys usable). */
export function healthRoutes(deps: { ready: () => Promise<boolean> }) {
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }, 200, { 'Cache-Control': 'no-store' }))
    .get('/readyz', async (c) => {
      const ok = await deps.ready().catch(() => false);
      return c.json({ status: ok ? 'ready' : 'not_ready' }, ok ? 200 : 503, { 'Cache-Control': 'no-store' });
    });
}
