import type { StoredDelegation } from '../../db/stores/delegation-store.js';
import { ActionForm, Badge, humanDuration, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

const STATUS_KIND = { active: 'ok', pending: 'info', denied: 'muted', revoked: 'muted' } as const;

function scopesOf(d: StoredDelegation): string {
  return Object.entries(d.grants)
    .map(([r, s]) => `${r}: ${s.join(' ')}`)
    .join('; ');
}

export function DelegationsPage(props: {
  user: LayoutUser;
  csrf: string;
  list: { d: StoredDelegation; agentName: string }[];
  notice?: string;
}) {
  return (
    <Layout title="Delegations" user={props.user} csrf={props.csrf} current="/my/delegations" wide>
      <h1>What your agents may do</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.list.length === 0 ? (
        <p class="muted">You have not delegated anything yet.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="muted">Your delegations, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">Status</th>
                <th scope="col">Scopes</th>
                <th scope="col">Depth</th>
                <th scope="col">Expires</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {props.list.map(({ d, agentName }) => (
                <tr data-delegation-id={d.id}>
                  <td>
                    <a href={`/my/delegations/${d.id}`}>{agentName}</a>
                  </td>
                  <td>
                    <Badge kind={STATUS_KIND[d.status]}>{d.status}</Badge>
                  </td>
                  <td>{d.status === 'pending' ? 'waiting for you' : scopesOf(d) || '—'}</td>
                  <td>{d.maxDepth}</td>
                  <td>{when(d.expiresAt)}</td>
                  <td>
                    {d.status === 'active' ? (
                      <ActionForm action={`/my/delegations/${d.id}/revoke`} csrf={props.csrf} label="Revoke" danger />
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Layout>
  );
}

export function DelegationPage(props: { user: LayoutUser; csrf: string; d: StoredDelegation; agentName: string }) {
  const { d } = props;
  return (
    <Layout title="Delegation" user={props.user} csrf={props.csrf} current="/my/delegations">
      <div class="card">
        <h1>
          {props.agentName} <Badge kind={STATUS_KIND[d.status]}>{d.status}</Badge>
        </h1>
        <dl>
          <dt>Delegation</dt>
          <dd>
            <code>{d.id}</code>
          </dd>
          <dt>Agent</dt>
          <dd>
            <code>{d.agentId}</code>
          </dd>
          {Object.entries(d.grants).map(([resource, scopes]) => (
            <>
              <dt>Resource</dt>
              <dd>
                <code>{resource}</code>: {scopes.join(' ')}
              </dd>
            </>
          ))}
          {(d.authorizationDetails ?? []).map((t) => (
            <>
              <dt>Tools</dt>
              <dd>
                {t.actions.join(', ')} at <code>{t.locations[0]}</code>
              </dd>
            </>
          ))}
          <dt>Sub-agent levels</dt>
          <dd>{d.maxDepth}</dd>
          <dt>Token lifetime</dt>
          <dd>{humanDuration(d.maxTokenTtl)}</dd>
          <dt>Sub-agents</dt>
          <dd>{d.subAgents ? d.subAgents.join(', ') : 'any'}</dd>
          <dt>Source</dt>
          <dd>
            {d.source === 'ciba'
              ? 'asynchronous request'
              : d.source === 'exchange_rule'
                ? "administrator's exchange rule (on-behalf-of)"
                : 'consent'}
          </dd>
          <dt>Expires</dt>
          <dd>{when(d.expiresAt)}</dd>
          {d.bindingMessage ? (
            <>
              <dt>Message</dt>
              <dd>{d.bindingMessage}</dd>
            </>
          ) : null}
        </dl>
        {d.status === 'active' ? (
          <div class="actions">
            {/* Right-sizing (README "Agent lifecycle"): keep only what the agent used in the last 30 days. */}
            <ActionForm
              action={`/my/delegations/${d.id}/reduce`}
              csrf={props.csrf}
              label="Reduce to what the agent used"
            />{' '}
            <ActionForm
              action={`/my/delegations/${d.id}/revoke`}
              csrf={props.csrf}
              label="Revoke this delegation"
              danger
            />
          </div>
        ) : null}
      </div>
    </Layout>
  );
}
