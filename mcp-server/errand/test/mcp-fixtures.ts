import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
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
import { REFUSAL_META_KEY } from '../results.js';

// ajv-formats is CommonJS: its default export arrives as the module object under NodeNext.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

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

/** The refusal an `isError` result carries as data (`_meta`), or undefined. */
export function refusalOf(result: unknown): Record<string, unknown> | undefined {
  const meta = (result as { _meta?: Record<string, unknown> })._meta;
  return meta?.[REFUSAL_META_KEY] as Record<string, unknown> | undefined;
}

/** The text blocks of a tool result, joined. */
export function resultText(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content
    .filter((c) => c.type === 'text')
    .map((c) => c.text ?? '')
    .join('\n');
}

/**
 * Compiles a tool's JSON Schema with Ajv, unmodified and strict, for the draft its `$schema`
 * declares (MCP: 2020-12 when none is declared), with the standard formats; throws when it cannot.
 * Ajv compiles patterns with the `u` flag, which many validators lack, so Unicode property escapes
 * (`\p{…}`) are refused here on their own.
 */
export function compileJsonSchema(schema: Record<string, unknown>): ValidateFunction {
  if (JSON.stringify(schema).includes('\\\\p{')) {
    throw new Error(
      'the schema uses a Unicode property escape (\\p{…}), which many JSON Schema validators cannot compile',
    );
  }
  const draft = typeof schema.$schema === 'string' ? schema.$schema : 'https://json-schema.org/draft/2020-12/schema';
  const ajv = draft.includes('draft-07') ? new Ajv({ strict: true }) : new Ajv2020({ strict: true });
  addFormats(ajv);
  return ajv.compile(schema);
}
