import type { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { success } from '../results.js';
import type { ToolEnv } from '../tool-env.js';

export const WhoamiOutputSchema = z.object({
  client_id: z.string(),
  client_name: z.string(),
  kind: z.enum(['agent', 'mcp_client', 'resource_server', 'admin_service']),
  user: z.object({ user_id: z.string(), username: z.string() }).nullable(),
  scopes: z.array(z.string()),
  assurance_level: z.enum(['NHI-AAL1', 'NHI-AAL2', 'NHI-AAL3']).nullable(),
  token_expires_at: z.number().int(),
});

/** `whoami`: the calling client, the user the token speaks for (if any), and what the token allows. */
export function registerWhoami(server: McpServer, env: ToolEnv): void {
  server.registerTool(
    'whoami',
    {
      title: 'Who am I',
      description:
        'Describes the caller as Errand sees it: the client (agent) id, name and kind, the user the access token ' +
        'speaks for (if any), the granted scopes and the assurance level the client authenticated at.',
      inputSchema: z.strictObject({}),
      outputSchema: WhoamiOutputSchema,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async () => {
      const { client, user, scopes, expiresAt, assurance } = env.caller;
      return success({
        client_id: client.id,
        client_name: client.name,
        kind: client.kind,
        user: user ? { user_id: user.id, username: user.username } : null,
        scopes,
        assurance_level: assurance,
        token_expires_at: expiresAt,
      } satisfies z.infer<typeof WhoamiOutputSchema>);
    },
  );
}
