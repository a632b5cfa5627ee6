import type { Finding, FindingKind } from '../../broker/services/findings.js';
import { ActionForm, Badge, EmptyState, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

const SECTIONS: { kind: FindingKind; title: string; intro: string }[] = [
  {
    kind: 'quarantined',
    title: 'Awaiting admission',
    intro:
      'These clients registered themselves (dynamic registration or a metadata document). Until they are admitted they get tokens for public resources only.',
  },
  {
    kind: 'static_secret',
    title: 'Static secrets',
    intro:
      'A static client secret can be copied and replayed from anywhere; move these agents to a key or a workload identity.',
  },
  {
    kind: 'no_owner',
    title: 'Agents without an owner',
    intro: 'No person answers for these agents; name one on the agent’s page.',
  },
];

const clientPath = (id: string) => `/admin/clients/${encodeURIComponent(id)}`;

/** What to do about one finding: its hint and the admin API calls, shown as they would be sent. */
function Steps(props: { finding: Finding }) {
  return (
    <details>
      <summary>How to fix</summary>
      <p>{props.finding.hint}</p>
      <ol>
        {props.finding.steps.map((s) => (
          <li>
            {s.purpose}:{' '}
            <code>
              {s.method} {s.path}
            </code>
            {s.body ? <pre>{JSON.stringify(s.body, null, 2)}</pre> : null}
          </li>
        ))}
      </ol>
    </details>
  );
}

/**
 * Findings (README "Quarantine of new registrations and findings"): clients awaiting admission, with
 * an Admit button each; agents with static secrets, and agents without an owner, with the fix.
 */
export function FindingsPage(props: { user: LayoutUser; csrf: string; findings: Finding[]; notice?: string }) {
  return (
    <Layout title="Findings" user={props.user} csrf={props.csrf} current="/admin/findings" wide>
      <h1>Findings</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.findings.length === 0 ? (
        <EmptyState>
          Nothing to act on: no client awaits admission, no agent uses a static secret, and every agent has an owner.
        </EmptyState>
      ) : null}
      {SECTIONS.map((section) => {
        const rows = props.findings.filter((f) => f.kind === section.kind);
        if (rows.length === 0) return null;
        return (
          <section class="card" aria-labelledby={`findings-${section.kind}`}>
            <h2 id={`findings-${section.kind}`}>
              {section.title} <Badge kind="risk">{String(rows.length)}</Badge>
            </h2>
            <p class="muted">{section.intro}</p>
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Client</th>
                    <th scope="col">Kind</th>
                    <th scope="col">Came in by</th>
                    <th scope="col">{section.kind === 'quarantined' ? 'Quarantined since' : 'What to do'}</th>
                    {section.kind === 'quarantined' ? <th scope="col">Action</th> : null}
                  </tr>
                </thead>
                <tbody>
                  {rows.map((f) => (
                    <tr data-finding={f.kind} data-client-id={f.client.id}>
                      <td>
                        <a href={clientPath(f.client.id)}>{f.client.name}</a>
                        <br />
                        <code class="muted">{f.client.id}</code>
                      </td>
                      <td>{f.client.kind}</td>
                      <td>{f.client.source}</td>
                      <td>
                        {section.kind === 'quarantined' ? when(f.client.quarantinedAt ?? null) : <Steps finding={f} />}
                      </td>
                      {section.kind === 'quarantined' ? (
                        <td>
                          <ActionForm
                            action={`${clientPath(f.client.id)}/admit`}
                            csrf={props.csrf}
                            label={`Admit ${f.client.name}`}
                            fields={{ next: 'findings' }}
                          />
                        </td>
                      ) : null}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
        );
      })}
    </Layout>
  );
}
