import type { Db, Tx } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { RevocationLogStore } from '../../db/stores/revocation-log-store.js';
import type { TaskStore, TasksWhere } from '../../db/stores/task-store.js';
import { type Client, canAct } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { type EndReason, isTerminal, type Task, type TaskState, type TerminalState } from '../core/task.js';
import type { Logger } from '../log.js';

/** Who asks to end a task: an agent in its actor chain, its user, or an administrator. */
export type Ender =
  | { kind: 'agent'; client: Client }
  | { kind: 'user'; userId: string }
  | { kind: 'admin'; userId: string };

/** A followed A2A peer task that reached a terminal state (A2A §7.3): it ends the Errand task that waits for it. */
export interface PeerTaskEnd {
  peerId: string;
  peerTaskId: string;
  /** The peer's endpoint, recorded as the audit event's audience. */
  audience: string;
}

export interface RevocationEvent {
  jti: string;
  audience: string;
  taskId: string | null;
  statusIdx: number | null;
  at: number;
  /**
   * Wall-clock milliseconds when the revocation was written, just before its commit: push delivery
   * is timed from here, in whichever process on the host delivers it (the metric's precision only).
   */
  writtenMs: number;
}

export interface TaskServiceDeps {
  db: Db;
  tasks: TaskStore;
  audit: AuditStore;
  clock: Clock;
  log: Logger;
  /** Where every revoked token is recorded in the revoking transaction, for every process's push channel. */
  revocationLog: Pick<RevocationLogStore, 'append'>;
  /**
   * Called after commit with every token a task end of this process revoked: the push channel reads
   * the log at once instead of at its next poll.
   */
  onRevoked?: (events: RevocationEvent[]) => void;
}

/** The wire view of a task. */
export function taskView(t: Task) {
  return {
    task_id: t.id,
    delegation_id: t.delegationId,
    user_id: t.userId,
    agent_id: t.agentId,
    actor_chain: t.actorChain,
    parent_task_id: t.parentTaskId,
    root_task_id: t.rootTaskId,
    depth: t.depth,
    state: t.state,
    created_at: t.createdAt,
    deadline: t.deadline,
    ended_at: t.endedAt,
    end_reason: t.endReason,
    external_ids: t.externalIds,
  };
}

/** Ending tasks: one cascade (TaskStore.endTree) behind every door. */
export class TaskService {
  constructor(private readonly deps: TaskServiceDeps) {}

  /** Ends a task (and its subtree) for someone allowed to; returns the ended task. */
  async end(by: Ender, taskId: string, state: TerminalState, requestId: string): Promise<Task> {
    const { db, tasks, clock } = this.deps;
    const task = await tasks.get(taskId);
    const allowed =
      task &&
      (by.kind === 'admin' ||
        (by.kind === 'user' && task.userId === by.userId) ||
        // An actor only if it authenticates: anyone can claim to be a public client (RFC 8693 §2.1 policy).
        (by.kind === 'agent' && canAct(by.client) && task.actorChain.includes(by.client.id)));
    // Someone else's task is "not found": its existence is not disclosed.
    if (!task || !allowed) throw new OAuthError('not_found', 'no such task');
    if (isTerminal(task.state)) throw new OAuthError('conflict', `the task has already ended (${task.state})`);
    const reason: EndReason =
      by.kind === 'admin'
        ? 'ended_by_admin'
        : by.kind === 'user'
          ? 'ended_by_user'
          : state === 'completed'
            ? 'finished'
            : 'ended_by_agent';
    const events = await db.write(async (tx) => {
      const now = clock.now();
      return this.endInTx(tx, task, state, reason, now, requestId);
    });
    this.publish(events);
    return (await tasks.get(taskId))!;
  }

