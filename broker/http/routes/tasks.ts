import { Hono } from 'hono';
import { z } from 'zod';
import type { ClientAuthenticator } from '../../identity/client-auth.js';
import { type TaskService, taskView } from '../../services/tasks.js';
import { authenticateClient } from '../middleware/client-auth.js';
import { param, parseParams, readForm } from '../params.js';
import { type AppEnv, NO_STORE } from '../types.js';

const EndParams = z.object({
  state: z.enum(['completed', 'canceled', 'failed']).default('completed'),
  reason: param(200).optional(),
});

/**
 * Agents end their tasks here (client-authenticated like the token endpoint). Any agent in the
 * task's actor chain may end it; the whole subtree ends and every token of it stops working.
 */
export function taskRoutes(deps: { auth: ClientAuthenticator; tasks: TaskService }) {
  return new Hono<AppEnv>().post('/tasks/:id/end', async (c) => {
    const form = await readForm(c);
    const { client } = await authenticateClient(c, form, deps.auth);
    const p = parseParams(EndParams, form);
    const task = await deps.tasks.end({ kind: 'agent', client }, c.req.param('id'), p.state, c.var.requestId);
    return c.json(taskView(task), 200, NO_STORE);
  });
}
