import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import * as oauth from 'oauth4webapi';
import { agentClient } from '../../../broker/test/delegation-fixtures.js';
import {
  addAgent,
  addResource,
  adminApi,
  createUser,
  discover,
  insecure,
  type TestAgent,
  type TestBroker,
} from '../../../broker/test/fixtures.js';

export const NOTES = 'https://notes.example.test/mcp';
export const ERRAND_SCOPES = 'errand:delegate errand:tasks';

/** A broker with a notes resource, a user, and two agents registered for Errand's MCP scopes and notes. */
export async function mcpWorld(tb: TestBroker) {
  const api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  const scope = ['errand:delegate', 'errand:tasks', 'notes:read', 'notes:write'];
  // Agents registered as administrators register them: client credentials, token exchange and CIBA.
  const agent = await addAgent(api, { name: 'planner agent', scope, grant_types: undefined });
  const subAgent = await addAgent(api, { name: 'helper agent', scope, grant_types: undefined });
  const user = await createUser(tb);
  const as = await discover(tb);
  return { api, agent, subAgent, user, as };
}

/** An access token for `resource` by client_credentials (the agent acting as itself). */
export async function agentToken(
  tb: TestBroker,
  as: oauth.AuthorizationServer,
  agent: TestAgent,
  resource: string,
  scope: string,
): Promise<string> {
  const [client, auth] = agentClient(tb, agent);
  const res = await oauth.clientCredentialsGrantRequest(
    as,
    client,
    auth,
    new URLSearchParams({ resource, scope }),
    insecure,
  );
  return (await oauth.processClientCredentialsResponse(as, client, res)).access_token;
}

/** A 2026-07-28 client (pinned) presenting a fixed bearer token. */
export async function modernClient(
  tb: TestBroker,
  token: string,
  opts: { elicitation?: (url: string) => 'accept' | 'decline' } = {},
): Promise<Client> {
  const client = new Client(
    { name: 'errand-test-modern', version: '1.0.0' },
    {
      versionNegotiation: { mode: { pin: '2026-07-28' } },
      capabilities: opts.elicitation ? { elicitation: { url: {} } } : {},
    },
  );
  const onElicit = opts.elicitation;
  if (onElicit) {
    client.setRequestHandler('elicitation/create', async (request) => {
      const params = request.params as { mode?: string; url?: string };
      return { action: onElicit(params.mode === 'url' ? (params.url ?? '') : '') };
    });
  }
  const transport = new StreamableHTTPClientTransport(new URL(`${tb.url}/mcp`), {
    authProvider: { token: async () => token },
  });
  await client.connect(transport);
  return client;
}

/** A 2025-11-25 client (`@modelcontextprotocol/sdk` 1.x) presenting a fixed bearer token. */
export async function legacyClient(
  tb: TestBroker,
  token: string,
  opts: { urlElicitation?: boolean } = {},
): Promise<{ client: LegacyClient; transport: LegacyTransport }> {
  const client = new LegacyClient(
    { name: 'errand-test-legacy', version: '1.0.0' },
    { capabilities: opts.urlElicitation ? { elicitation: { url: {} } } : {} },
  );
  const transport = new LegacyTransport(new URL(`${tb.url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  return { client, transport };
}

/** The structured content of a tool result, typed loosely for assertions. */
export function structured(result: unknown): Record<string, unknown> {
  return ((result as { structuredContent?: Record<string, unknown> }).structuredContent ?? {}) as Record<
    string,
    unknown
  >;
}

/** A raw JSON-RPC POST to the endpoint (for protection checks below the client libraries). */
export async function rawMcp(tb: TestBroker, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${tb.url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...headers,
    },
    body: JSON.stringify(body),
  });
}