  /**
   * Ends a task (and its subtree) because the peer task it follows ended, with reason `peer_ended`.
   * Nobody asks: Errand itself saw the peer's task end, so there is no permission to check. Returns
   * false when the task had already ended.
   */
  async endForPeer(taskId: string, state: TerminalState, peer: PeerTaskEnd): Promise<boolean> {
    const { db, tasks, clock } = this.deps;
    const events = await db.write(async (tx) => {
      const task = await tasks.get(taskId, tx);
      if (!task || isTerminal(task.state)) return null;
      return this.endInTx(tx, task, state, 'peer_ended', clock.now(), null, {
        audience: peer.audience,
        details: { peerId: peer.peerId, peerTask: peer.peerTaskId },
      });
    });
    if (events === null) return false;
    this.publish(events);
    return true;
  }

  /** Moves a live task to a non-terminal state (working, input-required, auth-required). */
  async setState(by: Ender, taskId: string, state: TaskState): Promise<Task> {
    if (isTerminal(state)) throw new OAuthError('invalid_request', 'use end to move a task to a terminal state');
    const task = await this.deps.tasks.get(taskId);
    if (
      !task ||
      (by.kind === 'agent' && !task.actorChain.includes(by.client.id)) ||
      (by.kind === 'user' && task.userId !== by.userId)
    ) {
      throw new OAuthError('not_found', 'no such task');
    }
    const ok = await this.deps.db.write((tx) => this.deps.tasks.setState(taskId, state, tx));
    if (!ok) throw new OAuthError('conflict', 'the task has ended');
    return (await this.deps.tasks.get(taskId))!;
  }

  /**
   * Ends every live task matching a condition (a revoked delegation, a disabled agent) inside the
   * caller's transaction. The caller passes the returned events to `flush` after commit.
   */
  async endWhere(tx: Tx, by: TasksWhere, reason: EndReason, now: number, requestId: string) {
    const live = await this.deps.tasks.liveTasksWhere(by, tx);
    const events: RevocationEvent[] = [];
    const ids = new Set(live.map((t) => t.id));
    // End only the top-most matching tasks; their subtrees go with them.
    for (const task of live.filter((t) => !t.parentTaskId || !ids.has(t.parentTaskId))) {
      events.push(...(await this.endInTx(tx, task, 'canceled', reason, now, requestId)));
    }
    return events;
  }

  /** Publishes what `endWhere` revoked, once its transaction has committed. */
  flush(events: RevocationEvent[]): void {
    this.publish(events);
  }

  /** Ends tasks whose deadline has passed (run by maintenance). */
  async endOverdue(): Promise<number> {
    const { db, tasks, clock } = this.deps;
    const overdue = await tasks.overdue(clock.now());
    let ended = 0;
    for (const task of overdue) {
      const events = await db.write(async (tx) => {
        const fresh = await tasks.get(task.id, tx);
        if (!fresh || isTerminal(fresh.state)) return null;
        return this.endInTx(tx, fresh, 'failed', 'deadline_exceeded', clock.now(), null);
      });
      if (events === null) continue;
      ended += 1;
      this.publish(events);
    }
    return ended;
  }

  private async endInTx(
    tx: Tx,
    task: Task,
    state: TerminalState,
    reason: EndReason,
    now: number,
    requestId: string | null,
    extra: { audience?: string; details?: Record<string, unknown> } = {},
  ) {
    const result = await this.deps.tasks.endTree(task.id, { state, reason, at: now }, tx);
    await this.deps.audit.append(
      {
        type: 'task.ended',
        result: 'allowed',
        userId: task.userId,
        clientId: task.agentId,
        actorChain: task.actorChain,
        taskId: task.id,
        delegationId: task.delegationId,
        reason,
        requestId,
        ...(extra.audience ? { audience: extra.audience } : {}),
        details: {
          state,
          ...extra.details,
          endedTasks: result.endedTaskIds.length,
          revokedTokens: result.revoked.length,
        },
      },
      now,
      tx,
    );
    const writtenMs = Date.now();
    const events = result.revoked.map((r) => ({ ...r, taskId: task.id, at: now, writtenMs }));
    await this.deps.revocationLog.append(events, tx);
    return events;
  }

  private publish(events: RevocationEvent[]): void {
    if (events.length === 0) return;
    this.deps.log.info('tokens.revoked', { count: events.length });
    this.deps.onRevoked?.(events);
  }
}
