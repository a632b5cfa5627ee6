/**
 * Following a peer's task: an Errand task whose external ids name a task at an A2A peer
 * (`{ peer: <peer id>, peer_task: <A2A task id> }`) ends when the peer's task reaches a terminal
 * state (A2A §7.3), with the reason `peer_ended`; ending it revokes its tokens as any end does.
 */

import { AgentCard, TaskState } from '@a2a-js/sdk';
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import { OAuthError } from '../broker/core/errors.js';
import type { Clock } from '../broker/core/ports.js';
import { canonicalizeResource } from '../broker/core/resource.js';
import { isLive, isTerminal, type Task, type TerminalState } from '../broker/core/task.js';
import type { Engine } from '../broker/engine.js';
import type { Logger } from '../broker/log.js';
import type { ExchangeService } from '../broker/services/exchange-token.js';
import type { TaskService } from '../broker/services/tasks.js';
import { newId } from '../broker/tokens/random.js';
import type { Db } from '../db/open.js';
import type { AuditStore } from '../db/stores/audit-store.js';
import type { ClientStore } from '../db/stores/client-store.js';
import { type Peer, PeerStore } from '../db/stores/peer-store.js';
import type { TaskStore } from '../db/stores/task-store.js';
import { assertPublicUrl, describeCard } from './peer-card.js';

/** The external-id keys that link an Errand task to a peer's task. */
export const PEER_LINK = { peer: 'peer', task: 'peer_task' } as const;
const MAX_RESPONSE_BYTES = 1024 * 1024;
const MAX_BACKOFF_MS = 60_000;

export interface PeerTaskDeps {
  db: Db;
  peers: Pick<PeerStore, 'get'>;
  tasks: TaskStore;
  taskService: Pick<TaskService, 'flush'>;
  exchange: Pick<ExchangeService, 'exchangeOnBehalf'>;
  clients: Pick<ClientStore, 'get'>;
  audit: AuditStore;
  clock: Clock;
  log: Logger;
  allowPrivate: boolean;
  timeoutMs: number;
}

export interface FollowOptions {
  taskId: string;
  /** A token for the peer; by default Errand issues task tokens for the peer audience under the task's delegation. */
  token?: string | (() => Promise<string>);
  /** Poll interval (default 2 s); failures back off up to a minute. */
  intervalMs?: number;
  signal?: AbortSignal;
}

export type FollowOutcome =
  | { outcome: 'peer_ended'; peerState: TerminalState }
  /** The Errand task ended (or passed its deadline) first. */
  | { outcome: 'task_ended' }
  | { outcome: 'stopped' };

const TERMINAL: Partial<Record<TaskState, TerminalState>> = {
  [TaskState.TASK_STATE_COMPLETED]: 'completed',
  [TaskState.TASK_STATE_FAILED]: 'failed',
  [TaskState.TASK_STATE_CANCELED]: 'canceled',
  [TaskState.TASK_STATE_REJECTED]: 'rejected',
};

/** Records on a live task which peer task it waits for. */
export async function linkPeerTask(
  deps: Pick<PeerTaskDeps, 'db' | 'peers' | 'tasks'>,
  taskId: string,
  link: { peerId: string; peerTaskId: string },
): Promise<Task> {
  if (!(await deps.peers.get(link.peerId))) throw new OAuthError('not_found', 'no such peer');
  if (link.peerTaskId.length === 0 || link.peerTaskId.length > 256) {
    throw new OAuthError('invalid_request', 'peer task id must have 1 to 256 characters');
  }
  await deps.db.write(async (tx) => {
    const task = await deps.tasks.get(taskId, tx);
    if (!task) throw new OAuthError('not_found', 'no such task');
    if (isTerminal(task.state)) throw new OAuthError('conflict', 'the task has ended');
    const ids = { ...task.externalIds, [PEER_LINK.peer]: link.peerId, [PEER_LINK.task]: link.peerTaskId };
    await deps.tasks.setExternalIds(taskId, ids, tx);
  });
  return (await deps.tasks.get(taskId))!;
}

/** Polls the peer's `GetTask` until the peer's task or the Errand task ends, or `signal` aborts. */
export async function followPeerTask(deps: PeerTaskDeps, opts: FollowOptions): Promise<FollowOutcome> {
  const start = await deps.tasks.get(opts.taskId);
  if (!start) throw new OAuthError('not_found', 'no such task');
  const peerId = start.externalIds[PEER_LINK.peer];
  const peerTaskId = start.externalIds[PEER_LINK.task];
  if (!peerId || !peerTaskId) {
    throw new OAuthError('invalid_request', `the task names no peer task (external ids "peer" and "peer_task")`);
  }
  const peer = await deps.peers.get(peerId);
  if (!peer) throw new OAuthError('not_found', 'no such peer');
  const { protocolVersion, tenant } = describeCard(peer.card);
  const client = await new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [
        new JsonRpcTransportFactory({
          fetchImpl: peerFetch(deps, peer, tokenSource(deps, start, peer, opts.token)),
          legacyCompat: { enabled: true },
        }),
      ],
    }),
  ).createFromAgentCard(
    AgentCard.fromJSON({
      name: peer.name,
      supportedInterfaces: [{ url: peer.endpoint, protocolBinding: 'JSONRPC', protocolVersion, tenant }],
    }),
  );
  const interval = opts.intervalMs ?? 2000;
  let delay = interval;
  for (;;) {
    if (opts.signal?.aborted) return { outcome: 'stopped' };
    const task = await deps.tasks.get(opts.taskId);
    if (!task || !isLive(task, deps.clock.now())) return { outcome: 'task_ended' };
    try {
      const peerTask = await client.getTask({ id: peerTaskId, tenant });
      const state = TERMINAL[peerTask.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED];
      if (state) {
        const ended = await endForPeer(deps, task.id, state, peer, peerTaskId);
        return ended ? { outcome: 'peer_ended', peerState: state } : { outcome: 'task_ended' };
      }
      delay = interval;
    } catch (err) {
      deps.log.info('peer.poll_failed', {
        taskId: task.id,
        peerId,
        error: String((err as Error).message).slice(0, 200),
      });
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
    await sleep(delay, opts.signal);
  }
}

