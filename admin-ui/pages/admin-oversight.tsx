import type { Client } from '../../broker/core/client.js';
import { isTerminal, TASK_STATES, type Task } from '../../broker/core/task.js';
import type { Names } from '../../broker/services/oversight.js';
import type { StoredDelegation } from '../../db/stores/delegation-store.js';
import type { User } from '../../db/stores/user-store.js';
import { Badge, ConfirmLink, EmptyState, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

/** An administrator's view of every task and every delegation, across people. */

export interface OversightFilters {
  user: string;
  agent: string;
  status: string;
}

/** A name with its id below it, or the bare id when the name is unknown (a deleted agent). */
export function Named(props: { name: string | undefined; id: string }) {
  return props.name ? (
    <>
      {props.name}
      <br />
      <code class="muted">{props.id}</code>
    </>
  ) : (
    <code>{props.id}</code>
  );
}

function Filters(props: {
  action: string;
  filters: OversightFilters;
  users: User[];
  agents: Client[];
  statuses: string[];
  statusLabel: string;
}) {
  const f = props.filters;
  return (
    <form method="get" action={props.action} class="card filters" aria-label="Filters">
      <div>
        <label for="f-user">Person</label>
        <select id="f-user" name="user">
          <option value="">anyone</option>
          {props.users.map((u) => (
            <option value={u.id} selected={u.id === f.user}>
              {u.username}
            </option>
          ))}
        </select>
      </div>
      <div>
        <label for="f-agent">Agent</label>
        <select id="f-agent" name="agent">
          <option value="">any agent</option>
          {props.agents.map((a) => (
            <option value={a.id} selected={a.id === f.agent}>
              {a.name}
            </option>
          ))}
        </select>
      </div>
      <div>
        <label for="f-status">{props.statusLabel}</label>
        <select id="f-status" name="status">
          <option value="">any</option>
          {props.statuses.map((s) => (
            <option value={s} selected={s === f.status}>
              {s}
            </option>
          ))}
        </select>
      </div>
      <div class="actions">
        <button type="submit">Filter</button>
        <a href={props.action}>Clear</a>
      </div>
    </form>
  );
}

const filtered = (f: OversightFilters) => Boolean(f.user || f.agent || f.status);

export function AdminTasksPage(props: {
  user: LayoutUser;
  csrf: string;
  tasks: Task[];
  names: Names;
  users: User[];
  agents: Client[];
  filters: OversightFilters;
  now: number;
  notice?: string;
  error?: string;
}) {
  const agent = (id: string) => props.names.clients.get(id) ?? id;
  return (
    <Layout title="All tasks" user={props.user} csrf={props.csrf} current="/admin/tasks" wide>
      <h1>All tasks</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <Filters
        action="/admin/tasks"
        filters={props.filters}
        users={props.users}
        agents={props.agents}
        statuses={['live', 'ended', ...TASK_STATES]}
        statusLabel="State"
      />
      {props.tasks.length === 0 ? (
        filtered(props.filters) ? (
          <p class="muted">No task matches these filters.</p>
        ) : (
          <EmptyState action={{ href: '/admin/agents', label: 'See the agents' }}>
            No task has run yet. A task starts when an agent exchanges a person's delegation for a task token; people
            approve delegations under Requests.
          </EmptyState>
        )
      ) : (
        <div class="table-wrap">
          <table class="stack">
            <thead>
              <tr>
                <th scope="col">Task</th>
                <th scope="col">For</th>
                <th scope="col">Actor chain</th>
                <th scope="col">State</th>
                <th scope="col">Started</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {props.tasks.map((t) => {
                const live = !isTerminal(t.state);
                return (
                  <tr data-task-id={t.id}>
                    <td data-label="Task">
                      <code>{t.id}</code>
                      {t.parentTaskId ? (
                        <>
                          <br />
                          <span class="muted">
                            sub-task of <code>{t.parentTaskId}</code>
                          </span>
                        </>
                      ) : null}
                    </td>
                    <td data-label="For">
                      <Named name={props.names.users.get(t.userId)} id={t.userId} />
                    </td>
                    <td data-label="Actor chain">{t.actorChain.map(agent).join(' ← ')}</td>
                    <td data-label="State">
                      <Badge kind={live ? 'ok' : 'muted'}>{t.state}</Badge>
                      {live ? null : <span class="muted"> {t.endReason ?? ''}</span>}
                    </td>
                    <td data-label="Started">
                      {when(t.createdAt)}
                      <br />
                      <span class="muted">{live ? `deadline ${when(t.deadline)}` : `ended ${when(t.endedAt)}`}</span>
                    </td>
                    <td data-label="Actions">
                      {live ? (
                        <ConfirmLink
                          action={`/admin/tasks/${encodeURIComponent(t.id)}/end`}
                          label="End task"
                          name={`End task ${t.id}`}
                        />
                      ) : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Layout>
  );
}

export function AdminDelegationsPage(props: {
  user: LayoutUser;
  csrf: string;
  delegations: StoredDelegation[];
  names: Names;
  users: User[];
  agents: Client[];
  filters: OversightFilters;
  notice?: string;
  error?: string;
}) {
  return (
    <Layout title="All delegations" user={props.user} csrf={props.csrf} current="/admin/delegations" wide>
      <h1>All delegations</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <Filters
        action="/admin/delegations"
        filters={props.filters}
        users={props.users}
        agents={props.agents}
        statuses={['pending', 'active', 'denied', 'revoked']}
        statusLabel="Status"
      />
      {props.delegations.length === 0 ? (
        filtered(props.filters) ? (
          <p class="muted">No delegation matches these filters.</p>
        ) : (
          <EmptyState action={{ href: '/admin/agents', label: 'See the agents' }}>
            No delegation yet. An agent asks a person for one (CIBA or the consent page); the person approves it under
            Requests, and it is listed here.
          </EmptyState>
        )
      ) : (
        <div class="table-wrap">
          <table class="stack">
            <thead>
              <tr>
                <th scope="col">Delegation</th>
                <th scope="col">From</th>
                <th scope="col">To agent</th>
                <th scope="col">Grants</th>
                <th scope="col">Status</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {props.delegations.map((d) => {
                const grants = d.status === 'pending' ? d.requested.grants : d.grants;
                return (
                  <tr data-delegation-id={d.id}>
                    <td data-label="Delegation">
                      <code>{d.id}</code>
                    </td>
                    <td data-label="From">
                      <Named name={props.names.users.get(d.userId)} id={d.userId} />
                    </td>
                    <td data-label="To agent">
                      <Named name={props.names.clients.get(d.agentId)} id={d.agentId} />
                    </td>
                    <td data-label="Grants">
                      {Object.entries(grants).map(([resource, scopes]) => (
                        <div>
                          <code>{resource}</code> {scopes.join(' ')}
                        </div>
                      ))}
                    </td>
                    <td data-label="Status">
                      <Badge kind={d.status === 'active' ? 'ok' : d.status === 'pending' ? 'info' : 'muted'}>
                        {d.status}
                      </Badge>
                      <br />
                      <span class="muted">
                        {d.status === 'revoked' ? `revoked ${when(d.revokedAt)}` : `expires ${when(d.expiresAt)}`}
                      </span>
                    </td>
                    <td data-label="Actions">
                      {d.status === 'active' || d.status === 'pending' ? (
                        <ConfirmLink
                          action={`/admin/delegations/${encodeURIComponent(d.id)}/revoke`}
                          label="Revoke"
                          name={`Revoke delegation ${d.id}`}
                        />
                      ) : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Layout>
  );
}
