import { accessOf, createGuard, type Guard, type GuardOptions, toAuthInfo, type VerifiedAccess } from '@errand/guard';
import { type GuardMcpEnv, guardMcpMiddleware, protectedResourceMetadataRoute } from '@errand/guard/hono';
import { createMcpHonoApp } from '@modelcontextprotocol/hono';
import { createMcpHandler, type McpRequestContext, McpServer } from '@modelcontextprotocol/server';
import type { Hono } from 'hono';
import { z } from 'zod';

/**
 * An example MCP tool server protected by Errand's guard: a small notebook per user. Each tool needs
 * its own scope, and a token limited to named tools (RFC 9396 `mcp_tool`) may call only those; a
 * token for another audience, an ended task, a missing scope or a tool not granted is refused
 * before the tool runs. Used by the tests, the demo (`npm run demo`) and as a template.
 */

/** The scope each tool needs (every tool the server offers). */
export const NOTES_TOOL_SCOPES = {
  list_notes: 'notes:read',
  read_note: 'notes:read',
  write_note: 'notes:write',
  delete_note: 'notes:delete',
} as const;
export const NOTES_SCOPES = ['notes:read', 'notes:write', 'notes:delete'];

interface Note {
  id: string;
  title: string;
  body: string;
  author: string;
}

/** Notes per user (the token's `sub`): an agent only ever sees the notebook of the user it acts for. */
export class Notebook {
  private readonly byUser = new Map<string, Note[]>();
  private next = 1;

  list(user: string): Note[] {
    return this.byUser.get(user) ?? [];
  }
  add(user: string, title: string, body: string, author: string): Note {
    const note = { id: `n${this.next++}`, title, body, author };
    this.byUser.set(user, [...this.list(user), note]);
    return note;
  }
  remove(user: string, id: string): boolean {
    const before = this.list(user);
    this.byUser.set(
      user,
      before.filter((n) => n.id !== id),
    );
    return before.length !== this.list(user).length;
  }
}

function result(value: Record<string, unknown>) {
  return { content: [{ type: 'text' as const, text: JSON.stringify(value) }], structuredContent: value };
}

/**
 * A tool-level "no" (MCP Tools §Error Handling): the reason as text, and no `structuredContent`,
 * which would have to match the output schema of a success (clients such as SDK 1.x validate it).
 */
function refusal(reason: string) {
  return { content: [{ type: 'text' as const, text: reason }], isError: true };
}

function buildServer(notebook: Notebook, access: VerifiedAccess): McpServer {
  const server = new McpServer({ name: 'errand-example-notes', version: '1.0.0' }, { capabilities: { tools: {} } });
  const user = access.sub;
  const author = access.clientId;
  const NoteSchema = z.object({ id: z.string(), title: z.string(), body: z.string(), author: z.string() });
  server.registerTool(
    'list_notes',
    {
      description: 'List your notes (needs notes:read).',
      inputSchema: z.object({}),
      outputSchema: z.object({ notes: z.array(NoteSchema) }),
    },
    async () => result({ notes: notebook.list(user) }),
  );
  server.registerTool(
    'read_note',
    {
      description: 'Read one note (needs notes:read).',
      inputSchema: z.object({ id: z.string() }),
      outputSchema: z.object({ note: NoteSchema.nullable() }),
    },
    async ({ id }) => {
      const note = notebook.list(user).find((n) => n.id === id) ?? null;
      return note ? result({ note }) : refusal(`no note ${id}`);
    },
  );
  server.registerTool(
    'write_note',
    {
      description: 'Write a note (needs notes:write).',
      inputSchema: z.object({ title: z.string().min(1).max(200), body: z.string().max(10_000) }),
      outputSchema: z.object({ note: NoteSchema }),
    },
    async ({ title, body }) => result({ note: notebook.add(user, title, body, author) }),
  );
  server.registerTool(
    'delete_note',
    {
      description: 'Delete a note (needs notes:delete).',
      inputSchema: z.object({ id: z.string() }),
      outputSchema: z.object({ deleted: z.boolean() }),
    },
    async ({ id }) => result({ deleted: notebook.remove(user, id) }),
  );
  return server;
}

export interface NotesServer {
  app: Hono;
  guard: Guard;
  notebook: Notebook;
}

/** Builds the example server for `resource` (its own URL, e.g. http://127.0.0.1:8790/mcp). */
export function createNotesServer(options: Omit<GuardOptions, 'scopesSupported' | 'resourceName'>): NotesServer {
  const guard = createGuard({ ...options, scopesSupported: NOTES_SCOPES, resourceName: 'Example notes' });
  const notebook = new Notebook();
  const handler = createMcpHandler((ctx: McpRequestContext) => {
    const access = accessOf(ctx.authInfo);
    if (!access) throw new Error('unauthenticated request reached the MCP handler');
    return buildServer(notebook, access);
  });
  const host = new URL(options.resource).hostname;
  const app = createMcpHonoApp({ host }) as unknown as Hono<GuardMcpEnv>;
  app.route('/', protectedResourceMetadataRoute(guard));
  const path = new URL(options.resource).pathname || '/';
  // Every tools/call in the body (or batch) is checked before any of it runs: its scope, and the
  // token's tool grant. Clients address the server by its resource URL (the DPoP htu).
  const guarded = guardMcpMiddleware(guard, { toolScopes: NOTES_TOOL_SCOPES, url: options.resource });
  app.all(path, guarded, (c) => {
    const authInfo = toAuthInfo(c.var.auth, c.req.header('authorization') ?? '', guard.resource);
    return handler.fetch(c.req.raw, { authInfo, parsedBody: c.var.parsedBody });
  });
  return { app: app as unknown as Hono, guard, notebook };
}
