import { Hono } from 'hono';
import type { AppEnv } from '../types.js';
import { openApiDocument } from './openapi-document.js';

/**
 * The OpenAPI document of the admin and user APIs, public: it describes shapes, never data (the
 * same file is committed as docs/openapi.json), and code generators and API consoles fetch it before
 * they hold any credential. Every endpoint it describes still requires its own authentication.
 */
export function openApiRoutes(deps: { issuer: string }) {
  let document: string | null = null;
  return new Hono<AppEnv>().get('/api/openapi.json', (c) => {
    document ??= JSON.stringify(openApiDocument(deps.issuer));
    return c.body(document, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'public, max-age=300' });
  });
}
