import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Client,
  type OAuthClientProvider,
  type OAuthDiscoveryState,
  type StoredOAuthClientInformation,
  type StoredOAuthTokens,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { approveInBrowser, createUser, startBroker, type TestBroker } from '../../../broker/test/fixtures.js';
import { structured } from './mcp-fixtures.js';

/**
 * A 2026-07-28 MCP client (`@modelcontextprotocol/client` 2.x, pinned) whose client_id is the URL of
 * its Client ID Metadata Document, served by a local http server (Errand accepts loopback metadata
 * URLs only with ERRAND_FETCH_ALLOW_PRIVATE). The SDK only picks CIMD itself for https URLs, so the
 * provider reports the document URL as its (already known) client id.
 */

const REDIRECT = 'http://127.0.0.1:53683/callback';

type User = Awaited<ReturnType<typeof createUser>>;

class MetadataDocumentProvider implements OAuthClientProvider {
  info: StoredOAuthClientInformation;
  saved: StoredOAuthTokens | undefined;
  discovery: OAuthDiscoveryState | undefined;
  verifier = '';
  authorizationUrl: URL | undefined;
  callback: URL | undefined;

  constructor(
    private readonly tb: TestBroker,
    private readonly user: User,
    clientId: string,
  ) {
    this.info = { client_id: clientId, issuer: tb.url };
  }

  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: 'Modern MCP test client',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info: StoredOAuthClientInformation) {
    this.info = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: StoredOAuthTokens) {
    this.saved = tokens;
  }
  saveDiscoveryState(state: OAuthDiscoveryState) {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
  async redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
    const { callback, consentPage } = await approveInBrowser(this.tb, this.user, url);
    expect(consentPage).toContain('Modern MCP test client');
    this.callback = callback;
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
let docs: Server;
let docsOrigin: string;
let documentFetches = 0;

beforeAll(async () => {
  tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true' });
  user = await createUser(tb);
  docs = createServer((req, res) => {
    const clientId = `${docsOrigin}/client.json`;
    if (req.url !== '/client.json') {
      res.writeHead(404).end();
      return;
    }
    documentFetches += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        client_id: clientId,
        client_name: 'Modern MCP test client',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    );
  });
  await new Promise<void>((resolve) => docs.listen(0, '127.0.0.1', resolve));
  docsOrigin = `http://127.0.0.1:${(docs.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await tb.close();
  await new Promise<void>((resolve) => docs.close(() => resolve()));
});

test('a modern client with a metadata document goes from nothing to listTools and whoami', async () => {
  const mcp = `${tb.url}/mcp`;
  const clientId = `${docsOrigin}/client.json`;
  const provider = new MetadataDocumentProvider(tb, user, clientId);
  const requests: string[] = [];
  const recordingFetch = async (input: string | URL, init?: RequestInit) => {
    requests.push(`${init?.method ?? 'GET'} ${String(input)}`);
    return fetch(input, init);
  };
  const newClient = () =>
    new Client({ name: 'modern-test', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });

  const first = new StreamableHTTPClientTransport(new URL(mcp), { authProvider: provider, fetch: recordingFetch });
  await expect(newClient().connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
  const callback = provider.callback;
  expect(callback).toBeDefined();
  await first.finishAuth(callback!.searchParams.get('code')!, callback!.searchParams.get('iss') ?? undefined);

  // Discovery through the PRM and RFC 8414 metadata; no registration: the document is the registration.
  expect(requests).toContain(`GET ${tb.url}/.well-known/oauth-protected-resource/mcp`);
  expect(requests).toContain(`GET ${tb.url}/.well-known/oauth-authorization-server`);
  expect(requests.some((r) => r.endsWith('/register'))).toBe(false);
  expect(provider.discovery?.authorizationServerMetadata?.client_id_metadata_document_supported).toBe(true);
  expect(documentFetches).toBeGreaterThanOrEqual(1);
  expect(provider.authorizationUrl?.searchParams.get('client_id')).toBe(clientId);
  expect(provider.authorizationUrl?.searchParams.get('resource')).toBe(mcp);
  expect(callback!.searchParams.get('iss')).toBe(tb.url);
  expect(provider.saved?.access_token).toBeDefined();

  const transport = new StreamableHTTPClientTransport(new URL(mcp), { authProvider: provider, fetch: recordingFetch });
  const client = newClient();
  await client.connect(transport);
  expect(client.getNegotiatedProtocolVersion()).toBe('2026-07-28');

  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name)).toContain('whoami');
  const who = structured(await client.callTool({ name: 'whoami', arguments: {} }));
  expect(who).toMatchObject({
    client_id: clientId,
    client_name: 'Modern MCP test client',
    kind: 'mcp_client',
    user: { user_id: user.id, username: user.username },
    scopes: ['errand:delegate', 'errand:tasks'],
  });
  await client.close();
});
