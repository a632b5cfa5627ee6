import { AUDIT_EVENT_TYPES } from '../../broker/services/audit-events.js';
import type { Names } from '../../broker/services/oversight.js';
import type { AuditEvent } from '../../db/stores/audit-store.js';
import { Badge, EmptyState, Layout, type LayoutUser, Notice, when } from '../components/layout.js';
import { Named } from './admin-oversight.js';

export interface AuditFilterValues {
  type: string;
  agent: string;
  user: string;
  task: string;
  result: string;
  from: string;
  to: string;
}

/** A select over known values that keeps a filtered value it does not know (a deleted agent's id). */
function Choice(props: { id: string; name: string; value: string; any: string; options: [string, string][] }) {
  const known = props.value === '' || props.options.some(([v]) => v === props.value);
  return (
    <select id={props.id} name={props.name}>
      <option value="" selected={props.value === ''}>
        {props.any}
      </option>
      {known ? null : (
        <option value={props.value} selected>
          {props.value}
        </option>
      )}
      {props.options.map(([value, label]) => (
        <option value={value} selected={value === props.value}>
          {label}
        </option>
      ))}
    </select>
  );
}

/** Everything an event carries beyond its summary, shown when the row is opened. */
function EventDetails(props: { e: AuditEvent }) {
  const e = props.e;
  const rows: [string, string][] = [
    ['event id', e.id],
    ['user id', e.userId ?? ''],
    ['client id', e.clientId ?? ''],
    ['actor chain', e.actorChain.join(' ← ')],
    ['task', e.taskId ?? ''],
    ['delegation', e.delegationId ?? ''],
    ['request', e.requestId ?? ''],
    ...Object.entries(e.details).map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  ];
  return (
    <details>
      <summary>Details</summary>
      <dl>
        {rows
          .filter(([, v]) => v !== '')
          .map(([k, v]) => (
            <>
              <dt>{k}</dt>
              <dd>
                <code>{v}</code>
              </dd>
            </>
          ))}
      </dl>
    </details>
  );
}

/**
 * The audit log: filters (event type, agent, person, task, result, time), names beside ids, details
 * collapsed. At narrow widths each row becomes a block (`table.stack`), so the page never scrolls
 * sideways.
 */
export function AuditPage(props: {
  user: LayoutUser;
  csrf: string;
  events: AuditEvent[];
  filters: AuditFilterValues;
  query: string;
  names: Names;
  error?: string;
}) {
  const f = props.filters;
  const filtered = Object.values(f).some((v) => v !== '');
  const byName = (m: Map<string, string>) =>
    [...m].sort((a, b) => a[1].localeCompare(b[1])).map(([id, name]): [string, string] => [id, name]);
  const agent = (id: string) => props.names.clients.get(id) ?? id;
  return (
    <Layout title="Audit log" user={props.user} csrf={props.csrf} current="/admin/audit" wide>
      <h1>Audit log</h1>
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <form method="get" action="/admin/audit" class="card filters" aria-label="Filters">
        <div>
          <label for="f-type">Event type</label>
          <Choice
            id="f-type"
            name="type"
            value={f.type}
            any="any event"
            options={AUDIT_EVENT_TYPES.map((t) => [t, t])}
          />
        </div>
        <div>
          <label for="f-agent">Agent</label>
          <Choice id="f-agent" name="agent" value={f.agent} any="any agent" options={byName(props.names.clients)} />
        </div>
        <div>
          <label for="f-user">Person</label>
          <Choice id="f-user" name="user" value={f.user} any="anyone" options={byName(props.names.users)} />
        </div>
        <div>
          <label for="f-task">Task id</label>
          <input id="f-task" name="task" type="text" value={f.task} />
        </div>
        <div>
          <label for="f-result">Result</label>
          <Choice
            id="f-result"
            name="result"
            value={f.result}
            any="any"
            options={[
              ['allowed', 'allowed'],
              ['denied', 'denied'],
            ]}
          />
        </div>
        <div>
          <label for="f-from">From (UTC)</label>
          <input id="f-from" name="from" type="datetime-local" value={f.from} />
        </div>
        <div>
          <label for="f-to">To (UTC)</label>
          <input id="f-to" name="to" type="datetime-local" value={f.to} />
        </div>
        <div class="actions">
          <button type="submit">Filter</button>
          <a href="/admin/audit">Clear</a>
          <a href={`/admin/audit/export?format=jsonl&${props.query}`}>Export JSONL</a>
          <a href={`/admin/audit/export?format=csv&${props.query}`}>Export CSV</a>
        </div>
      </form>
      {props.events.length === 0 ? (
        filtered ? (
          <p class="muted">No events match these filters.</p>
        ) : (
          <EmptyState action={{ href: '/admin/clients/new?kind=agent', label: 'Add an agent' }}>
            Nothing has been recorded yet. Sign-ins, registrations, delegations, tokens and every administrative change
            are recorded here as they happen: add an agent to start.
          </EmptyState>
        )
      ) : (
        <div class="table-wrap">
          <table class="stack audit">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event</th>
                <th scope="col">Who</th>
                <th scope="col">Task and resource</th>
                <th scope="col">More</th>
              </tr>
            </thead>
            <tbody>
              {props.events.map((e) => {
                const chain = e.actorChain.length ? e.actorChain : e.clientId ? [e.clientId] : [];
                return (
                  <tr data-event-id={e.id} data-event-type={e.type}>
                    <td data-label="Time">{when(e.at)}</td>
                    <td data-label="Event">
                      <span data-type>{e.type}</span>{' '}
                      <Badge kind={e.result === 'allowed' ? 'ok' : 'risk'}>{e.result}</Badge>
                      {e.reason ? <div class="muted">{e.reason}</div> : null}
                    </td>
                    <td data-label="Who">
                      {e.userId ? (
                        <div>
                          <Named name={props.names.users.get(e.userId)} id={e.userId} />
                        </div>
                      ) : null}
                      {chain.length ? <div class="muted">{chain.map(agent).join(' ← ')}</div> : null}
                    </td>
                    <td data-label="Task and resource">
                      {e.taskId ? <code>{e.taskId}</code> : null}
                      {e.audience ? <div>{e.audience}</div> : null}
                      {e.scope ? <code>{e.scope}</code> : null}
                    </td>
                    <td>
                      <EventDetails e={e} />
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
