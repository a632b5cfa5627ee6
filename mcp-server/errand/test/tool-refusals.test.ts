import type { Client } from '@modelcontextprotocol/client';
import type { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  agentDoorWorld,
  type DoorWorld,
  ERRAND_SCOPES,
  FILES,
  NOTES,
  publicClientAuth,
  sharedClientAuth,
  signInToken,
  storeDelegation,
  storeTask,
} from '../../../broker/test/door-fixtures.js';
import { actorToken, startBroker, type TestBroker } from '../../../broker/test/fixtures.js';
import { startWorkloadIssuer, type WorkloadIssuer } from '../../../broker/test/workload-issuer.js';
import { agentToken, compileJsonSchema, legacyClient, modernClient, refusalOf, resultText } from './mcp-fixtures.js';

/**
 * Every tool's refusals reach the official MCP clients as results: through `@modelcontextprotocol/sdk`
 * 1.x, whose `callTool` validates structured content against the tool's output schema once it has
 * listed the tools (and throws -32602 when it does not match), and through `@modelcontextprotocol/client`
 * 2.x. Both are used unmodified, with their default settings. A tool without a refusal case here fails
 * the test.
 */

let tb: TestBroker;
let wi: WorkloadIssuer;
let world: DoorWorld;

type Who = 'agent' | 'aliceShared' | 'alicePublic';
type Args = Record<string, unknown>;

interface RefusalCase {
  kind: string;
  /** Whose token calls the tool (the agent acting as itself, or Alice through an MCP client). */
  as?: Who;
  /** Arguments, made afresh for each client: a case may need a task or delegation of its own. */
  args: () => Promise<Args> | Args;
  /** The `error` the refusal carries as data; absent when the SDK refuses the arguments itself. */
  error?: string;
  /** What the text says, for a person or a model to act on. */
  reason: RegExp;
}

/** An active delegation Alice gave agent A (or `agentId`) for the notes resource. */
function aliceDelegation(opts: { agentId?: string; userId?: string } = {}) {
  return storeDelegation(tb, {
    agentId: opts.agentId ?? world.a.clientId,
    userId: opts.userId ?? world.alice.id,
    grants: { [NOTES]: ['notes:read', 'notes:write'] },
  });
}

/** A live task under a new delegation, held by agent A (or `agentId`) for Alice (or `userId`). */
async function liveTask(opts: { agentId?: string; userId?: string } = {}) {
  const agentId = opts.agentId ?? world.a.clientId;
  const userId = opts.userId ?? world.alice.id;
  const delegationId = await aliceDelegation({ agentId, userId });
  return storeTask(tb, { delegationId, userId, agentId, actorChain: [agentId] });
}

/** A task agent A held and ended through the end_task tool. */
async function endedTask() {
  const taskId = await liveTask();
  const ended = await clients.agent.modern.callTool({ name: 'end_task', arguments: { task_id: taskId } });
  expect(ended.isError, resultText(ended)).toBeFalsy();
  return taskId;
}

/** A sub-task below a live task of agent A, also held by A. */
async function subTask() {
  const parentId = await liveTask();
  const parent = await tb.broker.deps.tasks.get(parentId);
  return storeTask(tb, {
    delegationId: parent!.delegationId,
    userId: world.alice.id,
    agentId: world.a.clientId,
    actorChain: [world.a.clientId, world.a.clientId],
    parent: parent!,
  });
}

/** A delegation agent A asked Alice for and she has not answered. */
async function pendingDelegation() {
  const asked = await clients.agent.modern.callTool({
    name: 'request_delegation',
    arguments: { user: world.alice.username, resources: [FILES], scopes: ['files:read'] },
  });
  expect(asked.isError, resultText(asked)).toBeFalsy();
  return (asked.structuredContent as { delegation_id: string }).delegation_id;
}

