import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentToken, modernClient, refusalOf, resultText } from '../../mcp-server/errand/test/mcp-fixtures.js';
import { savePolicyDraft, setPolicyStatus } from '../services/policy/policy-admin.js';
import { DEFAULT_POLICIES } from '../services/policy/schema.js';
import {
  agentClient,
  delegateViaCiba,
  exchange,
  exchangeRaw,
  TT_ACCESS,
  TT_JWT,
  userApi,
} from './delegation-fixtures.js';
import {
  addAgent,
  addResource,
  adminApi,
  Browser,
  createUser,
  discover,
  hiddenInput,
  insecure,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

/**
 * Quarantine of new registrations (README "Quarantine of new registrations and findings"), through
 * the real HTTP surface: an agent registered by dynamic registration (RFC 7591, with an initial
 * access token whose auto-approve rule makes it active at once), an MCP client registered openly, and
 * a client known by its metadata document, each limited to public resources until an administrator
 * admits it.
 */

const NOTES = 'https://notes.example.test/mcp';
const PUBLIC = 'https://weather.example.test/api';
const REDIRECT = 'http://127.0.0.1:53682/callback';
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
const GRANTS = [
  'client_credentials',
  'urn:ietf:params:oauth:grant-type:token-exchange',
  'urn:openid:params:grant-type:ciba',
];

type Api = Awaited<ReturnType<typeof adminApi>>;
type ClientView = { client_id: string; quarantined_at: number | null; source: string; status: string };

let tb: TestBroker;
let api: Api;
let as: oauth.AuthorizationServer;
let user: Awaited<ReturnType<typeof createUser>>;
let docs: Server;
let docsOrigin: string;

beforeAll(async () => {
  tb = await startBroker({ ERRAND_DCR_RATE_LIMIT: '1000', ERRAND_FETCH_ALLOW_PRIVATE: 'true' });
  api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read', 'notes:write']);
  await addResource(api, PUBLIC, ['weather:read'], { public: true });
  user = await createUser(tb);
  as = await discover(tb);
  // Serves Client ID Metadata Documents: /<name>.json names itself as its client_id.
  docs = createServer((req, res) => {
    const clientId = `${docsOrigin}${req.url}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        client_id: clientId,
        client_name: 'Document Client',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code'],
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

/** An agent that registers itself (RFC 7591 §3) with an auto-approving initial access token: active, quarantined. */
async function registerAgent(name = 'Self-registered agent', scope = 'notes:read weather:read'): Promise<TestAgent> {
  const issued = await api.call('POST', '/api/admin/initial-access-tokens', { name: 'onboarding', auto_approve: true });
  expect(issued.status).toBe(201);
  const { initial_access_token: iat } = (await issued.json()) as { initial_access_token: string };
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = `k-${Math.random().toString(36).slice(2, 8)}`;
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const res = await fetch(`${tb.url}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${iat}` },
    body: JSON.stringify({
      client_name: name,
      token_endpoint_auth_method: 'private_key_jwt',
      grant_types: GRANTS,
      jwks: { keys: [publicJwk] },
      scope,
    }),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  const { client_id: clientId, status } = (await res.json()) as { client_id: string; status: string };
  expect(status).toBe('active');
  return { clientId, privateKey, publicJwk, kid };
}

async function view(id: string): Promise<ClientView> {
  const res = await api.call('GET', `/api/admin/clients/${encodeURIComponent(id)}`);
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as ClientView;
}

async function clientCredentials(agent: TestAgent, resource: string, scope: string) {
  const [client, auth] = agentClient(tb, agent);
  return oauth.clientCredentialsGrantRequest(as, client, auth, new URLSearchParams({ resource, scope }), insecure);
}

async function expectQuarantined(res: Response) {
  const body = (await res.json()) as { error: string; error_description: string };
  expect({ status: res.status, error: body.error }).toEqual({ status: 400, error: 'invalid_target' });
  expect(body.error_description).toMatch(/quarantined until an administrator admits it/);
}

async function admit(id: string) {
  return api.call('POST', `/api/admin/clients/${encodeURIComponent(id)}/admit`);
}

/** A CIBA request (the agent asks the user for a delegation); the raw response. */
async function askDelegation(agent: TestAgent, resource: string, scope: string) {
  const [client, auth] = agentClient(tb, agent);
  const params = new URLSearchParams({ login_hint: user.username, resource, scope: `openid ${scope}` });
  return oauth.backchannelAuthenticationRequest(as, client, auth, params, insecure);
}

function authorizeUrl(clientId: string, resource: string, scope: string): string {
  const url = new URL(`${tb.url}/authorize`);
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: REDIRECT,
    response_type: 'code',
    code_challenge: CHALLENGE,
    code_challenge_method: 'S256',
    scope,
    resource,
    state: 'xyz',
  }).toString();
  return url.toString();
}

/** The authorization endpoint's answer: the error sent back to the client, or the consent page. */
async function authorizeOutcome(clientId: string, resource: string, scope: string): Promise<string> {
  const res = await fetch(authorizeUrl(clientId, resource, scope), { redirect: 'manual' });
  expect(res.status).toBe(303);
  const location = new URL(res.headers.get('location')!, tb.url);
  if (location.pathname === '/authorize/consent') return 'consent';
  expect(location.origin + location.pathname).toBe(REDIRECT);
  return location.searchParams.get('error') ?? 'no error';
}

describe('quarantine of dynamically registered agents', () => {
  test('a registered agent is quarantined: client_credentials only for public resources until an administrator admits it', async () => {
    const agent = await registerAgent();
    const before = await view(agent.clientId);
    expect(before).toMatchObject({ source: 'dcr', status: 'active' });
    expect(typeof before.quarantined_at).toBe('number');

    await expectQuarantined(await clientCredentials(agent, NOTES, 'notes:read'));
    const open = await clientCredentials(agent, PUBLIC, 'weather:read');
    expect(open.status).toBe(200);

    const admitted = await admit(agent.clientId);
    expect(admitted.status).toBe(200);
    expect(((await admitted.json()) as ClientView).quarantined_at).toBeNull();
    expect((await clientCredentials(agent, NOTES, 'notes:read')).status).toBe(200);
    // Admitting twice is a conflict: one admission, one audit event.
    expect((await admit(agent.clientId)).status).toBe(409);

    const events = await tb.broker.deps.audit.query({ type: 'client.admitted', clientId: agent.clientId, limit: 10 });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ userId: api.admin.id, reason: 'admin', details: { address: '127.0.0.1' } });
  });

  test('a quarantined agent cannot ask a person for a delegation to a non-public resource (CIBA), but can for a public one', async () => {
    const agent = await registerAgent();
    await expectQuarantined(await askDelegation(agent, NOTES, 'notes:read'));
    expect((await askDelegation(agent, PUBLIC, 'weather:read')).status).toBe(200);
    expect((await admit(agent.clientId)).status).toBe(200);
    expect((await askDelegation(agent, NOTES, 'notes:read')).status).toBe(200);
  });

  test('token exchange: a quarantined sub-agent gets no hand-off for a non-public resource, and the denial is audited', async () => {
    // An agent the administrator created holds a person's delegation for both resources.
    const lead = await addAgent(api, { name: 'lead agent', grant_types: GRANTS });
    const { credential } = await delegateViaCiba(tb, as, lead, user, {
      scope: 'openid notes:read weather:read',
      resource: [NOTES, PUBLIC],
      max_depth: '1',
    });
    const notesTask = await exchange(tb, as, lead, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
    });
    const weatherTask = await exchange(tb, as, lead, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: PUBLIC,
    });
    expect(notesTask.access_token).toBeTruthy();

    const helper = await registerAgent('Quarantined helper');
    await expectQuarantined(
      await exchangeRaw(tb, as, helper, { subject_token: notesTask.access_token, subject_token_type: TT_ACCESS }),
    );
    const [denied] = await tb.broker.deps.audit.query({ type: 'exchange.denied', clientId: helper.clientId, limit: 1 });
    expect(denied).toMatchObject({ reason: 'agent_quarantined', result: 'denied', userId: user.id });

    const open = await exchange(tb, as, helper, {
      subject_token: weatherTask.access_token,
      subject_token_type: TT_ACCESS,
    });
    expect(open.access_token).toBeTruthy();

    expect((await admit(helper.clientId)).status).toBe(200);
    const handedOff = await exchange(tb, as, helper, {
      subject_token: notesTask.access_token,
      subject_token_type: TT_ACCESS,
    });
    expect(handedOff.access_token).toBeTruthy();
  });

  test('through Errand’s MCP endpoint (public) a quarantined agent may ask for a public resource only', async () => {
    const agent = await registerAgent('MCP agent', 'errand:delegate errand:tasks notes:read weather:read');
    const token = await agentToken(tb, as, agent, `${tb.url}/mcp`, 'errand:delegate errand:tasks');
    const mcp = await modernClient(tb, token);
    try {
      const ask = (resource: string, scope: string) =>
        mcp.callTool({
          name: 'request_delegation',
          arguments: { user: user.username, resources: [resource], scopes: [scope] },
        });
      const refused = await ask(NOTES, 'notes:read');
      expect(refused.isError).toBe(true);
      expect(refusalOf(refused)).toMatchObject({ error: 'invalid_target' });
      expect(resultText(refused)).toMatch(/quarantined until an administrator admits it/);
      const allowed = await ask(PUBLIC, 'weather:read');
      expect(allowed.isError, resultText(allowed)).toBeFalsy();
    } finally {
      await mcp.close();
    }
  });

  test('approving a pending agent admits it too; agents an administrator creates are never quarantined', async () => {
    const issued = await api.call('POST', '/api/admin/initial-access-tokens', { name: 'reviewed' });
    const { initial_access_token: iat } = (await issued.json()) as { initial_access_token: string };
    const { publicKey } = await generateKeyPair('ES256');
    const res = await fetch(`${tb.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${iat}` },
      body: JSON.stringify({
        client_name: 'Pending agent',
        jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'p1' }] },
      }),
    });
    const { client_id: pending } = (await res.json()) as { client_id: string };
    expect(typeof (await view(pending)).quarantined_at).toBe('number');
    expect((await api.call('POST', `/api/admin/clients/${pending}/approve`)).status).toBe(200);
    expect((await view(pending)).quarantined_at).toBeNull();
    const [event] = await tb.broker.deps.audit.query({ type: 'client.admitted', clientId: pending, limit: 1 });
    expect(event).toMatchObject({ reason: 'approved' });

    const made = await addAgent(api, { name: 'made by admin', scope: ['notes:read'] });
    expect((await view(made.clientId)).quarantined_at).toBeNull();
    expect((await clientCredentials(made, NOTES, 'notes:read')).status).toBe(200);
    expect((await admit(made.clientId)).status).toBe(409);
  });

  test('the client list filters by quarantine', async () => {
    const agent = await registerAgent();
    const made = await addAgent(api, { name: 'listed admin agent' });
    const ids = async (query: string) =>
      ((await (await api.call('GET', `/api/admin/clients${query}`)).json()) as { clients: ClientView[] }).clients.map(
        (c) => c.client_id,
      );
    const quarantined = await ids('?quarantined=true');
    expect(quarantined).toContain(agent.clientId);
    expect(quarantined).not.toContain(made.clientId);
    const others = await ids('?quarantined=false');
    expect(others).toContain(made.clientId);
    expect(others).not.toContain(agent.clientId);
    const bad = await api.call('GET', '/api/admin/clients?quarantined=maybe');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toBe('invalid_request');
  });

  test('only administrators admit: a person who is not one gets 403; an unknown client is 404', async () => {
    const agent = await registerAgent();
    const person = await createUser(tb);
    const me = await userApi(tb, person);
    const res = await me.call('POST', `/api/admin/clients/${agent.clientId}/admit`);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('forbidden');
    // Without the session's CSRF token the administrator is refused too.
    const noCsrf = await api.browser.fetch(`${tb.url}/api/admin/clients/${agent.clientId}/admit`, { method: 'POST' });
    expect(noCsrf.status).toBe(403);
    expect(typeof (await view(agent.clientId)).quarantined_at).toBe('number');
    expect((await admit('cli_nonexistent')).status).toBe(404);
  });
});

describe('quarantine of self-registered MCP clients and metadata-document clients (authorization endpoint)', () => {
  test('an openly registered MCP client is refused a non-public resource at /authorize until admitted', async () => {
    const res = await fetch(`${tb.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'Open MCP client',
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
      }),
    });
    expect(res.status).toBe(201);
    const { client_id: clientId } = (await res.json()) as { client_id: string };
    expect(typeof (await view(clientId)).quarantined_at).toBe('number');
    expect(await authorizeOutcome(clientId, NOTES, 'notes:read')).toBe('invalid_target');
    expect(await authorizeOutcome(clientId, PUBLIC, 'weather:read')).toBe('consent');
    expect((await admit(clientId)).status).toBe(200);
    expect(await authorizeOutcome(clientId, NOTES, 'notes:read')).toBe('consent');
  });

  test('a client known by its metadata document starts quarantined, and a refreshed document keeps the admission', async () => {
    const clientId = `${docsOrigin}/quarantined-client.json`;
    expect(await authorizeOutcome(clientId, NOTES, 'notes:read')).toBe('invalid_target');
    const stored = await view(clientId);
    expect(stored.source).toBe('cimd');
    expect(typeof stored.quarantined_at).toBe('number');
    expect(await authorizeOutcome(clientId, PUBLIC, 'weather:read')).toBe('consent');
    expect((await admit(clientId)).status).toBe(200);
    // Past the cache lifetime the document is fetched again; the admission stays.
    const cachedUntil = (await tb.broker.deps.clients.get(clientId))!.cachedUntil!;
    const step = cachedUntil - tb.clock.now() + 1;
    tb.clock.advance(step);
    try {
      expect(await authorizeOutcome(clientId, NOTES, 'notes:read')).toBe('consent');
      const refreshed = await tb.broker.deps.clients.get(clientId);
      expect(refreshed!.cachedUntil).toBeGreaterThan(cachedUntil);
      expect(refreshed!.quarantinedAt).toBeNull();
    } finally {
      tb.clock.advance(-step);
    }
  });
});

