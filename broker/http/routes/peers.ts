import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { OAuthError } from '../../core/errors.js';
import type { Engine } from '../../engine.js';
import { createPeerRegistry, peerView } from '../../services/peers/peers.js';
import { jsonBody } from '../api.js';
import { parseParams } from '../params.js';
import type { AppEnv } from '../types.js';
import { adminActorId, requireAdmin } from './admin-api.js';

export const RegisterPeerSchema = z
  .object({ card_url: z.string().min(1).max(2048), accept_unsigned: z.boolean().default(false) })
  .strict();
/** A refresh takes no body, or `{ "accept_unsigned": true }` to let a signed peer's card become unsigned. */
export const RefreshPeerSchema = z.object({ accept_unsigned: z.boolean().default(false) }).strict();

/** The admin API for A2A peers (administrators only; unsafe methods carry the CSRF token). */
export function peerRoutes(deps: Pick<Engine, 'db' | 'clients' | 'audit' | 'clock' | 'log' | 'config' | 'metrics'>) {
  const registry = createPeerRegistry(deps);
  const app = new Hono<AppEnv>();
  app.use('/api/admin/peers', requireAdmin());
  app.use('/api/admin/peers/*', requireAdmin());
  const actor = (c: Context<AppEnv>) => ({
    userId: adminActorId(c),
    requestId: c.var.requestId,
  });

  app.get('/api/admin/peers', async (c) => c.json({ peers: (await registry.list()).map(peerView) }));
  app.post('/api/admin/peers', async (c) => {
    const input = parseParams(RegisterPeerSchema, await jsonBody(c));
    const { peer, created } = await registry.register(input.card_url, actor(c), {
      acceptUnsigned: input.accept_unsigned,
    });
    return c.json(peerView(peer), created ? 201 : 200);
  });
  app.get('/api/admin/peers/:id', async (c) => {
    const peer = await registry.get(c.req.param('id'));
    if (!peer) throw new OAuthError('not_found', 'no such peer');
    return c.json(peerView(peer));
  });
  app.post('/api/admin/peers/:id/refresh', async (c) => {
    // No body at all (whatever its content type) is a plain refresh.
    const hasBody = (c.req.header('content-length') ?? '0') !== '0' || c.req.header('transfer-encoding') !== undefined;
    const input = parseParams(RefreshPeerSchema, hasBody ? await jsonBody(c) : {});
    return c.json(
      peerView(await registry.refresh(c.req.param('id'), actor(c), { acceptUnsigned: input.accept_unsigned })),
    );
  });
  return app;
}