const REFUSALS: Record<string, RefusalCase[]> = {
  whoami: [{ kind: 'invalid arguments', args: () => ({ unexpected: 1 }), reason: /Input validation error/ }],
  request_delegation: [
    {
      kind: 'invalid arguments (binding message)',
      args: () => ({
        user: world.alice.username,
        resources: [NOTES],
        scopes: ['notes:read'],
        binding_message: 'a\u0007b',
      }),
      reason: /binding_message[\s\S]*must be 1-64 characters of plain text/,
    },
    {
      kind: 'no user named by a token that speaks for none',
      args: () => ({ resources: [NOTES], scopes: ['notes:read'] }),
      error: 'invalid_request',
      reason: /user is required/,
    },
    {
      kind: 'unknown user',
      args: () => ({ user: 'nobody-at-all', resources: [NOTES], scopes: ['notes:read'] }),
      error: 'unknown_user_id',
      reason: /not name a known user/,
    },
    {
      kind: 'another user than the token speaks for',
      as: 'aliceShared',
      args: () => ({ user: world.mallory.username, resources: [NOTES], scopes: ['notes:read'] }),
      error: 'invalid_request',
      reason: /speaks for another user/,
    },
    {
      kind: 'a public client',
      as: 'alicePublic',
      args: () => ({ resources: [NOTES], scopes: ['notes:read'] }),
      error: 'unauthorized_client',
      reason: /may not hold delegations/,
    },
    {
      kind: 'unknown resource',
      args: () => ({ user: world.alice.username, resources: ['https://unknown.example.test/api'], scopes: ['x:read'] }),
      error: 'invalid_target',
      reason: /unknown\.example\.test/,
    },
    {
      kind: 'scope the resource does not offer',
      args: () => ({ user: world.alice.username, resources: [NOTES], scopes: ['notes:delete'] }),
      error: 'invalid_scope',
      reason: /notes:delete/,
    },
  ],
  list_delegations: [
    { kind: 'invalid arguments', args: () => ({ status: 'bogus' }), reason: /Input validation error/ },
  ],
  start_task: [
    {
      kind: 'invalid arguments',
      args: () => ({ delegation_id: 42, resource: NOTES }),
      reason: /Input validation error/,
    },
    {
      kind: 'unknown delegation',
      args: () => ({ delegation_id: 'dlg_unknown', resource: NOTES }),
      error: 'no_delegation',
      reason: /no delegation dlg_unknown/,
    },
    {
      kind: "another user's delegation",
      as: 'aliceShared',
      args: async () => ({
        delegation_id: await aliceDelegation({ agentId: world.shared.clientId, userId: world.mallory.id }),
        resource: NOTES,
      }),
      error: 'no_delegation',
      reason: /is held by this agent/,
    },
    {
      kind: 'approval pending',
      args: async () => ({ delegation_id: await pendingDelegation(), resource: FILES }),
      error: 'approval_pending',
      reason: /not approved the delegation yet/,
    },
    {
      kind: 'revoked delegation',
      args: async () => {
        const id = await aliceDelegation();
        expect((await world.api.call('POST', `/api/admin/delegations/${id}/revoke`, {})).status).toBe(200);
        return { delegation_id: id, resource: NOTES };
      },
      error: 'delegation_revoked',
      reason: /the delegation is revoked/,
    },
    {
      kind: 'scope beyond the delegation',
      args: async () => ({ delegation_id: await aliceDelegation(), resource: NOTES, scope: 'notes:delete' }),
      error: 'invalid_scope',
      reason: /notes:delete/,
    },
    {
      kind: 'resource beyond the delegation',
      args: async () => ({ delegation_id: await aliceDelegation(), resource: FILES }),
      error: 'invalid_target',
      reason: /files\.example\.test/,
    },
  ],
  get_task_token: [
    { kind: 'invalid arguments', args: () => ({ task_id: '' }), reason: /Input validation error/ },
    {
      kind: 'unknown task',
      args: () => ({ task_id: 'tsk_unknown' }),
      error: 'no_task',
      reason: /no task tsk_unknown/,
    },
    {
      kind: "another user's task",
      as: 'aliceShared',
      args: async () => ({ task_id: await liveTask({ agentId: world.shared.clientId, userId: world.mallory.id }) }),
      error: 'no_task',
      reason: /is held by this agent/,
    },
    {
      kind: 'ended task',
      args: async () => ({ task_id: await endedTask(), resource: NOTES }),
      error: 'invalid_request',
      reason: /ended/,
    },
    {
      kind: 'sub-task',
      args: async () => ({ task_id: await subTask(), resource: NOTES }),
      error: 'invalid_request',
      reason: /is a sub-task/,
    },
  ],
  delegate_to_subagent: [
    {
      kind: 'invalid arguments',
      args: () => ({ task_id: 'tsk_x', sub_agent_id: '' }),
      reason: /Input validation error/,
    },
    {
      kind: 'unknown task',
      args: () => ({ task_id: 'tsk_unknown', sub_agent_id: world.b.clientId }),
      error: 'no_task',
      reason: /no task tsk_unknown/,
    },
    {
      kind: 'ended task',
      args: async () => ({
        task_id: await endedTask(),
        sub_agent_id: world.b.clientId,
        actor_token: await actorToken(world.b, tb.url),
      }),
      error: 'invalid_request',
      reason: /ended/,
    },
    {
      kind: 'unknown sub-agent',
      args: async () => ({ task_id: await liveTask(), sub_agent_id: 'cli_nobody' }),
      error: 'unknown_sub_agent',
      reason: /no client cli_nobody/,
    },
    {
      kind: 'no actor token',
      args: async () => ({ task_id: await liveTask(), sub_agent_id: world.b.clientId }),
      error: 'invalid_request',
      reason: /actor_token/,
    },
    {
      kind: "another agent's actor token",
      args: async () => ({
        task_id: await liveTask(),
        sub_agent_id: world.b.clientId,
        actor_token: await actorToken(world.w, tb.url),
      }),
      error: 'invalid_request',
      reason: /not signed by sub_agent_id/,
    },
  ],
  end_task: [
    {
      kind: 'invalid arguments',
      args: () => ({ task_id: 'tsk_x', state: 'paused' }),
      reason: /Input validation error/,
    },
    { kind: 'unknown task', args: () => ({ task_id: 'tsk_unknown' }), error: 'not_found', reason: /no such task/ },
    {
      // PostgreSQL's text cannot hold U+0000: refused the same way on both databases.
      kind: 'a NUL character in an argument',
      args: () => ({ task_id: 'tsk_\u0000' }),
      error: 'invalid_request',
      reason: /NUL character/,
    },
    {
      kind: "another user's task",
      as: 'aliceShared',
      args: async () => ({ task_id: await liveTask({ agentId: world.shared.clientId, userId: world.mallory.id }) }),
      error: 'not_found',
      reason: /no such task/,
    },
    {
      kind: 'ended task',
      args: async () => ({ task_id: await endedTask() }),
      error: 'conflict',
      reason: /already ended/,
    },
  ],
  list_tasks: [{ kind: 'invalid arguments', args: () => ({ unexpected: true }), reason: /Input validation error/ }],
};