describe('findings', () => {
  test('a static-secret agent, an agent without owner and a quarantined client are listed with what to do', async () => {
    const secret = await api.call('POST', '/api/admin/clients', {
      kind: 'agent',
      name: 'legacy secret agent',
      owner_id: api.admin.id,
      token_endpoint_auth_method: 'client_secret_basic',
      allow_static_secret: true,
      grant_types: ['client_credentials'],
    });
    expect(secret.status).toBe(201);
    const { client_id: secretId } = (await secret.json()) as { client_id: string };
    const orphan = await addAgent(api, { name: 'orphan agent' });
    expect((await api.call('PATCH', `/api/admin/clients/${orphan.clientId}`, { owner_id: null })).status).toBe(200);
    const waiting = await registerAgent('waiting agent');
    const keyed = await addAgent(api, { name: 'keyed owned agent', owner_id: api.admin.id });

    const res = await api.call('GET', '/api/admin/findings');
    expect(res.status).toBe(200);
    const { findings } = (await res.json()) as {
      findings: { kind: string; client_id: string; hint: string; steps: { method: string; path: string }[] }[];
    };
    const of = (id: string) => findings.filter((f) => f.client_id === id).map((f) => f.kind);
    expect(of(secretId)).toEqual(['static_secret']);
    const hint = findings.find((f) => f.client_id === secretId)!;
    expect(hint.hint).toMatch(/private_key_jwt/);
    expect(hint.hint).toMatch(/workload identity/);
    expect(hint.steps).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ method: 'POST', path: '/api/admin/clients' }),
        expect.objectContaining({ method: 'DELETE', path: `/api/admin/clients/${secretId}` }),
      ]),
    );
    expect(of(orphan.clientId)).toEqual(['no_owner']);
    expect(of(waiting.clientId)).toContain('quarantined');
    expect(of(keyed.clientId)).toEqual([]);

    // Only administrators see them.
    const me = await userApi(tb, await createUser(tb));
    expect((await me.call('GET', '/api/admin/findings')).status).toBe(403);
  });
});

