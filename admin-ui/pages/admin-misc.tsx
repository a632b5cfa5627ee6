import type { KeyInfo } from '../../broker/tokens/key-ring.js';
import type { AuditEvent } from '../../db/stores/audit-store.js';
import { ActionForm, Badge, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

export function KeysPage(props: { user: LayoutUser; csrf: string; keys: KeyInfo[]; notice?: string }) {
  return (
    <Layout title="Signing keys" user={props.user} csrf={props.csrf} current="/admin/keys" wide>
      <h1>Signing keys</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Key id</th>
              <th scope="col">Algorithm</th>
              <th scope="col">Role</th>
              <th scope="col">Signs from</th>
            </tr>
          </thead>
          <tbody>
            {props.keys.map((k) => (
              <tr>
                <td>
                  <code>{k.kid}</code>
                </td>
                <td>{k.alg}</td>
                <td>
                  <Badge kind={k.state === 'current' ? 'ok' : 'info'}>{k.state}</Badge>
                </td>
                <td>{when(k.activatesAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="actions">
        <ActionForm action="/admin/keys/rotate" csrf={props.csrf} label="Rotate now" />
        <span class="muted">The next key signs once caches have had time to see it (ERRAND_JWKS_MAX_AGE).</span>
      </div>
    </Layout>
  );
}

export interface AuditFilterValues {
  agent: string;
  user: string;
  task: string;
  result: string;
  from: string;
  to: string;
}

export function AuditPage(props: {
  user: LayoutUser;
  csrf: string;
  events: AuditEvent[];
  filters: AuditFilterValues;
  query: string;
  error?: string;
}) {
  const f = props.filters;
  return (
    <Layout title="Audit log" user={props.user} csrf={props.csrf} current="/admin/audit" wide>
      <h1>Audit log</h1>
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <form method="get" action="/admin/audit" class="card filters" aria-label="Filters">
        <div>
          <label for="f-agent">Agent</label>
          <input id="f-agent" name="agent" type="text" value={f.agent} />
        </div>
        <div>
          <label for="f-user">User id</label>
          <input id="f-user" name="user" type="text" value={f.user} />
        </div>
        <div>
          <label for="f-task">Task id</label>
          <input id="f-task" name="task" type="text" value={f.task} />
        </div>
        <div>
          <label for="f-result">Result</label>
          <select id="f-result" name="result">
            <option value="" selected={f.result === ''}>
              any
            </option>
            <option value="allowed" selected={f.result === 'allowed'}>
              allowed
            </option>
            <option value="denied" selected={f.result === 'denied'}>
              denied
            </option>
          </select>
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
          <a href={`/admin/audit/export?format=jsonl&${props.query}`}>Export JSONL</a>
          <a href={`/admin/audit/export?format=csv&${props.query}`}>Export CSV</a>
        </div>
      </form>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Event</th>
              <th scope="col">Result</th>
              <th scope="col">For user</th>
              <th scope="col">Actor chain</th>
              <th scope="col">Task</th>
              <th scope="col">Audience and scope</th>
              <th scope="col">Reason</th>
            </tr>
          </thead>
          <tbody>
            {props.events.map((e) => (
              <tr data-event-id={e.id}>
                <td>{when(e.at)}</td>
                <td>{e.type}</td>
                <td>
                  <Badge kind={e.result === 'allowed' ? 'ok' : 'risk'}>{e.result}</Badge>
                </td>
                <td>{e.userId ?? ''}</td>
                <td>{e.actorChain.length ? e.actorChain.join(' ← ') : (e.clientId ?? '')}</td>
                <td>{e.taskId ?? ''}</td>
                <td>
                  {e.audience ?? ''} {e.scope ? <code>{e.scope}</code> : null}
                </td>
                <td>{e.reason ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {props.events.length === 0 ? <p class="muted">No events match.</p> : null}
    </Layout>
  );
}
