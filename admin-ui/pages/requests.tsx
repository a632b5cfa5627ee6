import type { StoredDelegation } from '../../db/stores/delegation-store.js';
import { assuranceInWords, DelegationControls, type ResourceInfo } from '../components/delegation-controls.js';
import { Badge, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

export interface AgentSummary {
  id: string;
  name: string;
  owner: string | null;
  assurance: string | null;
  staticSecret: boolean;
}

/** One pending request, explained in plain words, with the controls to narrow it and the two answers. */
export function RequestCard(props: {
  d: StoredDelegation;
  agent: AgentSummary;
  csrf: string;
  resources?: Record<string, ResourceInfo>;
}) {
  const { d, agent } = props;
  const headingId = `req-${d.id}`;
  return (
    <article class="card request" data-request-id={d.id} aria-labelledby={headingId}>
      <h2 id={headingId}>{agent.name} asks to act for you</h2>
      {d.bindingMessage ? (
        <p class="binding">
          Message from the agent: <strong>{d.bindingMessage}</strong>
        </p>
      ) : null}
      <dl>
        <dt>Agent</dt>
        <dd>
          {agent.name} <code>{agent.id}</code>
        </dd>
        <dt>Owner</dt>
        <dd>
          {agent.owner ? (
            <>{agent.owner}, who answers for what this agent does</>
          ) : (
            <Badge kind="risk">no owner: nobody answers for this agent</Badge>
          )}
        </dd>
        <dt>Assurance</dt>
        <dd>
          {assuranceInWords(agent.assurance)}{' '}
          {agent.staticSecret ? <Badge kind="risk">static secret: easier to steal than a key</Badge> : null}
        </dd>
        <dt>Asked</dt>
        <dd>
          {when(d.createdAt)} ({d.source === 'ciba' ? 'asynchronous request' : 'consent'})
        </dd>
      </dl>
      <form method="post" action={`/my/requests/${d.id}/approve`}>
        <input type="hidden" name="_csrf" value={props.csrf} />
        <DelegationControls
          asked={d.requested}
          idPrefix={`${d.id}-`}
          {...(props.resources ? { resources: props.resources } : {})}
        />
        <div class="actions">
          <button type="submit">Approve</button>
        </div>
      </form>
      <form method="post" action={`/my/requests/${d.id}/deny`} class="actions">
        <input type="hidden" name="_csrf" value={props.csrf} />
        <button type="submit" class="danger">
          Deny
        </button>
      </form>
    </article>
  );
}

/** Pending requests; new ones appear without a reload (live-requests.js). */
export function RequestsPage(props: {
  user: LayoutUser;
  csrf: string;
  requests: { d: StoredDelegation; agent: AgentSummary }[];
  resources?: Record<string, ResourceInfo>;
  notice?: string;
  /** The delegation just approved: the notice links to it. */
  approvedId?: string;
  error?: string;
}) {
  return (
    <Layout
      title="Requests"
      user={props.user}
      csrf={props.csrf}
      current="/my/requests"
      scripts={['/assets/live-requests.js']}
    >
      <h1>Requests waiting for you</h1>
      {props.notice ? (
        <Notice kind="info">
          {props.notice}{' '}
          {props.approvedId ? <a href={`/my/delegations/${props.approvedId}`}>See what you granted</a> : null}
        </Notice>
      ) : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <p id="no-requests" class="muted" hidden={props.requests.length > 0}>
        No agent is waiting for you. New requests appear here as they arrive.
      </p>
      <section id="requests" aria-live="polite" aria-label="Pending requests">
        {props.requests.map((r) => (
          <RequestCard
            d={r.d}
            agent={r.agent}
            csrf={props.csrf}
            {...(props.resources ? { resources: props.resources } : {})}
          />
        ))}
      </section>
    </Layout>
  );
}

export const LIVE_REQUESTS_SCRIPT = `(() => {
  const list = document.getElementById('requests');
  if (!list) return;
  const empty = document.getElementById('no-requests');
  const cards = () => [...list.querySelectorAll('[data-request-id]')];
  async function tick() {
    try {
      const res = await fetch('/api/me/delegations?status=pending', { credentials: 'same-origin', headers: { accept: 'application/json' } });
      if (res.ok) {
        const { delegations } = await res.json();
        const pending = new Set(delegations.map((d) => d.delegation_id));
        for (const card of cards()) if (!pending.has(card.dataset.requestId)) card.remove();
        const shown = new Set(cards().map((c) => c.dataset.requestId));
        for (const d of [...delegations].reverse()) {
          if (shown.has(d.delegation_id)) continue;
          const html = await fetch('/my/requests/' + encodeURIComponent(d.delegation_id) + '/card', { credentials: 'same-origin' });
          if (html.ok) list.insertAdjacentHTML('afterbegin', await html.text());
        }
        if (empty) empty.hidden = cards().length > 0;
      }
    } catch (e) {}
    setTimeout(tick, 1500);
  }
  setTimeout(tick, 1500);
})();
`;
