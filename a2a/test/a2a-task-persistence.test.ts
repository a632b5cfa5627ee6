import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Task, TaskState } from '@a2a-js/sdk';
import { defaultServerCallContextBuilder, type User } from '@a2a-js/sdk/server';
import { JsonRpcTransport as V03JsonRpcTransport } from 'a2a-sdk-v03/client';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../broker/log.js';
import { introspector, userApi } from '../../broker/test/delegation-fixtures.js';
import { adminApi, dbEnv, freePort, startBroker, type TestBroker } from '../../broker/test/fixtures.js';
import { openDb } from '../../db/open.js';
import { A2aTaskStore } from '../../db/stores/a2a-task-store.js';
import { dropTestDatabase } from '../../e2e/postgres/databases.js';
import { agentToken, ERRAND_SCOPES, mcpWorld, NOTES } from '../../mcp-server/errand/test/mcp-fixtures.js';
import { DurableTaskStore } from '../durable-task-store.js';
import {
  a2aClient,
  bearerFetch,
  expectRpcError,
  isTask,
  replyData,
  skillRequest,
  tokenArtifact,
} from './a2a-fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
let asks = 0;

type World = Awaited<ReturnType<typeof mcpWorld>>;

/** Asks for a delegation over A2A (1.0 client) and has the user approve it. */
async function approvedDelegation(tb: TestBroker, world: World, token: string): Promise<string> {
  asks += 1;
  const client = await a2aClient(tb, token);
  const asked = replyData(
    await client.sendMessage(
      skillRequest('request_delegation', {
        user: world.user.username,
        resources: [NOTES],
        scopes: ['notes:read'],
        expires_in: 3600 + asks,
      }),
    ),
  );
  const me = await userApi(tb, world.user);
  expect((await me.call('POST', `/api/me/delegations/${asked.delegation_id as string}/approve`, {})).status).toBe(200);
  return asked.delegation_id as string;
}

/** Starts an A2A task that stands for an Errand task; returns it and its task token. */
async function startA2aTask(tb: TestBroker, world: World, token: string) {
  const client = await a2aClient(tb, token);
  const delegationId = await approvedDelegation(tb, world, token);
  const task = await client.sendMessage(
    skillRequest('issue_task_token', { delegation_id: delegationId, resource: NOTES }),
  );
  if (!isTask(task)) throw new Error(`expected a task: ${JSON.stringify(replyData(task))}`);
  return { task, issued: tokenArtifact(task) };
}

