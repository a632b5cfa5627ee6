import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
  UnauthorizedError as ModernUnauthorizedError,
} from '@modelcontextprotocol/client';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createUser, startBroker, type TestBroker } from '../broker/test/fixtures.js';
import { structured } from '../mcp-server/errand/test/mcp-fixtures.js';
import { type CallbackListener, startCallbackListener } from './fixtures/callback-listener.js';
import { launchChromium } from './fixtures/chromium.js';
import { BrowserProvider, type RunningNotes, startNotesServer } from './fixtures/mcp-oauth.js';
import { Person } from './fixtures/person.js';

/**
 * The browser authorization-code flow the MCP authorization spec describes, with the official MCP
 * SDK clients unmodified: 1.x (`@modelcontextprotocol/sdk`) and 2.x (`@modelcontextprotocol/client`)
 * discover Errand from a 401, register by DCR and hand the authorization URL to
 * `redirectToAuthorization`, which opens it in Chromium. A person signs in and clicks Allow or Deny
 * on the real consent page, under its real Content-Security-Policy, and the browser carries the
 * answer to a real listener on the client's loopback redirect URI. Nothing intercepts requests.
 */

type User = Awaited<ReturnType<typeof createUser>>;

let tb: TestBroker;
let browser: Browser;
let notes: RunningNotes;
let user: User;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  tb = await startBroker();
  browser = await launchChromium();
  notes = await startNotesServer(tb);
  user = await createUser(tb);
});
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});
afterAll(async () => {
  await browser?.close();
  await notes?.close();
  await tb?.close();
});

async function setUp(host: '127.0.0.1' | '::1' = '127.0.0.1') {
  const listener = await startCallbackListener(host);
  const context: BrowserContext = await browser.newContext();
  open.push(listener, context);
  const person = await Person.open(context, user);
  return { listener, person };
}

function provider(
  person: Person,
  listener: CallbackListener,
  clientName: string,
  decision: 'Allow' | 'Deny',
  shot: string,
): BrowserProvider {
  return new BrowserProvider({
    person,
    redirectUri: listener.redirectUri,
    clientName,
    decision,
    receive: () => listener.next(15_000, () => person.explain()),
    shot,
  });
}

const audit = async (type: string, clientId: string | undefined) =>
  (await tb.broker.deps.audit.query({ type, limit: 100 })).filter((e) => e.clientId === clientId);

/** SDK 1.x: first connect → 401 → discovery, DCR, browser → UnauthorizedError; finishAuth; connect. */
async function connectLegacy(url: string, p: BrowserProvider): Promise<Client> {
  const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: p });
  await expect(new Client({ name: 'consent-e2e', version: '1.0.0' }).connect(first)).rejects.toThrow(UnauthorizedError);
  const code = p.callback?.searchParams.get('code');
  expect(code, `callback without a code: ${p.callback}`).toBeTruthy();
  await first.finishAuth(code!);
  const client = new Client({ name: 'consent-e2e', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: p }));
  open.push(client);
  return client;
}

/** SDK 2.x: the same dance; finishAuth takes the callback's parameters and checks `iss` (RFC 9207). */
async function connectModern(url: string, p: BrowserProvider): Promise<ModernClient> {
  const first = new ModernTransport(new URL(url), { authProvider: p });
  await expect(new ModernClient({ name: 'consent-e2e', version: '2.0.0' }).connect(first)).rejects.toBeInstanceOf(
    ModernUnauthorizedError,
  );
  expect(p.callback, 'no callback').toBeDefined();
  await first.finishAuth(p.callback!.searchParams);
  const client = new ModernClient({ name: 'consent-e2e', version: '2.0.0' });
  await client.connect(new ModernTransport(new URL(url), { authProvider: p }));
  open.push(client);
  return client;
}

