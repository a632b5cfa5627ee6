import type { Client } from '../../broker/core/client.js';
import type { TrustedIssuer } from '../../broker/core/trusted-issuer.js';
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

/** Trusted workload issuers in the console: the list, and one form to add or edit an issuer with its rules. */

export interface RuleValues {
  agent_id: string;
  /** `claim = pattern` lines. */
  match: string;
  assurance: string;
  attestation_claim: string;
  attestation_value: string;
}

export interface IssuerFormValues {
  kind: string;
  name: string;
  issuer: string;
  jwks: string;
  jwks_uri: string;
  audience: string;
  max_lifetime: string;
  rules: RuleValues[];
}

export const EMPTY_RULE: RuleValues = {
  agent_id: '',
  match: '',
  assurance: 'NHI-AAL2',
  attestation_claim: '',
  attestation_value: '',
};

export const EMPTY_ISSUER_FORM: IssuerFormValues = {
  kind: 'oidc',
  name: '',
  issuer: '',
  jwks: '',
  jwks_uri: '',
  audience: '',
  max_lifetime: '3600',
  rules: [],
};

/** The form's values for an existing issuer. */
export function issuerFormValues(t: TrustedIssuer): IssuerFormValues {
  return {
    kind: t.kind,
    name: t.name,
    issuer: t.issuer,
    jwks: t.jwks ? JSON.stringify(t.jwks, null, 2) : '',
    jwks_uri: t.jwksUri ?? '',
    audience: t.audience,
    max_lifetime: String(t.maxLifetime),
    rules: t.rules.map((r) => ({
      agent_id: r.agentId,
      match: Object.entries(r.match)
        .flatMap(([claim, patterns]) => patterns.map((p) => `${claim} = ${p}`))
        .join('\n'),
      assurance: r.assurance,
      attestation_claim: r.attestation?.claim ?? '',
      attestation_value: r.attestation?.value ?? '',
    })),
  };
}

const KIND_LABELS: Record<string, string> = {
  oidc: 'OpenID provider',
  spiffe: 'SPIFFE trust domain',
  kubernetes: 'Kubernetes service accounts',
  ci: 'CI provider (GitHub Actions, GitLab…)',
};

