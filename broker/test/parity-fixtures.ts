import type { Message, Task } from '@a2a-js/sdk';
import type { Client as A2aClient } from '@a2a-js/sdk/client';
import { Client as McpClient, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import * as oauth from 'oauth4webapi';
import { a2aClient, skillRequest } from '../../a2a/test/a2a-fixtures.js';
import { ERRAND_SCOPES, refusalOf as mcpRefusal } from '../../mcp-server/errand/test/mcp-fixtures.js';
import { agentClient, exchangeRaw, type userApi } from './delegation-fixtures.js';
import { actorToken, clientAssertion, insecure, postForm, type TestAgent, type TestBroker } from './fixtures.js';

/**
 * The three doors that mint task tokens, each driven by an independent client: the token endpoint
 * (oauth4webapi), Errand's MCP endpoint (the MCP TypeScript SDK 2.x client) and its A2A endpoint
 * (the `@a2a-js/sdk` client). Every answer comes back in one shape so that a test can put the
 * three side by side. Signed JWTs (client assertions, actor tokens) follow the broker's test
 * clock, so a test may move time forward.
 */

export type Door = 'token' | 'mcp' | 'a2a';
export const DOORS: readonly Door[] = ['token', 'mcp', 'a2a'];

/**
 * What a door answered. On success, the fields of the task token (or of the ended task) under
 * their wire names: `task_id`, `access_token`, `scope`, `state`. On refusal, the wire `error` code.
 */
export type DoorAnswer =
  | { ok: true; value: Record<string, unknown> }
  | { ok: false; error: string; description: string };

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** A one-use RFC 8693 actor token signed by `agent`, dated on the broker's clock. */
export function freshActorToken(tb: TestBroker, agent: TestAgent): Promise<string> {
  const now = tb.clock.now();
  return actorToken(agent, tb.url, { claims: { iat: now, exp: now + 60 } });
}

/** The user API's view of a delegation, as far as the tests read it. */
export interface DelegationView {
  delegation_id: string;
  scopes: Record<string, string[]>;
  authorization_details: { type: string; locations: string[]; actions: string[] }[] | null;
  max_depth: number;
  max_token_ttl: number;
  sub_agents: string[] | null;
  expires_at: number;
}

/** CIBA with a signed-in person's session kept across requests (one sign-in per person, not per approval). */
export async function cibaDelegation(
  tb: TestBroker,
  as: oauth.AuthorizationServer,
  agent: TestAgent,
  person: { username: string; me: Awaited<ReturnType<typeof userApi>> },
  ask: Record<string, string | string[]>,
  approval: Record<string, unknown>,
): Promise<{ credential: string; delegation: DelegationView }> {
  const [client, auth] = agentClient(tb, agent);
  const params = new URLSearchParams({ login_hint: person.username });
  for (const [k, v] of Object.entries(ask)) for (const one of Array.isArray(v) ? v : [v]) params.append(k, one);
  const bc = await oauth.backchannelAuthenticationRequest(as, client, auth, params, insecure);
  if (bc.status !== 200) throw new Error(`backchannel request failed: ${bc.status} ${await bc.text()}`);
  const started = await oauth.processBackchannelAuthenticationResponse(as, client, bc);
  const pending = (await (await person.me.call('GET', '/api/me/delegations?status=pending')).json()) as {
    delegations: { delegation_id: string; agent_id: string }[];
  };
  const mine = pending.delegations.find((d) => d.agent_id === agent.clientId);
  if (!mine) throw new Error(`no pending delegation for ${agent.clientId}`);
  const approved = await person.me.call('POST', `/api/me/delegations/${mine.delegation_id}/approve`, approval);
  if (approved.status !== 200) throw new Error(`approval failed: ${approved.status} ${await approved.text()}`);
  tb.clock.advance(started.interval ?? 5);
  const res = await oauth.backchannelAuthenticationGrantRequest(as, client, auth, started.auth_req_id, insecure);
  const tokens = await oauth.processBackchannelAuthenticationGrantResponse(as, client, res);
  return { credential: tokens.access_token, delegation: (await approved.json()) as DelegationView };
}

/** A fetch that presents the caller's current bearer token (renewed as the test clock moves). */
function bearerFetch(bearer: () => Promise<string>): typeof fetch {
  return (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${await bearer()}`);
    return fetch(input, { ...init, headers });
  }) as typeof fetch;
}

/** A skill's answer: the token artifact of a new A2A task, or the data part of a reply message. */
function skillData(result: Message | Task): Record<string, unknown> {
  const parts = 'status' in result ? result.artifacts.find((a) => a.artifactId === 'task-token')?.parts : result.parts;
  const part = parts?.find((p) => p.content?.$case === 'data');
  if (part?.content?.$case !== 'data') throw new Error(`the A2A answer carries no data: ${JSON.stringify(result)}`);
  return part.content.value as Record<string, unknown>;
}

function refusalOf(body: Record<string, unknown>): DoorAnswer {
  return { ok: false, error: String(body.error), description: String(body.error_description ?? '') };
}

interface Bearer {
  token: string;
  renewAt: number;
}

/** One MCP client and one A2A client per agent, each with a client_credentials token for its endpoint. */
export class DoorClients {
  private readonly bearers = new Map<string, Bearer>();
  private readonly mcpClients = new Map<string, McpClient>();
  private readonly a2aClients = new Map<string, A2aClient>();

  private constructor(
    private readonly tb: TestBroker,
    private readonly as: oauth.AuthorizationServer,
  ) {}

  static async open(tb: TestBroker, as: oauth.AuthorizationServer, agents: TestAgent[]): Promise<DoorClients> {
    const doors = new DoorClients(tb, as);
    for (const agent of agents) {
      const mcp = new McpClient(
        { name: 'errand-door-parity', version: '1.0.0' },
        { versionNegotiation: { mode: { pin: '2026-07-28' } } },
      );
      await mcp.connect(
        new StreamableHTTPClientTransport(new URL(`${tb.url}/mcp`), {
          authProvider: { token: () => doors.bearer(agent, `${tb.url}/mcp`) },
        }),
      );
      doors.mcpClients.set(agent.clientId, mcp);
      const a2a = await a2aClient(
        tb,
        bearerFetch(() => doors.bearer(agent, `${tb.url}/a2a`)),
      );
      doors.a2aClients.set(agent.clientId, a2a);
    }
    return doors;
  }

  /** The agent's token for Errand's own endpoint, fetched again shortly before it expires. */
  private async bearer(agent: TestAgent, resource: string): Promise<string> {
    const key = `${agent.clientId} ${resource}`;
    const now = this.tb.clock.now();
    const held = this.bearers.get(key);
    if (held && now < held.renewAt) return held.token;
    const [client, auth] = agentClient(this.tb, agent);
    const res = await oauth.clientCredentialsGrantRequest(
      this.as,
      client,
      auth,
      new URLSearchParams({ resource, scope: ERRAND_SCOPES }),
      insecure,
    );
    const tokens = await oauth.processClientCredentialsResponse(this.as, client, res);
    this.bearers.set(key, { token: tokens.access_token, renewAt: now + Math.min(60, (tokens.expires_in ?? 60) - 5) });
    return tokens.access_token;
  }

  /** RFC 8693 token exchange at the token endpoint. */
  async exchange(agent: TestAgent, params: Record<string, string>): Promise<DoorAnswer> {
    const res = await exchangeRaw(this.tb, this.as, agent, params);
    if (res.status !== 200) return refusalOf((await res.json()) as Record<string, unknown>);
    const [client] = agentClient(this.tb, agent);
    const body = await oauth.processGenericTokenEndpointResponse(this.as, client, res);
    return { ok: true, value: body as unknown as Record<string, unknown> };
  }

  /** Ends a task at the task endpoint, authenticated like the token endpoint. */
  async endTask(agent: TestAgent, taskId: string, state = 'completed'): Promise<DoorAnswer> {
    const now = this.tb.clock.now();
    const res = await postForm(`${this.tb.url}/tasks/${encodeURIComponent(taskId)}/end`, {
      state,
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(agent, this.tb.url, { claims: { iat: now, exp: now + 60 } }),
    });
    const body = (await res.json()) as Record<string, unknown>;
    return res.status === 200 ? { ok: true, value: body } : refusalOf(body);
  }

  /** Calls one of Errand's MCP tools; an `isError` result is a refusal. */
  async mcp(agent: TestAgent, tool: string, args: Record<string, unknown>): Promise<DoorAnswer> {
    const result = await this.mcpClients.get(agent.clientId)!.callTool({ name: tool, arguments: args });
    if (result.isError) return refusalOf(mcpRefusal(result) ?? {});
    return { ok: true, value: (result.structuredContent ?? {}) as Record<string, unknown> };
  }

  /** Sends one of Errand's A2A skills; a reply carrying `error` is a refusal. */
  async a2a(agent: TestAgent, skill: string, args: Record<string, unknown>): Promise<DoorAnswer> {
    const data = skillData(await this.a2aClients.get(agent.clientId)!.sendMessage(skillRequest(skill, args)));
    return 'error' in data ? refusalOf(data) : { ok: true, value: data };
  }

  async close(): Promise<void> {
    for (const mcp of this.mcpClients.values()) await mcp.close();
  }
}