describe('the console', () => {
  test('an administrator admits from the client page; the form without its CSRF token is refused', async () => {
    const agent = await registerAgent('console agent');
    const browser = new Browser();
    const signIn = await browser.fetch(`${tb.url}/signin`);
    const html = await signIn.text();
    const signedIn = await browser.postForm(`${tb.url}/signin`, {
      username: api.admin.username,
      password: api.admin.password,
      _csrf: hiddenInput(html, '_csrf'),
      next: '/admin',
    });
    expect(signedIn.status).toBe(303);
    const page = await (await browser.fetch(`${tb.url}/admin/clients/${agent.clientId}`)).text();
    expect(page).toContain('Quarantined');
    const action = `${tb.url}/admin/clients/${agent.clientId}/admit`;
    const made = await addAgent(api, { name: 'console admin agent' });
    const waiting = await (await browser.fetch(`${tb.url}/admin/clients?quarantined=true`)).text();
    expect(waiting).toContain(`data-client-id="${agent.clientId}"`);
    expect(waiting).not.toContain(`data-client-id="${made.clientId}"`);

    const forged = await browser.postForm(action, {});
    expect(forged.status).toBe(403);
    expect(typeof (await view(agent.clientId)).quarantined_at).toBe('number');

    const done = await browser.postForm(action, { _csrf: hiddenInput(page, '_csrf') });
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe(`/admin/clients/${agent.clientId}?done=admitted`);
    expect((await view(agent.clientId)).quarantined_at).toBeNull();

    const findings = await (await browser.fetch(`${tb.url}/admin/findings`)).text();
    expect(findings).toContain('Findings');
    expect(findings).not.toContain(`data-client-id="${agent.clientId}"`);
  });
});