export function TrustedIssuersPage(props: {
  user: LayoutUser;
  csrf: string;
  issuers: TrustedIssuer[];
  agentNames: Map<string, string>;
  notice?: string;
}) {
  return (
    <Layout title="Trusted issuers" user={props.user} csrf={props.csrf} current="/admin/trusted-issuers" wide>
      <h1>Trusted issuers</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      <p class="muted">
        Platforms whose workload tokens Errand accepts instead of an agent's own key, and the rules that map a token's
        claims to an agent registered with workload_federation.
      </p>
      <div class="actions">
        <a class="button" href="/admin/trusted-issuers/new">
          Add a trusted issuer
        </a>
      </div>
      {props.issuers.length === 0 ? (
        <EmptyState action={{ href: '/admin/trusted-issuers/new', label: 'Add the first trusted issuer' }}>
          No trusted issuer yet. Register an agent with “a workload token from a trusted issuer”, then add the platform
          that vouches for it (a CI provider, a Kubernetes cluster, a SPIFFE trust domain or an OpenID provider) with a
          rule naming that agent.
        </EmptyState>
      ) : (
        <div class="table-wrap">
          <table class="stack">
            <thead>
              <tr>
                <th scope="col">Issuer</th>
                <th scope="col">Kind</th>
                <th scope="col">Keys</th>
                <th scope="col">Rules</th>
                <th scope="col">Status</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {props.issuers.map((t) => {
                const path = `/admin/trusted-issuers/${encodeURIComponent(t.id)}`;
                return (
                  <tr data-issuer-id={t.id}>
                    <td data-label="Issuer">
                      <a href={path}>{t.name}</a>
                      <br />
                      <code>{t.issuer}</code>
                    </td>
                    <td data-label="Kind">{KIND_LABELS[t.kind] ?? t.kind}</td>
                    <td data-label="Keys">
                      {t.jwksUri ? <code>{t.jwksUri}</code> : t.jwks ? `${t.jwks.keys.length} static` : 'discovered'}
                    </td>
                    <td data-label="Rules">
                      {t.rules.map((r) => (
                        <div>
                          {props.agentNames.get(r.agentId) ?? r.agentId} <Badge kind="info">{r.assurance}</Badge>
                        </div>
                      ))}
                    </td>
                    <td data-label="Status">
                      <Badge kind={t.status === 'active' ? 'ok' : 'risk'}>{t.status}</Badge>
                      <br />
                      <span class="muted">since {when(t.createdAt)}</span>
                    </td>
                    <td data-label="Actions">
                      <div class="actions">
                        {t.status === 'active' ? (
                          <ConfirmLink action={`${path}/disable`} label={`Disable ${t.name}`} />
                        ) : (
                          <ActionForm action={`${path}/enable`} csrf={props.csrf} label={`Enable ${t.name}`} />
                        )}
                        <ConfirmLink action={`${path}/delete`} label={`Delete ${t.name}`} />
                      </div>
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

function RuleFields(props: { i: number; rule: RuleValues; agents: Client[] }) {
  const { i, rule } = props;
  const id = (name: string) => `r${i}-${name}`;
  return (
    <fieldset class="delegation" aria-label={`Rule ${i + 1}`}>
      <legend>Rule {i + 1}</legend>
      <label for={id('agent')}>Agent</label>
      <select id={id('agent')} name={`rule${i}_agent`}>
        <option value="" selected={!rule.agent_id}>
          (no rule)
        </option>
        {props.agents.map((a) => (
          <option value={a.id} selected={a.id === rule.agent_id}>
            {a.name} ({a.id})
          </option>
        ))}
      </select>
      <label for={id('match')}>Claims to match, one per line: claim = pattern (* within a segment, ** across)</label>
      <textarea id={id('match')} name={`rule${i}_match`} rows={3} spellcheck={false} placeholder="sub = repo:acme/*">
        {rule.match}
      </textarea>
      <label for={id('assurance')}>Assurance</label>
      <select id={id('assurance')} name={`rule${i}_assurance`}>
        <option value="NHI-AAL2" selected={rule.assurance !== 'NHI-AAL3'}>
          NHI-AAL2: an attested workload
        </option>
        <option value="NHI-AAL3" selected={rule.assurance === 'NHI-AAL3'}>
          NHI-AAL3: hardware-anchored key (needs an attestation claim)
        </option>
      </select>
      <label for={id('att-claim')}>Attestation claim (for NHI-AAL3)</label>
      <input id={id('att-claim')} name={`rule${i}_attestation_claim`} type="text" value={rule.attestation_claim} />
      <label for={id('att-value')}>Attestation value</label>
      <input id={id('att-value')} name={`rule${i}_attestation_value`} type="text" value={rule.attestation_value} />
    </fieldset>
  );
}

export function TrustedIssuerFormPage(props: {
  user: LayoutUser;
  csrf: string;
  /** Absent: a new issuer. */
  id?: string;
  values: IssuerFormValues;
  /** Agents registered with workload_federation: the only ones a rule may name. */
  agents: Client[];
  defaultAudience: string;
  notice?: string;
  error?: string;
}) {
  const v = props.values;
  const editing = props.id !== undefined;
  const title = editing ? `Trusted issuer ${v.name}` : 'Add a trusted issuer';
  // Every rule so far and one blank row for the next.
  const rules = [...v.rules, EMPTY_RULE];
  const action = editing
    ? `/admin/trusted-issuers/${encodeURIComponent(props.id ?? '')}`
    : '/admin/trusted-issuers/new';
  return (
    <Layout title={title} user={props.user} csrf={props.csrf} current="/admin/trusted-issuers">
      <p>
        <a href="/admin/trusted-issuers">← Trusted issuers</a>
      </p>
      <h1>{title}</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      {props.agents.length === 0 ? (
        <Notice kind="info">
          A rule names an agent registered with workload_federation, and there is none yet:{' '}
          <a href="/admin/clients/new?kind=agent">add one</a> first.
        </Notice>
      ) : null}
      <form method="post" action={action} class="card">
        <input type="hidden" name="_csrf" value={props.csrf} />
        <input type="hidden" name="rule_count" value={String(rules.length)} />
        <label for="t-kind">Kind</label>
        <select id="t-kind" name="kind" disabled={editing}>
          {Object.entries(KIND_LABELS).map(([value, label]) => (
            <option value={value} selected={v.kind === value}>
              {label}
            </option>
          ))}
        </select>
        <label for="t-name">Name</label>
        <input id="t-name" name="name" type="text" required value={v.name} />
        <label for="t-issuer">Issuer (the tokens' exact iss, or spiffe://trust-domain)</label>
        <input id="t-issuer" name="issuer" type="text" required value={v.issuer} readonly={editing} />
        <label for="t-jwks-uri">Key set URL (jwks_uri; empty: discovered from the issuer's metadata)</label>
        <input id="t-jwks-uri" name="jwks_uri" type="text" value={v.jwks_uri} />
        <label for="t-jwks">or a static key set (JWKS JSON, e.g. a SPIFFE bundle)</label>
        <textarea id="t-jwks" name="jwks" rows={4} spellcheck={false}>
          {v.jwks}
        </textarea>
        <label for="t-audience">Audience its tokens must name</label>
        <input id="t-audience" name="audience" type="text" value={v.audience} placeholder={props.defaultAudience} />
        <label for="t-lifetime">Longest token lifetime accepted (seconds)</label>
        <input id="t-lifetime" name="max_lifetime" type="text" inputmode="numeric" value={v.max_lifetime} />
        {rules.map((rule, i) => (
          <RuleFields i={i} rule={rule} agents={props.agents} />
        ))}
        <p class="muted">Save to get another blank rule. A rule with no agent is dropped.</p>
        <div class="actions">
          <button type="submit">{editing ? 'Save' : 'Add trusted issuer'}</button>
          <a href="/admin/trusted-issuers">Cancel</a>
        </div>
      </form>
    </Layout>
  );
}
