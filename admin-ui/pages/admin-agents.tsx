import { assuranceLevel, type Client, credentialKindOf } from '../../broker/core/client.js';
import { isQuarantined } from '../../broker/core/quarantine.js';
import type { User } from '../../db/stores/user-store.js';
import {
  ActionForm,
  Badge,
  ConfirmLink,
  EmptyState,
  Layout,
  type LayoutUser,
  Notice,
  when,
} from '../components/layout.js';

export interface AgentRow {
  client: Client;
  tokens24h: number;
  stale: boolean;
  /** Owner status and suspension (README "Agent lifecycle: owners, certification and right-sizing"). */
  lifecycle?: { owner_status: string; owner_lapsed_at: number | null; suspended_reason: string | null } | null;
}

function CredentialBadge(props: { client: Client }) {
  const kind = credentialKindOf(props.client.authMethod);
  return kind === 'client_secret' ? <Badge kind="risk">static secret</Badge> : <Badge>{kind}</Badge>;
}

/** The inventory of non-human identities an administrator governs. */
export function AgentsPage(props: {
  user: LayoutUser;
  csrf: string;
  rows: AgentRow[];
  users: User[];
  unusedDays: number;
  now: number;
  notice?: string;
}) {
  const owner = (id: string | null) => props.users.find((u) => u.id === id)?.username ?? null;
  return (
    <Layout title="Agents" user={props.user} csrf={props.csrf} current="/admin/agents" wide>
      <h1>Agents</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      <div class="actions">
        <a class="button" href="/admin/clients/new?kind=agent">
          Add an agent
        </a>
      </div>
      {props.rows.length === 0 ? (
        <EmptyState action={{ href: '/admin/clients/new?kind=agent', label: 'Add the first agent' }}>
          No agent is registered yet. Add one with its public key (or its key set's URL), or a workload identity vouched
          for by a trusted issuer; agents can also register themselves with a token from Agent registration.
        </EmptyState>
      ) : (
        <p class="muted">
          Highlighted rows have not been used for {props.unusedDays} days or more. Static secrets are flagged as a risk.
        </p>
      )}
      <div class="table-wrap" hidden={props.rows.length === 0}>
        <table>
          <thead>
            <tr>
              <th scope="col">Agent</th>
              <th scope="col">Owner</th>
              <th scope="col">Kind</th>
              <th scope="col">Credential</th>
              <th scope="col">Assurance</th>
              <th scope="col">Last used</th>
              <th scope="col">Tokens (24 h)</th>
              <th scope="col">Status</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {props.rows.map(({ client, tokens24h, stale, lifecycle }) => (
              <tr class={stale ? 'stale' : undefined} data-client-id={client.id}>
                <td>
                  <a href={`/admin/clients/${encodeURIComponent(client.id)}`}>{client.name}</a>
                  <br />
                  <code>{client.id}</code>
                  <br />
                  <a href={`/admin/clients/${encodeURIComponent(client.id)}/usage`}>Usage</a>
                  {stale ? (
                    <>
                      <br />
                      <Badge kind="risk">unused</Badge>
                    </>
                  ) : null}
                </td>
                <td>
                  <form method="post" action={`/admin/agents/${encodeURIComponent(client.id)}/owner`} class="inline">
                    <input type="hidden" name="_csrf" value={props.csrf} />
                    <label class="sr-only" for={`owner-${client.id}`}>
                      Owner of {client.name}
                    </label>
                    <select id={`owner-${client.id}`} name="owner_id">
                      <option value="" selected={!client.ownerId}>
                        (none)
                      </option>
                      {props.users.map((u) => (
                        <option value={u.id} selected={u.id === client.ownerId}>
                          {u.username}
                        </option>
                      ))}
                    </select>{' '}
                    <button type="submit" class="secondary">
                      Assign
                    </button>
                  </form>
                  {lifecycle && lifecycle.owner_status !== 'active' ? (
                    <Badge kind="risk">
                      {lifecycle.owner_status === 'missing' ? 'no owner' : `owner ${lifecycle.owner_status}`}
                      {lifecycle.owner_lapsed_at ? ` since ${when(lifecycle.owner_lapsed_at)}` : ''}
                    </Badge>
                  ) : owner(client.ownerId) ? null : (
                    <Badge kind="risk">no owner</Badge>
                  )}
                </td>
                <td>{client.kind}</td>
                <td>
                  <CredentialBadge client={client} />
                </td>
                <td>{assuranceLevel(client) ?? '—'}</td>
                <td>{when(client.lastUsedAt)}</td>
                <td>{tokens24h}</td>
                <td>
                  <Badge kind={client.status === 'active' ? 'ok' : 'risk'}>
                    {client.status === 'pending' ? 'awaiting approval' : client.status}
                  </Badge>
                  {lifecycle?.suspended_reason ? (
                    <>
                      <br />
                      <span class="muted">suspended: {lifecycle.suspended_reason.replaceAll('_', ' ')}</span>
                    </>
                  ) : null}
                </td>
                <td>
                  {client.status === 'pending' ? (
                    <>
                      <ActionForm
                        action={`/admin/agents/${encodeURIComponent(client.id)}/decision`}
                        csrf={props.csrf}
                        label={`Approve ${client.name}`}
                        fields={{ decision: 'approve' }}
                      />{' '}
                      <ActionForm
                        action={`/admin/agents/${encodeURIComponent(client.id)}/decision`}
                        csrf={props.csrf}
                        label={`Reject ${client.name}`}
                        danger
                        fields={{ decision: 'reject' }}
                      />
                    </>
                  ) : client.status === 'active' ? (
                    <ConfirmLink
                      action={`/admin/clients/${encodeURIComponent(client.id)}/disable`}
                      label={`Disable ${client.name}`}
                    />
                  ) : (
                    <ActionForm
                      action={`/admin/agents/${encodeURIComponent(client.id)}/status`}
                      csrf={props.csrf}
                      label={`Enable ${client.name}`}
                      fields={{ status: 'active' }}
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Layout>
  );
}

/** Every client and where it came from. */
export function ClientsPage(props: { user: LayoutUser; csrf: string; clients: Client[]; notice?: string }) {
  return (
    <Layout title="Clients" user={props.user} csrf={props.csrf} current="/admin/clients" wide>
      <h1>Clients</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      <div class="actions">
        <a class="button" href="/admin/clients/new?kind=agent">
          Add an agent
        </a>
        <a class="button" href="/admin/clients/new?kind=resource_server">
          Add a resource server
        </a>
        <a href="/admin/clients?quarantined=true">Only clients awaiting admission</a>
      </div>
      {props.clients.length === 0 ? (
        <EmptyState action={{ href: '/admin/clients/new?kind=agent', label: 'Add the first agent' }}>
          No client is registered yet: agents, resource servers and MCP clients appear here. Add one, or let MCP clients
          register themselves (dynamic registration or a client metadata document).
        </EmptyState>
      ) : null}
      <div class="table-wrap" hidden={props.clients.length === 0}>
        <table>
          <thead>
            <tr>
              <th scope="col">Client</th>
              <th scope="col">Kind</th>
              <th scope="col">Registered by</th>
              <th scope="col">Credential</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
            </tr>
          </thead>
          <tbody>
            {props.clients.map((c) => (
              <tr data-client-id={c.id}>
                <td>
                  <a href={`/admin/clients/${encodeURIComponent(c.id)}`}>{c.name}</a>
                  <br />
                  <code>{c.id}</code>
                </td>
                <td>{c.kind}</td>
                <td>
                  <Badge kind="info">
                    {{ admin: 'administrator', dcr: 'dynamic registration', cimd: 'metadata document' }[c.source]}
                  </Badge>
                </td>
                <td>
                  <CredentialBadge client={c} />
                </td>
                <td>
                  {c.status}
                  {isQuarantined(c) ? (
                    <>
                      {' '}
                      <Badge kind="risk">quarantined</Badge>
                    </>
                  ) : null}
                </td>
                <td>{when(c.createdAt)}</td>
                <td>{when(c.lastUsedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Layout>
  );
}
