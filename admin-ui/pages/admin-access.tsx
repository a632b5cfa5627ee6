import type { AgentAccessView, ResourceAccessView } from '../../broker/services/policy/explorer.js';
import { Badge, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

export interface AccessFormValues {
  agent_id: string;
  user: string;
  resource: string;
  version: string;
}

function Verdict(props: { decision: 'allow' | 'deny' }) {
  return props.decision === 'allow' ? <Badge kind="ok">allowed</Badge> : <Badge kind="risk">denied</Badge>;
}

function AgentResults(props: { view: AgentAccessView }) {
  const { view } = props;
  return (
    <section class="card" aria-labelledby="agent-results" data-access-results>
      <h2 id="agent-results">
        What {view.agent.name} can do for {view.user.username}
      </h2>
      <p class="muted">
        Policy version {view.version === 0 ? '0 (built-in default)' : view.version}. Groups of {view.user.username}:{' '}
        {view.user.groups.length ? view.user.groups.join(', ') : 'none'}.
      </p>
      <div class="table-wrap">
        <table class="stack">
          <thead>
            <tr>
              <th scope="col">Resource</th>
              <th scope="col">Action</th>
              <th scope="col">Delegations</th>
              <th scope="col">Policy</th>
              <th scope="col">Deciding policies</th>
              <th scope="col">Effective</th>
            </tr>
          </thead>
          <tbody>
            {view.resources.flatMap((r) =>
              r.actions.map((a) => (
                <tr data-resource={r.url} data-action={a.action}>
                  <td data-label="Resource">
                    {r.name} <code>{r.url}</code>
                  </td>
                  <td data-label="Action">{a.action}</td>
                  <td data-label="Delegations">
                    {a.action === 'ask_delegation'
                      ? 'not needed'
                      : a.delegations.length === 0
                        ? 'none'
                        : a.delegations.map((d) => (
                            <div>
                              <code>{d.delegation_id}</code> {d.scopes.join(' ')}
                            </div>
                          ))}
                  </td>
                  <td data-label="Policy">
                    <Verdict decision={a.policy.decision} />
                  </td>
                  <td data-label="Deciding policies">
                    {a.policy.policies.length ? a.policy.policies.join(', ') : 'no permit applies'}
                  </td>
                  <td data-label="Effective">{a.allowed ? <Badge kind="ok">yes</Badge> : <Badge>no</Badge>}</td>
                </tr>
              )),
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function ResourceResults(props: { view: ResourceAccessView }) {
  const { view } = props;
  return (
    <section class="card" aria-labelledby="resource-results" data-access-results>
      <h2 id="resource-results">Who can reach {view.resource.name}</h2>
      <p class="muted">Policy version {view.version === 0 ? '0 (built-in default)' : view.version}.</p>
      {view.holders.length === 0 ? (
        <p>No delegation in force covers this resource.</p>
      ) : (
        <div class="table-wrap">
          <table class="stack">
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">For</th>
                <th scope="col">Scopes</th>
                <th scope="col">Until</th>
                <th scope="col">Policy (exchange)</th>
                <th scope="col">Deciding policies</th>
              </tr>
            </thead>
            <tbody>
              {view.holders.map((h) => (
                <tr>
                  <td data-label="Agent">{h.agent_name ?? h.agent_id}</td>
                  <td data-label="For">{h.username ?? h.user_id}</td>
                  <td data-label="Scopes">{h.scopes.join(' ')}</td>
                  <td data-label="Until">{when(h.expires_at)}</td>
                  <td data-label="Policy (exchange)">
                    <Verdict decision={h.policy.decision} />
                  </td>
                  <td data-label="Deciding policies">
                    {h.policy.policies.length ? h.policy.policies.join(', ') : 'no permit applies'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** "What can agent X do for person Z, and why", and "who can reach resource Y". */
export function AccessExplorerPage(props: {
  user: LayoutUser;
  csrf: string;
  values: AccessFormValues;
  agents: { id: string; name: string }[];
  resources: { url: string; name: string }[];
  versions: number[];
  agentView?: AgentAccessView;
  resourceView?: ResourceAccessView;
  error?: string;
}) {
  const v = props.values;
  const versionSelect = (id: string) => (
    <>
      <label for={id}>Policy version</label>
      <select id={id} name="version">
        <option value="" selected={v.version === ''}>
          the enforced one
        </option>
        {props.versions.map((n) => (
          <option value={String(n)} selected={v.version === String(n)}>
            {n === 0 ? '0 (built-in default)' : `version ${n}`}
          </option>
        ))}
      </select>
    </>
  );
  return (
    <Layout title="Access explorer" user={props.user} csrf={props.csrf} current="/admin/access" wide>
      <h1>Access explorer</h1>
      <p class="muted">
        Answers from the delegations in force and the policies, as an exchange made now would be asked (no source
        address, DPoP binding or workload claims: those exist only in a live request).
      </p>
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <div class="filters">
        <form method="get" action="/admin/access" class="card" aria-label="An agent for a person">
          <h2>An agent for a person</h2>
          <label for="access-agent">Agent</label>
          <select id="access-agent" name="agent_id" required>
            <option value="">choose an agent</option>
            {props.agents.map((a) => (
              <option value={a.id} selected={v.agent_id === a.id}>
                {a.name} ({a.id})
              </option>
            ))}
          </select>
          <label for="access-user">Person (username or id)</label>
          <input id="access-user" name="user" type="text" required value={v.user} />
          {versionSelect('access-version-agent')}
          <div class="actions">
            <button type="submit">Explore</button>
          </div>
        </form>
        <form method="get" action="/admin/access" class="card" aria-label="Who can reach a resource">
          <h2>Who can reach a resource</h2>
          <label for="access-resource">Resource</label>
          <select id="access-resource" name="resource" required>
            <option value="">choose a resource</option>
            {props.resources.map((r) => (
              <option value={r.url} selected={v.resource === r.url}>
                {r.name} ({r.url})
              </option>
            ))}
          </select>
          {versionSelect('access-version-resource')}
          <div class="actions">
            <button type="submit">Explore</button>
          </div>
        </form>
      </div>
      {props.agentView ? <AgentResults view={props.agentView} /> : null}
      {props.resourceView ? <ResourceResults view={props.resourceView} /> : null}
    </Layout>
  );
}
