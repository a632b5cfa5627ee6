import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { approveInBrowser, createUser, startBroker, type TestBroker } from '../../../broker/test/fixtures.js';
import { structured } from './mcp-fixtures.js';

/**
 * A 2025-era MCP client (`@modelcontextprotocol/sdk` 1.x) that knows nothing but the endpoint URL:
 * the SDK's own OAuth support discovers Errand, registers dynamically (RFC 7591), and the user signs
 * in and consents on Errand's real pages.
 */

const REDIRECT = 'http://127.0.0.1:53682/callback';

type User = Awaited<ReturnType<typeof createUser>>;

/** In-memory OAuthClientProvider whose "browser" is Errand's sign-in and consent pages. */
class BrowserDrivenProvider implements OAuthClientProvider {
  info: OAuthClientInformationMixed | undefined;
  saved: OAuthTokens | undefined;
  verifier = '';
  authorizationUrl: URL | undefined;
  code: string | undefined;

  constructor(
    private readonly tb: TestBroker,
    private readonly user: User,
  ) {}

  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'Legacy MCP test client',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.info = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens) {
    this.saved = tokens;
  }
  async redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
    const { callback } = await approveInBrowser(this.tb, this.user, url);
    this.code = callback.searchParams.get('code') ?? undefined;
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

let tb: TestBroker;
let user: User;
beforeAll(async () => {
  tb = await startBroker();
  user = await createUser(tb);
});
afterAll(() => tb.close());

test('a legacy client goes from nothing to listTools and whoami with discovery, DCR and consent', async () => {
  const mcp = `${tb.url}/mcp`;
  const provider = new BrowserDrivenProvider(tb, user);
  const requests: { method: string; url: string; body: string }[] = [];
  const recordingFetch = async (input: string | URL, init?: RequestInit) => {
    requests.push({
      method: init?.method ?? 'GET',
      url: String(input),
      body:
        typeof init?.body === 'string' ? init.body : init?.body instanceof URLSearchParams ? init.body.toString() : '',
    });
    return fetch(input, init);
  };

  // First connection: 401 → discovery → registration → authorization (Errand's pages) → UnauthorizedError.
  const first = new StreamableHTTPClientTransport(new URL(mcp), { authProvider: provider, fetch: recordingFetch });
  await expect(new Client({ name: 'legacy-test', version: '1.0.0' }).connect(first)).rejects.toThrow(UnauthorizedError);
  expect(provider.code).toBeDefined();
  await first.finishAuth(provider.code!);

  const urls = requests.map((r) => `${r.method} ${r.url}`);
  expect(urls).toContain(`GET ${tb.url}/.well-known/oauth-protected-resource/mcp`);
  expect(urls).toContain(`GET ${tb.url}/.well-known/oauth-authorization-server`);
  expect(urls).toContain(`POST ${tb.url}/register`);
  expect(provider.info?.client_id).toMatch(/^cli_/);
  expect(provider.authorizationUrl?.searchParams.get('resource')).toBe(mcp);
  expect(provider.authorizationUrl?.searchParams.get('code_challenge_method')).toBe('S256');
  expect(provider.authorizationUrl?.searchParams.get('scope')).toBe('errand:delegate errand:tasks');
  const tokenRequest = requests.find((r) => r.url === `${tb.url}/token`);
  expect(new URLSearchParams(tokenRequest?.body).get('resource')).toBe(mcp);
  expect(provider.saved?.access_token).toBeDefined();

  // Second connection with the token.
  const transport = new StreamableHTTPClientTransport(new URL(mcp), { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: 'legacy-test', version: '1.0.0' });
  await client.connect(transport);
  expect(transport.protocolVersion).toBe('2025-11-25');

  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name)).toContain('whoami');
  const who = structured(await client.callTool({ name: 'whoami', arguments: {} }));
  expect(who).toMatchObject({
    client_id: provider.info?.client_id,
    client_name: 'Legacy MCP test client',
    kind: 'mcp_client',
    user: { user_id: user.id, username: user.username },
    scopes: ['errand:delegate', 'errand:tasks'],
    assurance_level: null,
  });
  await client.close();
});