/** A raw A2A 1.0 JSON-RPC call to one broker's endpoint. */
async function rpc(url: string, token: string, method: string, params: Record<string, unknown>) {
  const res = await fetch(`${url}/a2a`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'a2a-version': '1.0' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  return (await res.json()) as { result?: Record<string, unknown>; error?: { code: number; message: string } };
}

describe('A2A tasks survive a restart', () => {
  let dir: string;
  let tb: TestBroker | null = null;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'errand-a2a-restart-'));
  });
  afterAll(async () => {
    await tb?.close();
    await dropTestDatabase(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  test('GetTask and CancelTask (1.0 and 0.3) find a task created before the restart; cancelling ends the Errand task', async () => {
    const port = await freePort();
    const env = { ERRAND_PORT: String(port) };
    tb = await startBroker(env, { dir });
    const world = await mcpWorld(tb);
    const endpoint = `${tb.url}/a2a`;
    const token = await agentToken(tb, world.as, world.agent, endpoint, ERRAND_SCOPES);
    const first = await startA2aTask(tb, world, token);
    const second = await startA2aTask(tb, world, token);
    await tb.close();

    tb = await startBroker(env, { dir });
    const client = await a2aClient(tb, token);
    const got = await client.getTask({ tenant: '', id: first.task.id });
    expect(got.status?.state).toBe(TaskState.TASK_STATE_WORKING);
    expect(got.metadata?.errand_task_id).toBe(first.issued.task_id);

    // Another agent still cannot see or cancel it.
    const other = await a2aClient(tb, await agentToken(tb, world.as, world.subAgent, endpoint, ERRAND_SCOPES));
    await expectRpcError(other.getTask({ tenant: '', id: first.task.id }), -32001);
    await expectRpcError(other.cancelTask({ tenant: '', id: first.task.id, metadata: undefined }), -32001);

    const introspect = await introspector(tb, await adminApi(tb), [NOTES]);
    expect((await introspect(first.issued.access_token)).active).toBe(true);
    const canceled = await client.cancelTask({ tenant: '', id: first.task.id, metadata: undefined });
    expect(canceled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    expect((await tb.broker.deps.tasks.get(first.issued.task_id))?.state).toBe('canceled');
    expect((await introspect(first.issued.access_token)).active).toBe(false);

    // The 0.3 methods (tasks/get, tasks/cancel) through the 0.3 SDK's transport.
    const v03 = new V03JsonRpcTransport({ endpoint, fetchImpl: bearerFetch(token) });
    expect(await v03.getTask({ id: second.task.id })).toMatchObject({ status: { state: 'working' } });
    expect(await v03.cancelTask({ id: second.task.id })).toMatchObject({ status: { state: 'canceled' } });
    expect((await tb.broker.deps.tasks.get(second.issued.task_id))?.state).toBe('canceled');
    expect((await introspect(second.issued.access_token)).active).toBe(false);
  });
});

describe('two broker processes on one database', () => {
  let tb: TestBroker;
  let child: ChildProcess;
  let childUrl: string;
  const childOutput: string[] = [];

  beforeAll(async () => {
    tb = await startBroker();
    const port = await freePort();
    childUrl = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, ['--conditions=@errand/source', '--import', 'tsx', 'broker/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        ERRAND_PORT: String(port),
        // Both processes are one broker: the same issuer, the same data directory.
        ERRAND_ISSUER: tb.url,
        ERRAND_DATA_DIR: tb.dir,
        ...(await dbEnv(tb.dir)),
        ERRAND_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d: Buffer) => childOutput.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => childOutput.push(d.toString()));
    // Generous: compiling TypeScript on a loaded 2-core machine is slow.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && child.exitCode === null) {
      const ready = await fetch(`${childUrl}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ready) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the second broker did not become ready:\n${childOutput.join('')}`);
  }, 90_000);
  afterAll(async () => {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    await tb.close();
  });

  test('a task created on one process is found and cancelled on the other, in both directions', async () => {
    const world = await mcpWorld(tb);
    const endpoint = `${tb.url}/a2a`;
    const token = await agentToken(tb, world.as, world.agent, endpoint, ERRAND_SCOPES);
    const introspect = await introspector(tb, world.api, [NOTES]);

    // Created here, read and cancelled on the other process.
    const here = await startA2aTask(tb, world, token);
    expect((await rpc(childUrl, token, 'GetTask', { id: here.task.id })).result?.status).toMatchObject({
      state: 'TASK_STATE_WORKING',
    });
    const listed = (await rpc(childUrl, token, 'ListTasks', {})).result?.tasks as { id: string }[];
    expect(listed.map((t) => t.id)).toContain(here.task.id);
    const otherToken = await agentToken(tb, world.as, world.subAgent, endpoint, ERRAND_SCOPES);
    expect((await rpc(childUrl, otherToken, 'ListTasks', {})).result?.tasks ?? []).toEqual([]);
    expect((await rpc(childUrl, otherToken, 'GetTask', { id: here.task.id })).error?.code).toBe(-32001);
    expect((await rpc(childUrl, otherToken, 'CancelTask', { id: here.task.id })).error?.code).toBe(-32001);
    const canceled = await rpc(childUrl, token, 'CancelTask', { id: here.task.id });
    expect(canceled.result?.status).toMatchObject({ state: 'TASK_STATE_CANCELED' });
    expect((await tb.broker.deps.tasks.get(here.issued.task_id))?.state).toBe('canceled');
    expect((await introspect(here.issued.access_token)).active).toBe(false);

    // Created on the other process, read and cancelled here through the SDK client.
    const delegationId = await approvedDelegation(tb, world, token);
    const there = await rpc(childUrl, token, 'SendMessage', {
      message: {
        messageId: `m-${Date.now()}`,
        role: 'ROLE_USER',
        parts: [{ data: { skill: 'issue_task_token', arguments: { delegation_id: delegationId, resource: NOTES } } }],
      },
    });
    const task = there.result?.task as { id: string; metadata: { errand_task_id: string } } | undefined;
    if (!task) throw new Error(`expected a task: ${JSON.stringify(there)}`);
    const client = await a2aClient(tb, token);
    expect((await client.getTask({ tenant: '', id: task.id })).status?.state).toBe(TaskState.TASK_STATE_WORKING);
    expect((await client.cancelTask({ tenant: '', id: task.id, metadata: undefined })).status?.state).toBe(
      TaskState.TASK_STATE_CANCELED,
    );
    expect((await tb.broker.deps.tasks.get(task.metadata.errand_task_id))?.state).toBe('canceled');
  }, 60_000);
});

describe('the database task store', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  const as = (userName: string) =>
    defaultServerCallContextBuilder({
      user: { isAuthenticated: true, userName } satisfies User,
      headers: {},
      extensions: [],
    });

  test("keeps each caller's tasks apart: one user of a client never reads, overwrites or lists another's", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'errand-a2a-store-'));
    dirs.push(dir);
    const db = await openDb(`file:${join(dir, 'errand.db')}`);
    const store = new DurableTaskStore({
      a2aTasks: new A2aTaskStore(db),
      clock: { now: () => 1_800_000_000 },
      log: createLogger({ level: 'error', write: () => {} }),
    });
    const alice = as(JSON.stringify(['cli_app', 'usr_alice']));
    const bob = as(JSON.stringify(['cli_app', 'usr_bob']));
    const task: Task = {
      id: 'task-1',
      contextId: 'ctx-1',
      status: { state: TaskState.TASK_STATE_WORKING, message: undefined, timestamp: '2027-01-15T08:00:00.000Z' },
      artifacts: [],
      history: [],
      metadata: { errand_task_id: 'tsk_1' },
    };
    await store.save(task, alice);
    expect(await store.load('task-1', alice)).toMatchObject({ id: 'task-1', metadata: { errand_task_id: 'tsk_1' } });
    expect(await store.load('task-1', bob)).toBeUndefined();
    await expect(store.save({ ...task, metadata: { errand_task_id: 'tsk_bob' } }, bob)).rejects.toThrow(/in use/);
    expect((await store.load('task-1', alice))?.metadata).toEqual({ errand_task_id: 'tsk_1' });
    expect((await store.list({ tenant: '', pageSize: 10 } as never, bob)).tasks).toEqual([]);
    expect((await store.list({ tenant: '', pageSize: 10 } as never, alice)).tasks.map((t) => t.id)).toEqual(['task-1']);

    // Pages, newest status first, and a page token that is checked.
    for (const [id, minute] of [
      ['task-2', '01'],
      ['task-3', '02'],
    ] as const) {
      await store.save(
        { ...task, id, status: { ...task.status!, timestamp: `2027-01-15T08:${minute}:00.000Z` } },
        alice,
      );
    }
    const page1 = await store.list({ tenant: '', pageSize: 2 } as never, alice);
    expect(page1.tasks.map((t) => t.id)).toEqual(['task-3', 'task-2']);
    expect(page1.totalSize).toBe(3);
    const page2 = await store.list({ tenant: '', pageSize: 2, pageToken: page1.nextPageToken } as never, alice);
    expect(page2.tasks.map((t) => t.id)).toEqual(['task-1']);
    expect(page2.nextPageToken).toBe('');
    await expect(store.list({ tenant: '', pageSize: 2, pageToken: 'nonsense' } as never, alice)).rejects.toThrow(
      /pageToken/,
    );
    await db.close();
    // A storage failure reaches the caller as a fixed message, never the driver's text.
    await expect(store.load('task-1', alice)).rejects.toThrow(/^an internal error occurred; it has been logged$/);
  });
});
