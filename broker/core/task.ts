/** Tasks follow A2A's task states (A2A §4.1.3); the last four are terminal. */
export const TASK_STATES = [
  'submitted',
  'working',
  'input-required',
  'auth-required',
  'completed',
  'canceled',
  'failed',
  'rejected',
] as const;
export type TaskState = (typeof TASK_STATES)[number];
export type TerminalState = 'completed' | 'canceled' | 'failed' | 'rejected';

/** Why a task ended, recorded on the task and in audit. */
export type EndReason =
  | 'finished'
  | 'ended_by_agent'
  | 'ended_by_user'
  | 'ended_by_admin'
  | 'deadline_exceeded'
  | 'delegation_revoked'
  | 'agent_disabled'
  /** An administrator deleted the agent. */
  | 'agent_deleted'
  /** Right-sizing or certification narrowed the delegation the task runs under. */
  | 'delegation_reduced'
  | 'parent_ended'
  | 'peer_ended'
  /** The user's access token an on-behalf-of task was started from was revoked. */
  | 'subject_revoked';

export interface Task {
  id: string;
  delegationId: string;
  userId: string;
  agentId: string;
  /** Actor ids from this task's agent up to the delegated agent (current first). */
  actorChain: string[];
  parentTaskId: string | null;
  rootTaskId: string;
  depth: number;
  state: TaskState;
  createdAt: number;
  deadline: number;
  endedAt: number | null;
  endReason: EndReason | null;
  externalIds: Record<string, string>;
  /** On-behalf-of tasks: the `jti` of the user's access token they were started from. */
  subjectJti?: string | null;
}

/** Whether a state is terminal (no token is issued for the task again). */
export function isTerminal(state: TaskState): state is TerminalState {
  return state === 'completed' || state === 'canceled' || state === 'failed' || state === 'rejected';
}

/** Whether a task still works at `now`: not terminal and before its deadline. */
export function isLive(task: Pick<Task, 'state' | 'deadline'>, now: number): boolean {
  return !isTerminal(task.state) && now < task.deadline;
}

const NEXT: Record<TaskState, readonly TaskState[]> = {
  submitted: ['working', 'input-required', 'auth-required', 'completed', 'canceled', 'failed', 'rejected'],
  working: ['input-required', 'auth-required', 'completed', 'canceled', 'failed'],
  'input-required': ['working', 'auth-required', 'completed', 'canceled', 'failed'],
  'auth-required': ['working', 'input-required', 'completed', 'canceled', 'failed', 'rejected'],
  completed: [],
  canceled: [],
  failed: [],
  rejected: [],
};

/** Whether a task may move from one state to another (terminal states are final). */
export function canTransition(from: TaskState, to: TaskState): boolean {
  return from === to ? !isTerminal(from) : NEXT[from].includes(to);
}