/** One successful call per tool, made afresh for each client. */
const SUCCESSES: Record<string, () => Promise<Args> | Args> = {
  whoami: () => ({}),
  request_delegation: () => ({ user: world.alice.username, resources: [NOTES], scopes: ['notes:read'] }),
  list_delegations: () => ({}),
  start_task: async () => ({ delegation_id: await aliceDelegation(), resource: NOTES }),
  get_task_token: async () => ({ task_id: await liveTask(), resource: NOTES }),
  delegate_to_subagent: async () => ({
    task_id: await liveTask(),
    sub_agent_id: world.b.clientId,
    actor_token: await actorToken(world.b, tb.url),
    scope: 'notes:read',
  }),
  end_task: async () => ({ task_id: await liveTask() }),
  list_tasks: () => ({}),
};

type AnyClient = Pick<Client, 'callTool'> | Pick<LegacyClient, 'callTool'>;
interface ClientPair {
  legacy: LegacyClient;
  modern: Client;
}
const clients = {} as Record<Who, ClientPair>;
let listed: { name: string; inputSchema: Record<string, unknown>; outputSchema?: Record<string, unknown> }[];

beforeAll(async () => {
  tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true' });
  wi = await startWorkloadIssuer({ now: () => tb.clock.now() });
  world = await agentDoorWorld(tb, wi);
  const mcp = `${tb.url}/mcp`;
  const tokens: Record<Who, string> = {
    agent: await agentToken(tb, world.as, world.a, mcp, ERRAND_SCOPES),
    aliceShared: await signInToken(tb, world.as, sharedClientAuth(tb, world.shared), world.alice, {
      resource: mcp,
      scope: ERRAND_SCOPES,
    }),
    alicePublic: await signInToken(tb, world.as, publicClientAuth(world.publicClient), world.alice, {
      resource: mcp,
      scope: ERRAND_SCOPES,
    }),
  };
  for (const who of Object.keys(tokens) as Who[]) {
    const { client: legacy } = await legacyClient(tb, tokens[who]);
    const modern = await modernClient(tb, tokens[who]);
    // SDK 1.x validates structured content only for tools it has listed: list them, as real hosts do.
    await legacy.listTools();
    await modern.listTools();
    clients[who] = { legacy, modern };
  }
  listed = (await clients.agent.legacy.listTools()).tools as typeof listed;
});
afterAll(async () => {
  for (const pair of Object.values(clients)) {
    await pair.legacy.close();
    await pair.modern.close();
  }
  await wi?.close();
  await tb?.close();
});

