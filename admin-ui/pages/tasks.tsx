import type { Task } from '../../broker/core/task.js';
import { isTerminal } from '../../broker/core/task.js';
import { ActionForm, Badge, humanDuration, Layout, type LayoutUser, Notice } from '../components/layout.js';

export interface TaskNode {
  task: Task;
  children: TaskNode[];
  tokens: number;
}

/** Builds trees (roots first, newest first) from a flat list of tasks. */
export function taskForest(tasks: Task[], tokens: Map<string, number>): TaskNode[] {
  const nodes = new Map(
    tasks.map((t) => [t.id, { task: t, children: [] as TaskNode[], tokens: tokens.get(t.id) ?? 0 }]),
  );
  const roots: TaskNode[] = [];
  for (const node of nodes.values()) {
    const parent = node.task.parentTaskId ? nodes.get(node.task.parentTaskId) : undefined;
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  const byCreated = (a: TaskNode, b: TaskNode) => b.task.createdAt - a.task.createdAt;
  for (const n of nodes.values()) n.children.sort(byCreated);
  return roots.sort(byCreated);
}

const STATE_KIND = (t: Task) => (isTerminal(t.state) ? ('muted' as const) : ('ok' as const));

function TaskItem(props: { node: TaskNode; names: Map<string, string>; now: number; csrf: string }) {
  const { task } = props.node;
  const name = (id: string) => props.names.get(id) ?? id;
  const live = !isTerminal(task.state);
  return (
    <li data-task-id={task.id} aria-label={`Task of ${name(task.agentId)}`}>
      <div class="task-line">
        <strong>{name(task.agentId)}</strong>
        <Badge kind={STATE_KIND(task)}>{task.state}</Badge>
        <span class="muted">chain: {task.actorChain.map(name).join(' ← ')}</span>
        <span>tokens: {props.node.tokens}</span>
        <span>
          {live ? `time left: ${humanDuration(task.deadline - props.now)}` : `ended: ${task.endReason ?? ''}`}
        </span>
        {live ? <ActionForm action={`/my/tasks/${task.id}/end`} csrf={props.csrf} label="End task" danger /> : null}
      </div>
      {props.node.children.length ? (
        <ul>
          {props.node.children.map((child) => (
            <TaskItem node={child} names={props.names} now={props.now} csrf={props.csrf} />
          ))}
        </ul>
      ) : null}
    </li>
  );
}

export function TasksPage(props: {
  user: LayoutUser;
  csrf: string;
  forest: TaskNode[];
  names: Map<string, string>;
  now: number;
  notice?: string;
}) {
  return (
    <Layout title="Tasks" user={props.user} csrf={props.csrf} current="/my/tasks" wide>
      <h1>Tasks running for you</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.forest.length === 0 ? <p class="muted">No task has run for you yet.</p> : null}
      {props.forest.map((root) => (
        <section class="card" aria-label={`Task ${root.task.id}`}>
          <p class="muted">
            Task <code>{root.task.id}</code>
          </p>
          <ul class="tree">
            <TaskItem node={root} names={props.names} now={props.now} csrf={props.csrf} />
          </ul>
        </section>
      ))}
    </Layout>
  );
}