describe('an admission rule', () => {
  test('a client the rule admits starts admitted, recorded as admitted_by_rule; the rule sees the registration', async () => {
    const seen: string[] = [];
    const ruled = await startBroker(
      { ERRAND_DCR_RATE_LIMIT: '1000' },
      {
        admission: {
          admits: async (client) => {
            seen.push(client.name);
            return client.name.startsWith('Trusted');
          },
        },
      },
    );
    try {
      const register = async (name: string) => {
        const res = await fetch(`${ruled.url}/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ client_name: name, redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }),
        });
        expect(res.status).toBe(201);
        const { client_id: id } = (await res.json()) as { client_id: string };
        return (await ruled.broker.deps.clients.get(id))!;
      };
      const trusted = await register('Trusted tool');
      const other = await register('Other tool');
      expect(seen).toEqual(['Trusted tool', 'Other tool']);
      expect(trusted.quarantinedAt).toBeNull();
      expect(other.quarantinedAt).toEqual(expect.any(Number));
      const events = await ruled.broker.deps.audit.query({ type: 'client.admitted', limit: 10 });
      expect(events.map((e) => [e.clientId, e.reason])).toEqual([[trusted.id, 'admitted_by_rule']]);
    } finally {
      await ruled.close();
    }
  });
});

describe('admission by the organisation policies', () => {
  test('a policy permitting `admit` admits the registrations it names; the built-in default admits none', async () => {
    const tb2 = await startBroker({ ERRAND_DCR_RATE_LIMIT: '1000' });
    try {
      const register = async (name: string) => {
        const res = await fetch(`${tb2.url}/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ client_name: name, redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }),
        });
        expect(res.status).toBe(201);
        const { client_id: id } = (await res.json()) as { client_id: string };
        return (await tb2.broker.deps.clients.get(id))!;
      };
      expect((await register('Acme desktop')).quarantinedAt).toEqual(expect.any(Number));
      const deps = { ...tb2.broker.deps };
      const admin = { adminId: 'usr_admin', requestId: 'req_test' };
      const saved = await savePolicyDraft(
        deps,
        {
          text: `${DEFAULT_POLICIES}
@id("admit-acme-tools")
permit (principal is Errand::Agent, action == Errand::Action::"admit", resource)
when { principal.source == "dcr" && principal.credential == "none" && principal.name like "Acme *" };`,
          tests: [],
        },
        admin,
      );
      await setPolicyStatus(deps, saved.version, 'published', admin);
      const acme = await register('Acme desktop');
      const other = await register('Other desktop');
      expect(acme.quarantinedAt).toBeNull();
      expect(other.quarantinedAt).toEqual(expect.any(Number));
      const events = await tb2.broker.deps.audit.query({ type: 'client.admitted', limit: 10 });
      expect(events.map((e) => [e.clientId, e.reason])).toEqual([[acme.id, 'admitted_by_rule']]);
    } finally {
      await tb2.close();
    }
  });
});

