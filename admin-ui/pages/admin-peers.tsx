import type { Peer } from '../../db/stores/peer-store.js';
import { ActionForm, Badge, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

/** "oauth2" for `{ oauth2SecurityScheme: {…} }` (A2A 1.0) or `{ type: "oauth2" }` (0.3). */
function schemeKind(value: unknown): string {
  if (typeof value !== 'object' || value === null) return 'unknown';
  const v = value as Record<string, unknown>;
  if (typeof v.type === 'string') return v.type;
  const key = Object.keys(v).find((k) => k.endsWith('SecurityScheme'));
  return key ? key.replace(/SecurityScheme$/, '').replace(/Auth$/, '') : 'unknown';
}

/** A2A peers: agents registered from their Agent Card, each a resource tokens can be issued for. */
export function PeersPage(props: {
  user: LayoutUser;
  csrf: string;
  peers: Peer[];
  notice?: string;
  error?: string;
  cardUrl?: string;
}) {
  return (
    <Layout title="A2A peers" user={props.user} csrf={props.csrf} current="/admin/peers" wide>
      <h1>A2A peers</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <p class="muted">
        Each peer's JSON-RPC endpoint is a resource: delegations and task tokens can name it. Unsigned cards are flagged
        as a risk: nothing shows that the card is the one its owner published.
      </p>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Peer</th>
              <th scope="col">Card URL</th>
              <th scope="col">Endpoint</th>
              <th scope="col">Signature</th>
              <th scope="col">Skills</th>
              <th scope="col">Security schemes</th>
              <th scope="col">Updated</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {props.peers.map((p) => (
              <tr data-peer-id={p.id}>
                <td>
                  {p.name}
                  <br />
                  <code>{p.id}</code>
                </td>
                <td>
                  <code>{p.cardUrl}</code>
                </td>
                <td>
                  <code>{p.endpoint}</code>
                </td>
                <td>
                  {p.signatureVerified ? (
                    <>
                      <Badge kind="ok">signature verified</Badge>
                      <br />
                      <code>{p.signatureKid}</code>
                    </>
                  ) : (
                    <Badge kind="risk">unsigned</Badge>
                  )}
                </td>
                <td>
                  {p.skills.length === 0 ? (
                    <span class="muted">none</span>
                  ) : (
                    p.skills.map((s) => (
                      <div>
                        {s.name || s.id} {s.scope ? <code>{s.scope}</code> : <Badge kind="muted">no scope</Badge>}
                      </div>
                    ))
                  )}
                </td>
                <td>
                  {Object.entries(p.security.schemes).map(([name, scheme]) => (
                    <div>
                      {name} <Badge kind="info">{schemeKind(scheme)}</Badge>
                    </div>
                  ))}
                  {Object.keys(p.security.schemes).length === 0 ? <span class="muted">none declared</span> : null}
                </td>
                <td>{when(p.updatedAt)}</td>
                <td>
                  <ActionForm
                    action={`/admin/peers/${encodeURIComponent(p.id)}/refresh`}
                    csrf={props.csrf}
                    label={`Refresh ${p.name}`}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form method="post" action="/admin/peers" class="card">
        <h2>Register a peer</h2>
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="peer-card-url">Agent Card URL</label>
        <input
          id="peer-card-url"
          name="card_url"
          type="text"
          inputmode="url"
          required
          autocomplete="off"
          placeholder="https://agent.example/.well-known/agent-card.json"
          value={props.cardUrl ?? ''}
        />
        <p class="muted">
          Errand fetches the card over https (no redirects, at most 64 KB), checks its signature when it has one, and
          registers its JSON-RPC endpoint as a resource.
        </p>
        <div class="actions">
          <button type="submit">Register</button>
        </div>
      </form>
    </Layout>
  );
}
