import { Hono } from 'hono';
import type { AppDeps } from '../broker/http/app.js';
import type { AppEnv } from '../broker/http/types.js';

/** The signed-in pages: a user's requests, delegations and tasks; an administrator's inventory. */
export function pageRoutes(deps: AppDeps) {
  const app = new Hono<AppEnv>();
  void deps;
  return app;
}
