import type { ItemSnapshot } from '../../broker/services/certification.js';
import type { AgentUsage, Split } from '../../broker/services/usage.js';
import type { Campaign, CampaignItem } from '../../db/stores/lifecycle-store.js';
import { ActionForm, Badge, EmptyState, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

/** The console's agent lifecycle pages (README "Agent lifecycle: owners, certification and right-sizing"). */

const snap = (i: CampaignItem) => i.snapshot as ItemSnapshot;

/** "granted but unused" of a snapshot, as `resource#scope` findings. */
function unusedOf(s: ItemSnapshot): string[] {
  return s.usage.delegations.flatMap((d) =>
    Object.entries(d.resources).flatMap(([r, x]) => x.unused.map((scope) => `${r} ${scope}`)),
  );
}

function DecisionBadge(props: { decision: CampaignItem['decision'] }) {
  if (!props.decision) return <Badge kind="muted">to attest</Badge>;
  return (
    <Badge kind={props.decision === 'keep' ? 'ok' : props.decision === 'lapsed' ? 'risk' : 'info'}>
      {props.decision}
    </Badge>
  );
}

function Snapshot(props: { s: ItemSnapshot }) {
  const unused = unusedOf(props.s);
  return (
    <>
      {props.s.static_secret ? <Badge kind="risk">static secret</Badge> : <Badge>{props.s.credential_kind}</Badge>}{' '}
      {props.s.usage.delegations.length} delegation(s); last used {when(props.s.usage.last_used_at)}
      {unused.length > 0 ? (
        <>
          <br />
          <span class="muted">Granted but unused: {unused.join(', ')}</span>
        </>
      ) : null}
    </>
  );
}

export function CampaignsPage(props: {
  user: LayoutUser;
  csrf: string;
  campaigns: Campaign[];
  error?: string;
  notice?: string;
}) {
  return (
    <Layout title="Certification" user={props.user} csrf={props.csrf} current="/admin/certifications" wide>
      <h1>Certification campaigns</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <p class="muted">
        Each active agent's owner attests keep, reduce or remove before the deadline; agents not attested by then are
        suspended and their tasks end.
      </p>
      <form method="post" action="/admin/certifications" class="card">
        <input type="hidden" name="_csrf" value={props.csrf} />
        <h2>Open a campaign</h2>
        <label for="c-name">Name</label>
        <input id="c-name" name="name" required maxlength={200} />
        <label for="c-deadline">Deadline (days from now)</label>
        <input id="c-deadline" name="deadline_days" type="number" min={1} max={365} value="14" required />
        <label for="c-usage">Usage window (days)</label>
        <input id="c-usage" name="usage_days" type="number" min={1} max={365} value="30" required />
        <button type="submit">Open campaign</button>
      </form>
      {props.campaigns.length === 0 ? (
        <EmptyState>No campaign has been opened yet.</EmptyState>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Campaign</th>
                <th scope="col">Status</th>
                <th scope="col">Opened</th>
                <th scope="col">Deadline</th>
              </tr>
            </thead>
            <tbody>
              {props.campaigns.map((c) => (
                <tr>
                  <td>
                    <a href={`/admin/certifications/${encodeURIComponent(c.id)}`}>{c.name}</a>
                  </td>
                  <td>
                    <Badge kind={c.status === 'open' ? 'info' : 'muted'}>{c.status}</Badge>
                  </td>
                  <td>{when(c.createdAt)}</td>
                  <td>{when(c.deadline)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Layout>
  );
}

export function CampaignPage(props: {
  user: LayoutUser;
  csrf: string;
  campaign: Campaign;
  items: CampaignItem[];
  notice?: string;
  error?: string;
}) {
  const c = props.campaign;
  const base = `/api/admin/certification-campaigns/${encodeURIComponent(c.id)}/export`;
  return (
    <Layout title={c.name} user={props.user} csrf={props.csrf} current="/admin/certifications" wide>
      <h1>{c.name}</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <p>
        <Badge kind={c.status === 'open' ? 'info' : 'muted'}>{c.status}</Badge> Deadline {when(c.deadline)}; usage over
        the last {c.usageDays} days. Export: <a href={`${base}?format=csv`}>CSV</a> ·{' '}
        <a href={`${base}?format=json`}>JSON</a>
      </p>
      {c.status === 'open' ? (
        <div class="actions">
          <ActionForm
            action={`/admin/certifications/${encodeURIComponent(c.id)}/close`}
            csrf={props.csrf}
            label="Close now"
            danger
          />
        </div>
      ) : null}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Agent</th>
              <th scope="col">Owner</th>
              <th scope="col">Snapshot</th>
              <th scope="col">Decision</th>
            </tr>
          </thead>
          <tbody>
            {props.items.map((i) => (
              <tr data-agent-id={i.agentId}>
                <td>
                  {snap(i).agent_name}
                  <br />
                  <code>{i.agentId}</code>
                </td>
                <td>
                  {snap(i).owner_username ?? '—'}{' '}
                  {snap(i).owner_status !== 'active' ? <Badge kind="risk">owner {snap(i).owner_status}</Badge> : null}
                </td>
                <td>
                  <Snapshot s={snap(i)} />
                </td>
                <td>
                  <DecisionBadge decision={i.decision} /> {i.decidedAt ? when(i.decidedAt) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Layout>
  );
}

/** The signed-in person's agents to certify. */
export function MyCertificationsPage(props: {
  user: LayoutUser;
  csrf: string;
  items: CampaignItem[];
  notice?: string;
  error?: string;
}) {
  return (
    <Layout title="Certify agents" user={props.user} csrf={props.csrf} current="/my/certifications" wide>
      <h1>Your agents to certify</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      {props.items.length === 0 ? (
        <EmptyState>No agent of yours is waiting for certification.</EmptyState>
      ) : (
        <>
          <p class="muted">
            Keep: it still needs what it holds. Reduce: its delegations keep only what it used. Remove: it is disabled
            and its tasks end. An agent you do not attest by the deadline is suspended.
          </p>
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Agent</th>
                  <th scope="col">What it holds and uses</th>
                  <th scope="col">Attest</th>
                </tr>
              </thead>
              <tbody>
                {props.items.map((i) => {
                  const name = snap(i).agent_name;
                  const action = `/my/certifications/${encodeURIComponent(i.id)}/attest`;
                  return (
                    <tr data-agent-id={i.agentId}>
                      <td>
                        {name}
                        <br />
                        <code>{i.agentId}</code>
                      </td>
                      <td>
                        <Snapshot s={snap(i)} />
                      </td>
                      <td>
                        <ActionForm
                          action={action}
                          csrf={props.csrf}
                          label={`Keep ${name}`}
                          fields={{ decision: 'keep' }}
                        />{' '}
                        <ActionForm
                          action={action}
                          csrf={props.csrf}
                          label={`Reduce ${name}`}
                          fields={{ decision: 'reduce' }}
                        />{' '}
                        <ActionForm
                          action={action}
                          csrf={props.csrf}
                          label={`Remove ${name}`}
                          danger
                          fields={{ decision: 'remove' }}
                        />
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        </>
      )}
    </Layout>
  );
}

function SplitCell(props: { s: Split }) {
  return (
    <>
      {props.s.used.length ? <span>{props.s.used.join(' ')}</span> : <span class="muted">nothing used</span>}
      {props.s.unused.length ? (
        <>
          <br />
          <Badge kind="risk">unused</Badge> {props.s.unused.join(' ')}
        </>
      ) : null}
    </>
  );
}

/** The right-sizing view of one agent: granted vs used per delegation, with one-click reduction. */
export function UsagePage(props: {
  user: LayoutUser;
  csrf: string;
  agentName: string;
  usage: AgentUsage;
  policy: string;
  notice?: string;
  error?: string;
}) {
  const u = props.usage;
  return (
    <Layout title={`Usage of ${props.agentName}`} user={props.user} csrf={props.csrf} current="/admin/agents" wide>
      <h1>Usage of {props.agentName}</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <p>
        Last {u.days} days (token records reach back to {when(u.observedFrom)}). Last used {when(u.lastUsedAt)}.{' '}
        {u.hasUnused ? <Badge kind="risk">granted but unused</Badge> : <Badge kind="ok">uses what it holds</Badge>}
      </p>
      <p>
        Resources: <SplitCell s={u.resources} />
      </p>
      {u.delegations.length === 0 ? (
        <EmptyState>The agent holds no active delegation.</EmptyState>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Delegation</th>
                <th scope="col">Resource</th>
                <th scope="col">Scopes used / unused</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {u.delegations.map((d) =>
                Object.entries(d.resources).map(([resource, s], n) => (
                  <tr data-delegation-id={d.delegationId}>
                    <td>{n === 0 ? <code>{d.delegationId}</code> : null}</td>
                    <td>{resource}</td>
                    <td>
                      <SplitCell s={s} />
                    </td>
                    <td>
                      {n === 0 && Object.values(d.resources).some((x) => x.unused.length > 0) ? (
                        <ActionForm
                          action={`/admin/delegations/${encodeURIComponent(d.delegationId)}/reduce`}
                          csrf={props.csrf}
                          label={`Reduce ${d.delegationId} to what was used`}
                          fields={{ days: String(u.days) }}
                        />
                      ) : null}
                    </td>
                  </tr>
                )),
              )}
            </tbody>
          </table>
        </div>
      )}
      {props.policy ? (
        <>
          <h2>Suggested organisation policy (Cedar)</h2>
          <p class="muted">Text to paste into the policy engine; nothing is applied from here.</p>
          <div class="table-wrap">
            <pre>{props.policy}</pre>
          </div>
        </>
      ) : null}
    </Layout>
  );
}