interface ToolResult {
  isError?: boolean;
  content?: unknown;
  structuredContent?: unknown;
}

/** Calls a tool through one client; a throw fails the test with what the client said. */
async function call(client: AnyClient, name: string, args: Args): Promise<ToolResult> {
  try {
    return (await client.callTool({ name, arguments: args })) as ToolResult;
  } catch (err) {
    throw new Error(`callTool(${name}) threw instead of returning a result: ${(err as Error).message}`);
  }
}

/** A result's structured content, when there is one, is valid for the tool's output schema. */
function expectValidForSchema(name: string, result: { structuredContent?: unknown }) {
  if (result.structuredContent === undefined) return;
  const schema = listed.find((t) => t.name === name)?.outputSchema;
  expect(schema, `${name} has an output schema`).toBeDefined();
  const validate = compileJsonSchema(schema!);
  expect(validate(result.structuredContent), JSON.stringify(validate.errors)).toBe(true);
}

describe.each(['legacy', 'modern'] as const)('through the %s client', (era) => {
  test('every listed tool has refusal cases and a success case', () => {
    const names = listed.map((t) => t.name);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      expect(REFUSALS[name]?.length ?? 0, `refusal cases for ${name}`).toBeGreaterThan(0);
      expect(SUCCESSES[name], `success case for ${name}`).toBeDefined();
    }
  });

  test('each refusal is an isError result with the reason in its text and its code as data', async () => {
    const seen: string[] = [];
    for (const tool of listed) {
      for (const c of REFUSALS[tool.name] ?? []) {
        const client = clients[c.as ?? 'agent'][era];
        const result = await call(client, tool.name, await c.args());
        const text = resultText(result);
        const label = `${tool.name}: ${c.kind}: ${text}`;
        expect(result.isError, label).toBe(true);
        expect(text, label).toMatch(c.reason);
        if (c.error) {
          expect(text, label).toContain(c.error);
          expect(refusalOf(result), label).toMatchObject({ error: c.error, how: expect.any(String) });
        }
        expectValidForSchema(tool.name, result);
        seen.push(`${tool.name}: ${c.kind}`);
      }
    }
    expect(seen.length).toBeGreaterThanOrEqual(listed.length);
  });

  test('each tool succeeds with structured content valid for its output schema', async () => {
    for (const tool of listed) {
      const client = clients.agent[era];
      const result = await call(client, tool.name, await SUCCESSES[tool.name]!());
      expect(result.isError, `${tool.name}: ${resultText(result)}`).toBeFalsy();
      expect(result.structuredContent, tool.name).toBeDefined();
      expectValidForSchema(tool.name, result);
    }
  });
});

test('every tool input and output schema compiles with a standard JSON Schema validator', async () => {
  for (const era of ['legacy', 'modern'] as const) {
    const { tools } = await clients.agent[era].listTools();
    for (const tool of tools) {
      expect(() => compileJsonSchema(tool.inputSchema as Record<string, unknown>), `${tool.name} input`).not.toThrow();
      expect(tool.outputSchema, `${tool.name} output`).toBeDefined();
      expect(
        () => compileJsonSchema(tool.outputSchema as Record<string, unknown>),
        `${tool.name} output`,
      ).not.toThrow();
    }
  }
});
