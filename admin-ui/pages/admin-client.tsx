import { AUTH_METHOD, GRANT_TYPE } from '@errand/protocol';
import { assuranceLevel, type Client } from '../../broker/core/client.js';
import { isQuarantined } from '../../broker/core/quarantine.js';
import type { User } from '../../db/stores/user-store.js';
import { ActionForm, Badge, ConfirmLink, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

/** Creating a client (an agent or a resource server) and its page: details, edits, keys, removal. */

const GRANT_LABELS: [string, string][] = [
  [GRANT_TYPE.clientCredentials, 'client credentials (its own tokens)'],
  [GRANT_TYPE.tokenExchange, 'token exchange (task tokens, RFC 8693)'],
  [GRANT_TYPE.ciba, 'CIBA (asks a person for a delegation)'],
  [GRANT_TYPE.authorizationCode, 'authorization code'],
  [GRANT_TYPE.refreshToken, 'refresh token'],
];

/** What the create form sends back when it has to be shown again. */
export interface ClientFormValues {
  kind: string;
  name: string;
  owner_id: string;
  auth_method: string;
  jwks: string;
  jwks_uri: string;
  scope: string;
  grant_types: string[];
  resources: string;
}

export const EMPTY_CLIENT_FORM: ClientFormValues = {
  kind: 'agent',
  name: '',
  owner_id: '',
  auth_method: AUTH_METHOD.privateKeyJwt,
  jwks: '',
  jwks_uri: '',
  scope: '',
  grant_types: [],
  resources: '',
};

function OwnerSelect(props: { id: string; users: User[]; selected: string | null; none?: string }) {
  return (
    <select id={props.id} name="owner_id">
      <option value="" selected={!props.selected}>
        {props.none ?? '(none)'}
      </option>
      {props.users.map((u) => (
        <option value={u.id} selected={u.id === props.selected}>
          {u.username}
        </option>
      ))}
    </select>
  );
}

function GrantChecks(props: { checked: string[] }) {
  return (
    <fieldset class="tools">
      <legend>Grant types</legend>
      {GRANT_LABELS.map(([value, label]) => (
        <label class="check">
          <input type="checkbox" name="grant_types" value={value} checked={props.checked.includes(value)} />
          {label}
        </label>
      ))}
    </fieldset>
  );
}

function KeyFields(props: { jwks: string; jwksUri: string; idPrefix: string }) {
  return (
    <>
      <label for={`${props.idPrefix}-jwks`}>Public key set (JWKS JSON, or one JWK)</label>
      <textarea id={`${props.idPrefix}-jwks`} name="jwks" rows={6} spellcheck={false}>
        {props.jwks}
      </textarea>
      <label for={`${props.idPrefix}-jwks-uri`}>or the URL where the agent publishes it (jwks_uri)</label>
      <input id={`${props.idPrefix}-jwks-uri`} name="jwks_uri" type="text" value={props.jwksUri} />
    </>
  );
}

export function ClientFormPage(props: {
  user: LayoutUser;
  csrf: string;
  users: User[];
  values: ClientFormValues;
  error?: string;
}) {
  const v = props.values;
  const title =
    v.kind === 'resource_server'
      ? 'Add a resource server'
      : v.kind === 'admin_service'
        ? 'Add an admin service'
        : 'Add an agent';
  return (
    <Layout title={title} user={props.user} csrf={props.csrf} current="/admin/agents">
      <h1>{title}</h1>
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <form method="post" action="/admin/clients/new" class="card">
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="c-kind">Kind</label>
        <select id="c-kind" name="kind">
          <option value="agent" selected={v.kind === 'agent'}>
            agent (acts for people or itself)
          </option>
          <option value="resource_server" selected={v.kind === 'resource_server'}>
            resource server (introspects tokens, exchanges users' tokens)
          </option>
          <option value="admin_service" selected={v.kind === 'admin_service'}>
            admin service (automation calling the admin API with errand:admin tokens)
          </option>
        </select>
        <p class="muted">
          An admin service authenticates with its own key, gets only the errand:admin scope through client credentials,
          and can do everything an administrator can: give it to automation you trust.
        </p>
        <label for="c-name">Name</label>
        <input id="c-name" name="name" type="text" required value={v.name} />
        <label for="c-owner">Owner</label>
        <OwnerSelect id="c-owner" users={props.users} selected={v.owner_id || null} none="(me)" />
        <label for="c-auth">How it authenticates</label>
        <select id="c-auth" name="auth_method">
          <option value={AUTH_METHOD.privateKeyJwt} selected={v.auth_method === AUTH_METHOD.privateKeyJwt}>
            its own key (private_key_jwt)
          </option>
          <option value={AUTH_METHOD.workloadFederation} selected={v.auth_method === AUTH_METHOD.workloadFederation}>
            a workload token from a trusted issuer (workload_federation)
          </option>
        </select>
        <p class="muted">
          For private_key_jwt, paste its public keys or give their URL. A workload_federation agent has no key here: add
          a rule for it under Trusted issuers.
        </p>
        <KeyFields jwks={v.jwks} jwksUri={v.jwks_uri} idPrefix="c" />
        <label for="c-scope">Scopes it may hold (space-separated; empty: whatever its resources offer)</label>
        <input id="c-scope" name="scope" type="text" value={v.scope} />
        <GrantChecks checked={v.grant_types} />
        <p class="muted">
          None ticked: an agent gets client credentials, token exchange and CIBA; a resource server, client credentials.
        </p>
        <label for="c-resources">Resources (one URL per line; for a resource server: the audiences it serves)</label>
        <textarea id="c-resources" name="resources" rows={3} spellcheck={false}>
          {v.resources}
        </textarea>
        <div class="actions">
          <button type="submit">Create</button>
          <a href="/admin/agents">Cancel</a>
        </div>
      </form>
    </Layout>
  );
}

function keysOf(client: Client): string {
  if (client.jwksUri) return client.jwksUri;
  const kids = (client.jwks?.keys ?? []).map((k) => (typeof k.kid === 'string' ? k.kid : '(no kid)'));
  return kids.length ? kids.join(', ') : 'none';
}

export function ClientDetailPage(props: {
  user: LayoutUser;
  csrf: string;
  client: Client;
  users: User[];
  notice?: string;
  error?: string;
}) {
  const c = props.client;
  const path = `/admin/clients/${encodeURIComponent(c.id)}`;
  const owner = props.users.find((u) => u.id === c.ownerId)?.username;
  const hasKeys = c.authMethod === AUTH_METHOD.privateKeyJwt && c.source !== 'cimd';
  return (
    <Layout title={c.name} user={props.user} csrf={props.csrf} current="/admin/agents">
      <p>
        <a href={c.kind === 'agent' ? '/admin/agents' : '/admin/clients'}>
          ← {c.kind === 'agent' ? 'Agents' : 'Clients'}
        </a>
      </p>
      <h1>{c.name}</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <div class="card">
        <dl>
          <dt>Client id</dt>
          <dd>
            <code>{c.id}</code>
          </dd>
          <dt>Kind</dt>
          <dd>{c.kind}</dd>
          <dt>Status</dt>
          <dd>
            <Badge kind={c.status === 'active' ? 'ok' : 'risk'}>{c.status}</Badge>
          </dd>
          <dt>Owner</dt>
          <dd>{owner ?? <Badge kind="risk">no owner</Badge>}</dd>
          <dt>Authenticates with</dt>
          <dd>{c.authMethod}</dd>
          <dt>Keys</dt>
          <dd data-keys>{keysOf(c)}</dd>
          <dt>Assurance</dt>
          <dd>{assuranceLevel(c) ?? '—'}</dd>
          <dt>Created</dt>
          <dd>{when(c.createdAt)}</dd>
          <dt>Last used</dt>
          <dd>{when(c.lastUsedAt)}</dd>
        </dl>
        <div class="actions">
          {c.status === 'active' ? (
            <ConfirmLink action={`${path}/disable`} label={`Disable ${c.name}`} />
          ) : c.status === 'disabled' ? (
            <ActionForm action={`${path}/enable`} csrf={props.csrf} label={`Enable ${c.name}`} />
          ) : null}
          <ConfirmLink action={`${path}/delete`} label={`Delete ${c.name}`} />
        </div>
      </div>

      {isQuarantined(c) ? (
        <section class="card" aria-labelledby="quarantine">
          <h2 id="quarantine">
            Quarantined <Badge kind="risk">since {when(c.quarantinedAt ?? null)}</Badge>
          </h2>
          <p>
            It registered itself ({c.source === 'cimd' ? 'a client metadata document' : 'dynamic registration'}) and may
            get tokens only for public resources until an administrator admits it.
          </p>
          <div class="actions">
            <ActionForm action={`${path}/admit`} csrf={props.csrf} label={`Admit ${c.name}`} />
          </div>
        </section>
      ) : null}

      <form method="post" action={path} class="card">
        <h2>Edit</h2>
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="e-name">Name</label>
        <input id="e-name" name="name" type="text" required value={c.name} />
        <label for="e-owner">Owner</label>
        <OwnerSelect id="e-owner" users={props.users} selected={c.ownerId} />
        <label for="e-scope">Scopes it may hold (space-separated; empty: no limit of its own)</label>
        <input id="e-scope" name="scope" type="text" value={(c.scope ?? []).join(' ')} />
        <GrantChecks checked={c.grantTypes} />
        <label for="e-resources">Resources (one URL per line)</label>
        <textarea id="e-resources" name="resources" rows={3} spellcheck={false}>
          {c.resources.join('\n')}
        </textarea>
        <div class="actions">
          <button type="submit">Save</button>
        </div>
      </form>

      {hasKeys ? (
        <form method="post" action={`${path}/keys`} class="card">
          <h2>Replace keys</h2>
          <p class="muted">
            The new keys replace the old ones at once: an assertion signed with a key that is no longer listed is
            refused. Tokens already issued keep their lifetime.
          </p>
          <input type="hidden" name="_csrf" value={props.csrf} />
          <KeyFields jwks="" jwksUri="" idPrefix="k" />
          <div class="actions">
            <button type="submit">Replace keys</button>
          </div>
        </form>
      ) : null}
    </Layout>
  );
}