describe('the public flag of resources', () => {
  test('set at creation and by PATCH (audited); Errand’s MCP and A2A endpoints are public and stay so', async () => {
    const created = await api.call('POST', '/api/admin/resources', {
      url: 'https://flagged.example.test/api',
      name: 'Flagged',
      scopes: ['flag:read'],
    });
    expect(created.status).toBe(201);
    const r = (await created.json()) as { id: string; public: boolean };
    expect(r.public).toBe(false);
    const patched = await api.call('PATCH', `/api/admin/resources/${r.id}`, { public: true });
    expect(patched.status).toBe(200);
    expect(((await patched.json()) as { public: boolean }).public).toBe(true);
    const [event] = await tb.broker.deps.audit.query({ type: 'resource.updated', limit: 1 });
    expect(event).toMatchObject({ audience: 'https://flagged.example.test/api', details: { public: true } });
    const bad = await api.call('PATCH', `/api/admin/resources/${r.id}`, { public: 'yes' });
    expect(bad.status).toBe(400);

    const { resources } = (await (await api.call('GET', '/api/admin/resources')).json()) as {
      resources: { id: string; url: string; public: boolean }[];
    };
    const byUrl = (url: string) => resources.find((x) => x.url === url)!;
    expect(byUrl(`${tb.url}/mcp`).public).toBe(true);
    expect(byUrl(`${tb.url}/a2a`).public).toBe(true);
    expect(byUrl(`${tb.url}/api/admin`).public).toBe(false);
    const refused = await api.call('PATCH', `/api/admin/resources/${byUrl(`${tb.url}/mcp`).id}`, { public: false });
    expect(refused.status).toBe(409);
  });
});