/** Ends the task (and its subtree) with reason `peer_ended`; false when it had ended already. */
async function endForPeer(deps: PeerTaskDeps, taskId: string, state: TerminalState, peer: Peer, peerTaskId: string) {
  const events = await deps.db.write(async (tx) => {
    const task = await deps.tasks.get(taskId, tx);
    if (!task || isTerminal(task.state)) return null;
    const now = deps.clock.now();
    const result = await deps.tasks.endTree(task.id, { state, reason: 'peer_ended', at: now }, tx);
    await deps.audit.append(
      {
        type: 'task.ended',
        result: 'allowed',
        userId: task.userId,
        clientId: task.agentId,
        actorChain: task.actorChain,
        taskId: task.id,
        delegationId: task.delegationId,
        audience: peer.endpoint,
        reason: 'peer_ended',
        details: {
          state,
          peerId: peer.id,
          peerTask: peerTaskId,
          endedTasks: result.endedTaskIds.length,
          revokedTokens: result.revoked.length,
        },
      },
      now,
      tx,
    );
    return result.revoked.map((r) => ({ ...r, taskId: task.id, at: now }));
  });
  if (events === null) return false;
  deps.taskService.flush(events);
  return true;
}

/** The token to present: the caller's, or a task token Errand issues for the peer audience (cached). */
function tokenSource(deps: PeerTaskDeps, task: Task, peer: Peer, given: FollowOptions['token']) {
  if (typeof given === 'string') return async () => given;
  if (given) return given;
  let cached: { token: string; until: number } | null = null;
  return async (): Promise<string> => {
    const now = deps.clock.now();
    if (cached && cached.until > now) return cached.token;
    const agent = await deps.clients.get(task.agentId);
    if (!agent) throw new Error('the task agent is not registered');
    const issued = await deps.exchange.exchangeOnBehalf({
      client: agent,
      actor: null,
      // Errand calls the peer itself: no agent authenticated in this request, so no assurance level is claimed.
      actorAssurance: null,
      subject: { delegationId: task.delegationId },
      audience: peer.endpoint,
      scope: null,
      tools: null,
      task: { taskId: task.id, ttl: null, externalIds: {} },
      requestId: newId('req').slice(4),
    });
    cached = { token: issued.access_token, until: now + Math.max(issued.expires_in - 30, 1) };
    return cached.token;
  };
}

/** fetch for the SDK client: only the registered endpoint, SSRF rules, no redirects, bounded. */
function peerFetch(deps: PeerTaskDeps, peer: Peer, token: () => Promise<string>): typeof fetch {
  return async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    if (canonicalizeResource(url) !== peer.endpoint) throw new Error('the peer client calls only the peer endpoint');
    // Checked before each call; the endpoint passed the same check at registration.
    await assertPublicUrl(url, 'the peer endpoint', deps.allowPrivate);
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${await token()}`);
    const res = await fetch(input, {
      ...init,
      headers,
      redirect: 'manual',
      signal: AbortSignal.timeout(deps.timeoutMs),
    });
    if (res.status >= 300 && res.status < 400) throw new Error(`the peer answered with a redirect (${res.status})`);
    const body = await readCapped(res, MAX_RESPONSE_BYTES);
    return new Response([204, 205, 304].includes(res.status) ? null : body, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  };
}

async function readCapped(res: Response, max: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      total += chunk.length;
      if (total > max) throw new Error(`the peer response exceeds ${max} bytes`);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks, total);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The follower's dependencies from the application's. */
export function peerTaskDeps(
  deps: Pick<Engine, 'db' | 'tasks' | 'taskService' | 'exchange' | 'clients' | 'audit' | 'clock' | 'log' | 'config'>,
): PeerTaskDeps {
  return {
    db: deps.db,
    peers: new PeerStore(deps.db),
    tasks: deps.tasks,
    taskService: deps.taskService,
    exchange: deps.exchange,
    clients: deps.clients,
    audit: deps.audit,
    clock: deps.clock,
    log: deps.log,
    allowPrivate: deps.config.fetch.allowPrivate,
    timeoutMs: deps.config.fetch.timeoutMs,
  };
}
