import type {
  PolicyCheckView,
  PolicyVersionView,
  ShadowDecisionView,
} from '../../broker/services/policy/policy-views.js';
import { ActionForm, Badge, EmptyState, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

const STATUS_BADGE: Record<PolicyVersionView['status'], 'ok' | 'info' | 'muted' | 'risk'> = {
  published: 'ok',
  built_in: 'ok',
  shadow: 'info',
  draft: 'muted',
  retired: 'muted',
};

/** The status label: the built-in default says when it is the one enforced. */
const statusLabel = (v: PolicyVersionView) => (v.status === 'built_in' ? 'built-in default (enforced)' : v.status);

/** Per-version actions: start or stop shadow, publish (which re-runs the version's tests first). */
function VersionActions(props: { v: PolicyVersionView; csrf: string }) {
  const { v, csrf } = props;
  if (v.version === 0) return null;
  const action = `/admin/policies/${v.version}/status`;
  return (
    <div class="actions">
      {v.status === 'draft' || v.status === 'retired' ? (
        <ActionForm
          action={action}
          csrf={csrf}
          label={`Start shadow of version ${v.version}`}
          fields={{ status: 'shadow' }}
        />
      ) : null}
      {v.status === 'shadow' ? (
        <ActionForm
          action={action}
          csrf={csrf}
          label={`Stop shadow of version ${v.version}`}
          fields={{ status: 'draft' }}
        />
      ) : null}
      {v.status !== 'published' ? (
        <ActionForm
          action={action}
          csrf={csrf}
          label={`Publish version ${v.version}`}
          fields={{ status: 'published' }}
        />
      ) : null}
    </div>
  );
}

/** Policy versions, newest first, with what each one is and what can be done with it. */
export function PolicyVersionsPage(props: {
  user: LayoutUser;
  csrf: string;
  versions: PolicyVersionView[];
  shadow: number | null;
  notice?: string;
  error?: string;
}) {
  return (
    <Layout title="Policies" user={props.user} csrf={props.csrf} current="/admin/policies" wide>
      <h1>Organisation policies</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <p>
        Cedar policies asked after the delegation rules at every exchange and hand-off. Write a version, check it
        against its tests, run it in shadow over live traffic, then publish it. Publishing an older version rolls back.
      </p>
      <div class="actions">
        <a class="button" href="/admin/policies/new">
          New version
        </a>
        <a href="/admin/policies/shadow">Shadow decisions{props.shadow ? ` (version ${props.shadow})` : ''}</a>
        <a href="/admin/access">Access explorer</a>
      </div>
      <div class="table-wrap">
        <table class="stack">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Status</th>
              <th scope="col">Comment</th>
              <th scope="col">Saved</th>
              <th scope="col">Tests</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {props.versions.map((v) => (
              <tr data-version={String(v.version)}>
                <td data-label="Version">
                  <a href={`/admin/policies/${v.version}`}>Version {v.version}</a>
                </td>
                <td data-label="Status">
                  <Badge kind={STATUS_BADGE[v.status]}>{statusLabel(v)}</Badge>
                </td>
                <td data-label="Comment">{v.comment ?? ''}</td>
                <td data-label="Saved">{v.created_at === null ? '' : when(v.created_at)}</td>
                <td data-label="Tests">{v.tests.length}</td>
                <td data-label="Actions">
                  <VersionActions v={v} csrf={props.csrf} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Layout>
  );
}

/** Problems Cedar found, per policy id. */
function Problems(props: { problems: PolicyCheckView['problems'] }) {
  return (
    <div class="card" data-check-problems>
      <h2>The policies do not validate</h2>
      <ul>
        {props.problems.map((p) => (
          <li>
            {p.policy ? <code>{p.policy}</code> : 'policy set'}: {p.message}
            {p.help ? <span class="muted"> ({p.help})</span> : null}
          </li>
        ))}
      </ul>
    </div>
  );
}

/** The tests' outcome: one row per test. */
export function CheckResults(props: { check: PolicyCheckView }) {
  const { check } = props;
  if (!check.valid) return <Problems problems={check.problems} />;
  return (
    <section class="card" aria-labelledby="check-heading" data-check-results>
      <h2 id="check-heading">
        Check: valid, {check.passed} test(s) passed, {check.failed} failed
      </h2>
      {check.results.length === 0 ? (
        <p class="muted">No tests: add some below before publishing.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Test</th>
                <th scope="col">Expected</th>
                <th scope="col">Got</th>
                <th scope="col">Result</th>
                <th scope="col">Deciding policies</th>
              </tr>
            </thead>
            <tbody>
              {check.results.map((r) => (
                <tr>
                  <td>{r.name}</td>
                  <td>{r.expect}</td>
                  <td>{r.actual}</td>
                  <td>{r.passed ? <Badge kind="ok">pass</Badge> : <Badge kind="risk">fail</Badge>}</td>
                  <td>{r.policies.join(', ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export interface PolicyEditorValues {
  text: string;
  tests: string;
  comment: string;
}

/** The editor: Cedar text and tests JSON; "Check" runs the tests without saving, "Save as draft" saves. */
export function PolicyEditorPage(props: {
  user: LayoutUser;
  csrf: string;
  values: PolicyEditorValues;
  from: number | null;
  check?: PolicyCheckView;
  error?: string;
}) {
  return (
    <Layout title="New policy version" user={props.user} csrf={props.csrf} current="/admin/policies" wide>
      <h1>New policy version</h1>
      {props.from !== null ? <p class="muted">Starting from version {props.from}.</p> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      {props.check ? <CheckResults check={props.check} /> : null}
      <form method="post" action="/admin/policies/new" class="card">
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="policy-text">Policies (Cedar)</label>
        <textarea id="policy-text" name="text" rows={18} spellcheck={false}>
          {props.values.text}
        </textarea>
        <p class="muted">
          Validated against the schema at <a href="/admin/policies/schema">Cedar schema</a>. Give each policy an{' '}
          <code>@id("…")</code>: denials and test results name it.
        </p>
        <label for="policy-tests">Tests (JSON array)</label>
        <textarea id="policy-tests" name="tests" rows={14} spellcheck={false}>
          {props.values.tests}
        </textarea>
        <label for="policy-comment">Comment</label>
        <input id="policy-comment" name="comment" type="text" maxlength={500} value={props.values.comment} />
        <div class="actions">
          <button type="submit" name="intent" value="check" class="secondary">
            Check
          </button>
          <button type="submit" name="intent" value="save">
            Save as draft
          </button>
          <a href="/admin/policies">Cancel</a>
        </div>
      </form>
    </Layout>
  );
}

/** One saved version: its text, tests and actions. */
export function PolicyVersionPage(props: {
  user: LayoutUser;
  csrf: string;
  version: PolicyVersionView;
  check: PolicyCheckView;
}) {
  const v = props.version;
  return (
    <Layout title={`Policy version ${v.version}`} user={props.user} csrf={props.csrf} current="/admin/policies" wide>
      <h1>Policy version {v.version}</h1>
      <p>
        <Badge kind={STATUS_BADGE[v.status]}>{statusLabel(v)}</Badge> {v.comment ?? ''}
      </p>
      <VersionActions v={v} csrf={props.csrf} />
      <p>
        <a href={`/admin/policies/new?from=${v.version}`}>Edit as a new version</a>
      </p>
      <h2>Policies</h2>
      <pre class="card">
        <code>{v.text}</code>
      </pre>
      <CheckResults check={props.check} />
      <h2>Tests</h2>
      <pre class="card">
        <code>{JSON.stringify(v.tests, null, 2)}</code>
      </pre>
    </Layout>
  );
}

/** The schema policies are validated against. */
export function PolicySchemaPage(props: { user: LayoutUser; csrf: string; schema: string }) {
  return (
    <Layout title="Cedar schema" user={props.user} csrf={props.csrf} current="/admin/policies" wide>
      <h1>Cedar schema</h1>
      <pre class="card">
        <code>{props.schema}</code>
      </pre>
    </Layout>
  );
}

/** What the version in shadow would have decided differently over live traffic. */
export function ShadowDecisionsPage(props: {
  user: LayoutUser;
  csrf: string;
  version: number | null;
  decisions: ShadowDecisionView[];
  names: Map<string, string>;
}) {
  return (
    <Layout title="Shadow decisions" user={props.user} csrf={props.csrf} current="/admin/policies" wide>
      <h1>Shadow decisions{props.version !== null ? ` of version ${props.version}` : ''}</h1>
      {props.version === null ? (
        <EmptyState action={{ href: '/admin/policies', label: 'Policy versions' }}>
          No version is in shadow. Start the shadow of a saved version to see what it would decide differently.
        </EmptyState>
      ) : props.decisions.length === 0 ? (
        <EmptyState>Version {props.version} has decided every request so far as the enforced version did.</EmptyState>
      ) : (
        <div class="table-wrap">
          <table class="stack">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Action</th>
                <th scope="col">Agent or person</th>
                <th scope="col">Resource</th>
                <th scope="col">Enforced</th>
                <th scope="col">Shadow</th>
                <th scope="col">Shadow's policies</th>
              </tr>
            </thead>
            <tbody>
              {props.decisions.map((d) => (
                <tr>
                  <td data-label="When">{when(d.at)}</td>
                  <td data-label="Action">{d.action}</td>
                  <td data-label="Agent or person">{props.names.get(d.principal) ?? d.principal}</td>
                  <td data-label="Resource">{d.resource}</td>
                  <td data-label="Enforced">{d.enforced === 'allow' ? 'allowed' : 'denied'}</td>
                  <td data-label="Shadow">
                    <Badge kind={d.shadow === 'deny' ? 'risk' : 'info'}>
                      {d.shadow === 'deny' ? 'would deny' : 'would allow'}
                    </Badge>
                  </td>
                  <td data-label="Shadow's policies">{d.shadow_policies.join(', ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Layout>
  );
}
