import type { InitialAccessToken } from '../../broker/core/initial-access-token.js';
import { AGENT_GRANTS, initialAccessTokenState } from '../../broker/core/initial-access-token.js';
import { ActionForm, Badge, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

const GRANT_LABELS: Record<string, string> = {
  client_credentials: 'client_credentials',
  'urn:ietf:params:oauth:grant-type:token-exchange': 'token exchange',
  'urn:openid:params:grant-type:ciba': 'CIBA',
};

/**
 * Initial access tokens (RFC 7591 §3) with which agents register themselves at /register. A new
 * token's value is shown once, on the page that answers its creation.
 */
export function RegistrationTokensPage(props: {
  user: LayoutUser;
  csrf: string;
  tokens: InitialAccessToken[];
  now: number;
  issued?: { name: string; value: string };
  notice?: string;
  error?: string;
}) {
  return (
    <Layout title="Agent registration" user={props.user} csrf={props.csrf} current="/admin/registration-tokens" wide>
      <h1>Agent registration</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      {props.issued ? (
        <div class="card" role="status" aria-label="New initial access token">
          <h2>Initial access token for “{props.issued.name}”</h2>
          <p>
            Copy it now: it is shown only once. Agents send it as <code>Authorization: Bearer …</code> to{' '}
            <code>/register</code>.
          </p>
          <p>
            <code id="initial-access-token">{props.issued.value}</code>
          </p>
        </div>
      ) : null}
      <p class="muted">
        Agents that register with one of these tokens wait for approval on the Agents page, unless the token approves
        them automatically.
      </p>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Token</th>
              <th scope="col">State</th>
              <th scope="col">Expires</th>
              <th scope="col">Uses</th>
              <th scope="col">Approval</th>
              <th scope="col">Scopes</th>
              <th scope="col">Grants</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {props.tokens.map((t) => {
              const state = initialAccessTokenState(t, props.now);
              return (
                <tr data-token-id={t.id}>
                  <td>
                    {t.name}
                    <br />
                    <code>{t.id}</code>
                  </td>
                  <td>
                    <Badge kind={state === 'active' ? 'ok' : 'muted'}>{state.replace('_', ' ')}</Badge>
                  </td>
                  <td>{when(t.expiresAt)}</td>
                  <td>
                    {t.uses}
                    {t.maxUses !== null ? ` of ${t.maxUses}` : ''}
                  </td>
                  <td>{t.autoApprove ? <Badge kind="risk">automatic</Badge> : 'by an administrator'}</td>
                  <td>{t.scopes ? t.scopes.join(' ') : 'any'}</td>
                  <td>{t.grantTypes.map((g) => GRANT_LABELS[g] ?? g).join(', ')}</td>
                  <td>
                    {state === 'active' ? (
                      <ActionForm
                        action={`/admin/registration-tokens/${encodeURIComponent(t.id)}/revoke`}
                        csrf={props.csrf}
                        label={`Revoke ${t.name}`}
                        danger
                      />
                    ) : null}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <form method="post" action="/admin/registration-tokens" class="card">
        <h2>Issue an initial access token</h2>
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="iat-name">Name</label>
        <input id="iat-name" name="name" type="text" required maxlength={200} autocomplete="off" />
        <label for="iat-hours">Valid for (hours)</label>
        <input id="iat-hours" name="expires_in_hours" type="number" min={1} max={720} value="24" required />
        <label for="iat-uses">Registrations allowed (empty: no limit)</label>
        <input id="iat-uses" name="max_uses" type="number" min={1} max={100000} />
        <label for="iat-scope">Scopes agents may hold (space-separated; empty: any)</label>
        <input id="iat-scope" name="scope" type="text" autocomplete="off" />
        <fieldset>
          <legend>Grant types agents may use</legend>
          {AGENT_GRANTS.map((g) => (
            <label>
              <input type="checkbox" name="grant_types" value={g} checked /> {GRANT_LABELS[g] ?? g}
            </label>
          ))}
        </fieldset>
        <label>
          <input type="checkbox" name="auto_approve" value="true" /> Approve registered agents automatically
        </label>
        <div class="actions">
          <button type="submit">Issue</button>
        </div>
      </form>
    </Layout>
  );
}
