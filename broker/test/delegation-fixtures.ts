import * as oauth from 'oauth4webapi';
import { expect } from 'vitest';
import {
  addAgent,
  addResource,
  adminApi,
  Browser,
  createUser,
  discover,
  insecure,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

export const GRANT_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TT_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
export const TT_JWT = 'urn:ietf:params:oauth:token-type:jwt';

export type Api = Awaited<ReturnType<typeof adminApi>>;

/** A signed-in person using the user API (`/api/me/*`) with their session and CSRF token. */
export async function userApi(tb: TestBroker, user: { username: string; password: string }) {
  const browser = new Browser();
  const res = await browser.fetch(`${tb.url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: user.username, password: user.password }),
  });
  expect(res.status).toBe(200);
  const { csrf_token: csrf } = (await res.json()) as { csrf_token: string };
  const call = (method: string, path: string, body?: unknown) =>
    browser.fetch(`${tb.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  return { browser, csrf, call };
}

/** Client authentication for an agent, signing on the broker's (possibly advanced) clock. */
export function agentClient(tb: TestBroker, agent: TestAgent): [oauth.Client, oauth.ClientAuth] {
  return [
    { client_id: agent.clientId, [oauth.clockSkew]: tb.clock.offset },
    oauth.PrivateKeyJwt({ key: agent.privateKey, kid: agent.kid }),
  ];
}

/** A world for delegation tests: a resource, agents, a user, discovery. */
export async function delegationWorld(
  tb: TestBroker,
  opts: { agents?: number; resources?: Record<string, string[]> } = {},
) {
  const api = await adminApi(tb);
  const resources = opts.resources ?? {
    'https://notes.example.test/mcp': ['notes:read', 'notes:write', 'notes:delete'],
    'https://calendar.example.test/api': ['calendar:read', 'calendar:write'],
  };
  for (const [url, scopes] of Object.entries(resources)) await addResource(api, url, scopes);
  const agents: TestAgent[] = [];
  for (let i = 0; i < (opts.agents ?? 3); i++)
    agents.push(await addAgent(api, { name: `agent ${i}`, grant_types: undefined }));
  const user = await createUser(tb);
  const as = await discover(tb);
  return { api, agents, user, as, resources };
}

/** CIBA: the agent asks, the user approves (optionally narrowing) through the user API, the agent polls. */
export async function delegateViaCiba(
  tb: TestBroker,
  as: oauth.AuthorizationServer,
  agent: TestAgent,
  user: { username: string; password: string },
  ask: Record<string, string | string[]>,
  approval: Record<string, unknown> = {},
) {
  const [client, auth] = agentClient(tb, agent);
  const params = new URLSearchParams();
  params.set('login_hint', user.username);
  for (const [k, v] of Object.entries(ask)) for (const one of Array.isArray(v) ? v : [v]) params.append(k, one);
  const bcRes = await oauth.backchannelAuthenticationRequest(as, client, auth, params, insecure);
  if (bcRes.status !== 200) throw new Error(`backchannel request failed: ${bcRes.status} ${await bcRes.text()}`);
  const started = await oauth.processBackchannelAuthenticationResponse(as, client, bcRes);
  const me = await userApi(tb, user);
  const pending = (await (await me.call('GET', '/api/me/delegations?status=pending')).json()) as {
    delegations: { delegation_id: string; agent_id: string }[];
  };
  const mine = pending.delegations.find((d) => d.agent_id === agent.clientId);
  expect(mine).toBeDefined();
  const approved = await me.call('POST', `/api/me/delegations/${mine!.delegation_id}/approve`, approval);
  if (approved.status !== 200) {
    throw new Error(
      `approval failed: ${approved.status} ${await approved.text()} ${tb.logs.filter((l) => l.includes('"error"')).join('\n')}`,
    );
  }
  tb.clock.advance(started.interval ?? 5);
  const res = await oauth.backchannelAuthenticationGrantRequest(as, client, auth, started.auth_req_id, insecure);
  const tokens = await oauth.processBackchannelAuthenticationGrantResponse(as, client, res);
  return { credential: tokens.access_token, tokens, delegationId: mine!.delegation_id, me };
}

/** A raw token-exchange request (the response is returned as is, for error assertions). */
export async function exchangeRaw(
  tb: TestBroker,
  as: oauth.AuthorizationServer,
  agent: TestAgent,
  params: Record<string, string | string[]>,
) {
  const [client, auth] = agentClient(tb, agent);
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
  return oauth.genericTokenEndpointRequest(as, client, auth, GRANT_EXCHANGE, body, insecure);
}

/** A successful exchange, parsed by the independent client. */
export async function exchange(
  tb: TestBroker,
  as: oauth.AuthorizationServer,
  agent: TestAgent,
  params: Record<string, string | string[]>,
) {
  const [client] = agentClient(tb, agent);
  const res = await exchangeRaw(tb, as, agent, params);
  return oauth.processGenericTokenEndpointResponse(as, client, res) as Promise<
    oauth.TokenEndpointResponse & { task_id: string; issued_token_type: string }
  >;
}

/** Introspects with a resource-server client registered for the audiences. */
export async function introspector(tb: TestBroker, api: Api, audiences: string[]) {
  const rs = await addAgent(api, {
    kind: 'resource_server',
    name: 'rs',
    resources: audiences,
    grant_types: ['client_credentials'],
  });
  const as = await discover(tb);
  return async (token: string) => {
    const [client, auth] = agentClient(tb, rs);
    const res = await oauth.introspectionRequest(as, client, auth, token, insecure);
    return (await res.json()) as Record<string, unknown> & { active: boolean };
  };
}