describe('Allow on the consent page in Chromium reaches the MCP client', { timeout: 60_000 }, () => {
  test('SDK 1.x against Errand’s /mcp: code at the loopback listener, tokens, whoami', async () => {
    const { listener, person } = await setUp();
    const p = provider(person, listener, 'SDK 1.x desktop client', 'Allow', 'mcp-v1-errand');
    const first = new StreamableHTTPClientTransport(new URL(`${tb.url}/mcp`), { authProvider: p });
    await expect(new Client({ name: 'consent-e2e', version: '1.0.0' }).connect(first)).rejects.toThrow(
      UnauthorizedError,
    );
    const callback = p.callback!;
    expect(`${callback.origin}${callback.pathname}`).toBe(listener.redirectUri);
    expect(callback.searchParams.get('state')).toBe(p.sentState);
    expect(callback.searchParams.get('iss')).toBe(tb.url);
    expect(callback.searchParams.get('code')).toMatch(/^ec_/);

    // The person approved; nothing says the client has the code until it redeems it.
    const clientId = p.info?.client_id;
    expect(await audit('consent.approved', clientId)).toHaveLength(1);
    expect(await audit('consent.granted', clientId)).toEqual([]);
    expect(await audit('authorization_code.redeemed', clientId)).toEqual([]);

    await first.finishAuth(callback.searchParams.get('code')!);
    expect(await audit('authorization_code.redeemed', clientId)).toMatchObject([
      { userId: user.id, result: 'allowed', audience: `${tb.url}/mcp` },
    ]);

    const client = new Client({ name: 'consent-e2e', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${tb.url}/mcp`), { authProvider: p }));
    open.push(client);
    const who = structured(await client.callTool({ name: 'whoami', arguments: {} }));
    expect(who).toMatchObject({ client_id: clientId, user: { user_id: user.id, username: user.username } });
  });

  test('SDK 1.x against the example guard-protected server: write and list notes', async () => {
    const { listener, person } = await setUp();
    const p = provider(person, listener, 'SDK 1.x notes client', 'Allow', 'mcp-v1-notes');
    const client = await connectLegacy(notes.url, p);
    expect(p.authorizationUrl?.searchParams.get('resource')).toBe(notes.url);
    const written = structured(await client.callTool({ name: 'write_note', arguments: { title: 't', body: 'b' } }));
    expect(written.note).toMatchObject({ title: 't', author: p.info?.client_id });
    expect(structured(await client.callTool({ name: 'list_notes', arguments: {} })).notes).toHaveLength(1);
  });

  test('SDK 2.x against Errand’s /mcp: code at the loopback listener, iss checked, whoami', async () => {
    const { listener, person } = await setUp();
    const p = provider(person, listener, 'SDK 2.x desktop client', 'Allow', 'mcp-v2-errand');
    const client = await connectModern(`${tb.url}/mcp`, p);
    expect(p.callback?.searchParams.get('state')).toBe(p.sentState);
    const who = structured(await client.callTool({ name: 'whoami', arguments: {} }));
    expect(who).toMatchObject({ client_id: p.info?.client_id, user: { user_id: user.id } });
  });

  test('SDK 2.x against the example guard-protected server: write and read a note', async () => {
    const { listener, person } = await setUp();
    const p = provider(person, listener, 'SDK 2.x notes client', 'Allow', 'mcp-v2-notes');
    const client = await connectModern(notes.url, p);
    const written = structured(await client.callTool({ name: 'write_note', arguments: { title: 'v2', body: 'x' } }));
    const id = (written.note as { id: string }).id;
    expect(structured(await client.callTool({ name: 'read_note', arguments: { id } })).note).toMatchObject({
      title: 'v2',
    });
  });

  test('a loopback redirect URI on [::1], which no CSP source can name, is reached through a hand-on page', async (ctx) => {
    const probe = await startCallbackListener('::1').catch(() => null);
    // A machine without IPv6 loopback cannot host this client at all.
    if (!probe) return ctx.skip('no IPv6 loopback (::1) on this machine');
    await probe.close();
    const { listener, person } = await setUp('::1');
    expect(listener.redirectUri.startsWith('http://[::1]:')).toBe(true);
    const p = provider(person, listener, 'IPv6 loopback client', 'Allow', 'mcp-v1-ipv6');
    const client = await connectLegacy(`${tb.url}/mcp`, p);
    expect(p.callback?.searchParams.get('iss')).toBe(tb.url);
    expect(structured(await client.callTool({ name: 'whoami', arguments: {} }))).toMatchObject({
      client_id: p.info?.client_id,
    });
  });

  test('a private-use scheme redirect URI (RFC 8252 §7.1) is let through by the page’s CSP', async () => {
    // Chromium cannot hand com.example.app: to an app here, so the client reads the code from the
    // redirect the browser was given (observed, not intercepted); the check is that CSP let it go.
    const context = await browser.newContext();
    open.push(context);
    const person = await Person.open(context, user);
    const redirectUri = 'com.example.consent-e2e:/oauth/callback';
    const p = new BrowserProvider({
      person,
      redirectUri,
      clientName: 'Native app with its own scheme',
      decision: 'Allow',
      shot: 'mcp-v1-private-scheme',
      receive: () =>
        new Promise<URL>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`no redirect to ${redirectUri}. ${person.explain()}`)),
            15_000,
          );
          person.page.on('response', (res) => {
            const location = res.headers().location;
            if (res.request().method() === 'POST' && location?.startsWith(redirectUri)) {
              clearTimeout(timer);
              resolve(new URL(location));
            }
          });
        }),
    });
    const client = await connectLegacy(`${tb.url}/mcp`, p);
    expect(person.console.filter((m) => m.includes('Content Security Policy'))).toEqual([]);
    expect(structured(await client.callTool({ name: 'whoami', arguments: {} }))).toMatchObject({
      client_id: p.info?.client_id,
    });
  });
});

describe('Deny on the consent page in Chromium reaches the MCP client', { timeout: 60_000 }, () => {
  test('SDK 1.x: the callback brings error=access_denied with the client’s state and iss', async () => {
    const { listener, person } = await setUp();
    const p = provider(person, listener, 'SDK 1.x denied client', 'Deny', 'mcp-v1-deny');
    const first = new StreamableHTTPClientTransport(new URL(`${tb.url}/mcp`), { authProvider: p });
    await expect(new Client({ name: 'consent-e2e', version: '1.0.0' }).connect(first)).rejects.toThrow(
      UnauthorizedError,
    );
    const callback = p.callback!;
    expect(Object.fromEntries(callback.searchParams)).toMatchObject({
      error: 'access_denied',
      state: p.sentState,
      iss: tb.url,
    });
    expect(callback.searchParams.has('code')).toBe(false);
    expect(await audit('consent.denied', p.info?.client_id)).toMatchObject([{ result: 'denied', userId: user.id }]);
  });

  test('SDK 2.x: finishAuth with the denied callback refuses with access_denied', async () => {
    const { listener, person } = await setUp();
    const p = provider(person, listener, 'SDK 2.x denied client', 'Deny', 'mcp-v2-deny');
    const first = new ModernTransport(new URL(`${tb.url}/mcp`), { authProvider: p });
    await expect(new ModernClient({ name: 'consent-e2e', version: '2.0.0' }).connect(first)).rejects.toBeInstanceOf(
      ModernUnauthorizedError,
    );
    expect(p.callback?.searchParams.get('error')).toBe('access_denied');
    expect(p.callback?.searchParams.get('state')).toBe(p.sentState);
    await expect(first.finishAuth(p.callback!.searchParams)).rejects.toThrow(/access_denied|denied/);
    expect(p.saved).toBeUndefined();
  });
});
