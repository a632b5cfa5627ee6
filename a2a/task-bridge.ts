import { randomUUID } from 'node:crypto';
import {
  type AgentCard,
  type CancelTaskRequest,
  type ListTasksRequest,
  type ListTasksResponse,
  Role,
  type Task,
  TaskState,
} from '@a2a-js/sdk';
import { TaskNotCancelableError } from '@a2a-js/sdk/errors';
import {
  type AgentExecutor,
  DefaultRequestHandler,
  type ExtendedAgentCardProvider,
  type ServerCallContext,
  type TaskStore,
  type User,
} from '@a2a-js/sdk/server';
import { isTerminal, type TerminalState } from '../broker/core/task.js';
import type { Engine } from '../broker/engine.js';
import type { Caller } from '../broker/services/resource-access.js';
import { newId } from '../broker/tokens/random.js';

/** Where an A2A task records the Errand task it stands for (its `metadata`, set by Errand only). */
export const ERRAND_TASK_KEY = 'errand_task_id';
/** The external-id key of an Errand task started by an A2A task (TaskDetail.externalIds). */
export const A2A_EXTERNAL_ID = 'a2a';
const REQUEST_ID = 'errand.requestId';

/**
 * The SDK's view of a verified caller. Tasks are scoped by `userName`: the agent and the subject
 * its token speaks for, so two users of one public client never see each other's tasks.
 */
export class A2aCaller implements User {
  constructor(readonly caller: Caller) {}
  get isAuthenticated(): boolean {
    return true;
  }
  get userName(): string {
    return JSON.stringify([this.caller.client.id, this.caller.subject]);
  }
}

/** The verified caller and request id of a call; the route sets both before the SDK runs. */
export function callerOf(context: ServerCallContext): { caller: Caller; requestId: string } {
  const user = context.user;
  // The route authenticates every request; a call without an Errand caller is a wiring bug.
  if (!(user instanceof A2aCaller)) throw new Error('an A2A call reached Errand without a verified caller');
  const requestId = context.state.get(REQUEST_ID);
  return { caller: user.caller, requestId: typeof requestId === 'string' ? requestId : newId('req').slice(4) };
}

export function setRequestId(context: ServerCallContext, requestId: string): void {
  context.state.set(REQUEST_ID, requestId);
}

const TO_ERRAND: Partial<Record<TaskState, TerminalState>> = {
  [TaskState.TASK_STATE_COMPLETED]: 'completed',
  [TaskState.TASK_STATE_CANCELED]: 'canceled',
  [TaskState.TASK_STATE_FAILED]: 'failed',
  [TaskState.TASK_STATE_REJECTED]: 'rejected',
};
const TO_A2A: Record<TerminalState, TaskState> = {
  completed: TaskState.TASK_STATE_COMPLETED,
  canceled: TaskState.TASK_STATE_CANCELED,
  failed: TaskState.TASK_STATE_FAILED,
  rejected: TaskState.TASK_STATE_REJECTED,
};

/** The A2A state for an Errand terminal state. */
export function a2aStateOf(state: TerminalState): TaskState {
  return TO_A2A[state];
}

/** Whether an A2A task is in a terminal state (A2A §4.1.3). */
export function isTerminalA2a(task: Task | undefined): boolean {
  const state = task?.status?.state;
  return state !== undefined && TO_ERRAND[state] !== undefined;
}

/** The Errand task an A2A task stands for, if any. */
export function errandTaskIdOf(task: Task | undefined): string | null {
  const id = task?.metadata?.[ERRAND_TASK_KEY];
  return typeof id === 'string' ? id : null;
}

export type BridgeDeps = Pick<Engine, 'agentOps' | 'clock' | 'log'>;

/**
 * A2A tasks are Errand tasks (README "A2A agent"). This store keeps the A2A view (`inner`: the
 * database, scoped to the caller) and keeps both sides in step:
 * - an A2A task saved in a terminal state ends its Errand task first (agent kind, same state), so
 *   the task's tokens are revoked before anyone sees the A2A task as ended;
 * - an A2A task loaded while its Errand task has ended elsewhere (user, admin, deadline) takes the
 *   Errand task's terminal state.
 */
export class ErrandTaskStore implements TaskStore {
  constructor(
    private readonly deps: BridgeDeps,
    private readonly inner: TaskStore,
  ) {}

  async load(taskId: string, context: ServerCallContext): Promise<Task | undefined> {
    const task = await this.inner.load(taskId, context);
    const errandId = errandTaskIdOf(task);
    if (!task || !errandId || isTerminalA2a(task)) return task;
    const errandTask = await this.deps.agentOps.heldTask(callerOf(context).caller, errandId);
    if (!errandTask || !isTerminal(errandTask.state)) return task;
    const ended: Task = {
      ...task,
      status: {
        state: TO_A2A[errandTask.state],
        message: {
          messageId: randomUUID(),
          contextId: task.contextId,
          taskId: task.id,
          role: Role.ROLE_AGENT,
          parts: [
            {
              content: { $case: 'text', value: `The Errand task ended (${errandTask.endReason ?? errandTask.state}).` },
              mediaType: 'text/plain',
              filename: '',
              metadata: undefined,
            },
          ],
          metadata: undefined,
          extensions: [],
          referenceTaskIds: [],
        },
        timestamp: new Date((errandTask.endedAt ?? this.deps.clock.now()) * 1000).toISOString(),
      },
    };
    await this.inner.save(ended, context);
    return ended;
  }

  async save(task: Task, context: ServerCallContext): Promise<void> {
    const state = task.status?.state;
    const end = state === undefined ? undefined : TO_ERRAND[state];
    const errandId = errandTaskIdOf(task);
    if (end && errandId) await this.endErrandTask(task, errandId, end, context);
    await this.inner.save(task, context);
  }

  list(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    return this.inner.list(params, context);
  }

  private async endErrandTask(task: Task, errandId: string, state: TerminalState, context: ServerCallContext) {
    const { caller, requestId } = callerOf(context);
    const errandTask = await this.deps.agentOps.heldTask(caller, errandId);
    // Only the Errand task this A2A task started, and only once.
    if (!errandTask || errandTask.externalIds[A2A_EXTERNAL_ID] !== task.id || isTerminal(errandTask.state)) return;
    const ended = await this.deps.agentOps.endTask(caller, { taskId: errandId, state }, requestId);
    // Ended meanwhile by someone else: the A2A task follows.
    if (ended.ok) this.deps.log.info('a2a.task_ended', { taskId: errandId, a2aTaskId: task.id, state, requestId });
    else this.deps.log.info('a2a.task_end_skipped', { taskId: errandId, reason: ended.refusal.error, requestId });
  }
}

/**
 * The SDK's request handler over the bridged store. `CancelTask` on a task already in a terminal
 * state (canceled included, which the SDK answers with the task) is `TaskNotCancelableError`
 * (A2A §3.1.5, §5.4), decided after the bridge has caught up with the Errand task.
 */
export class ErrandRequestHandler extends DefaultRequestHandler {
  constructor(
    card: AgentCard,
    private readonly store: ErrandTaskStore,
    executor: AgentExecutor,
    extendedCard: ExtendedAgentCardProvider,
  ) {
    super(card, store, executor, undefined, undefined, undefined, extendedCard);
  }

  override async cancelTask(params: CancelTaskRequest, context: ServerCallContext): Promise<Task> {
    if (params.id && isTerminalA2a(await this.store.load(params.id, context))) {
      throw new TaskNotCancelableError(`Task not cancelable: ${params.id}`);
    }
    return super.cancelTask(params, context);
  }
}
