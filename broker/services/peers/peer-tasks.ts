/**
 * Following a peer's task: an Errand task whose external ids name a task at an A2A peer
 * (`{ peer: <peer id>, peer_task: <A2A task id> }`) ends when the peer's task reaches a terminal
 * state (A2A §7.3), with the reason `peer_ended`; ending it revokes its tokens as any end does.
 */

import { AgentCard, TaskState } from '@a2a-js/sdk';
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import { canonicalizeResource } from '@errand/protocol';
import type { Db } from '../../../db/open.js';
import type { ClientStore } from '../../../db/stores/client-store.js';
import { type Peer, PeerStore } from '../../../db/stores/peer-store.js';
import type { TaskStore } from '../../../db/stores/task-store.js';
import { OAuthError } from '../../core/errors.js';
import type { Metrics } from '../../core/metrics.js';
import type { Clock } from '../../core/ports.js';
import { isLive, isTerminal, type Task, type TerminalState } from '../../core/task.js';
import type { Engine } from '../../engine.js';
import { safeFetch } from '../../identity/safe-fetch.js';
import type { Logger } from '../../log.js';
import { newId } from '../../tokens/random.js';
import type { ExchangeService } from '../exchange-token.js';
import type { TaskService } from '../tasks.js';
import { describeCard } from './peer-card.js';

/** The external-id keys that link an Errand task to a peer's task. */
export const PEER_LINK = { peer: 'peer', task: 'peer_task' } as const;
const MAX_RESPONSE_BYTES = 1024 * 1024;
const MAX_BACKOFF_MS = 60_000;

export interface PeerTaskDeps {
  db: Db;
  peers: Pick<PeerStore, 'get'>;
  tasks: TaskStore;
  taskService: Pick<TaskService, 'endForPeer'>;
  exchange: Pick<ExchangeService, 'exchangeOnBehalf'>;
  clients: Pick<ClientStore, 'get'>;
  clock: Clock;
  log: Logger;
  allowPrivate: boolean;
  timeoutMs: number;
  /** Counts the fetches to the peer when given. */
  metrics?: Metrics;
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
        // The one cascade of every task end (TaskService), with reason `peer_ended`.
        const ended = await deps.taskService.endForPeer(task.id, state, {
          peerId: peer.id,
          peerTaskId,
          audience: peer.endpoint,
        });
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

/**
 * fetch for the SDK client: only the registered endpoint, through Errand's SSRF-safe fetch (address
 * checked and the connection pinned to it, no redirects, bounded in time and size).
 */
function peerFetch(deps: PeerTaskDeps, peer: Peer, token: () => Promise<string>): typeof fetch {
  return async (input, init) => {
    const request = new Request(input, init);
    if (canonicalizeResource(request.url) !== peer.endpoint)
      throw new Error('the peer client calls only the peer endpoint');
    if (request.method !== 'GET' && request.method !== 'POST')
      throw new Error('the peer client sends GET or POST only');
    const headers: Record<string, string> = {};
    request.headers.forEach((value, name) => {
      headers[name] = value;
    });
    headers.authorization = `Bearer ${await token()}`;
    const res = await safeFetch(request.url, {
      method: request.method,
      accept: request.headers.get('accept') ?? 'application/json',
      headers,
      ...(request.method === 'POST' ? { body: new Uint8Array(await request.arrayBuffer()) } : {}),
      // The SDK reads JSON-RPC errors and HTTP statuses itself.
      acceptStatus: () => true,
      maxBytes: MAX_RESPONSE_BYTES,
      timeoutMs: deps.timeoutMs,
      allowPrivate: deps.allowPrivate,
      ...(deps.metrics ? { observe: { kind: 'peer', metrics: deps.metrics } } : {}),
    });
    return new Response([204, 205, 304].includes(res.status) ? null : new Uint8Array(res.body), {
      status: res.status,
      headers: res.headers,
    });
  };
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
  deps: Pick<Engine, 'db' | 'tasks' | 'taskService' | 'exchange' | 'clients' | 'clock' | 'log' | 'config' | 'metrics'>,
): PeerTaskDeps {
  return {
    db: deps.db,
    peers: new PeerStore(deps.db),
    tasks: deps.tasks,
    taskService: deps.taskService,
    exchange: deps.exchange,
    clients: deps.clients,
    clock: deps.clock,
    log: deps.log,
    allowPrivate: deps.config.fetch.allowPrivate,
    timeoutMs: deps.config.fetch.timeoutMs,
    metrics: deps.metrics,
  };
}
