import type { KeyInfo } from '../../broker/tokens/key-ring.js';
import type { User } from '../../db/stores/user-store.js';
import { ActionForm, Badge, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

export function KeysPage(props: { user: LayoutUser; csrf: string; keys: KeyInfo[]; notice?: string }) {
  return (
    <Layout title="Signing keys" user={props.user} csrf={props.csrf} current="/admin/keys" wide>
      <h1>Signing keys</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Key id</th>
              <th scope="col">Algorithm</th>
              <th scope="col">Role</th>
              <th scope="col">Signs from</th>
            </tr>
          </thead>
          <tbody>
            {props.keys.map((k) => (
              <tr>
                <td>
                  <code>{k.kid}</code>
                </td>
                <td>{k.alg}</td>
                <td>
                  <Badge kind={k.state === 'current' ? 'ok' : 'info'}>{k.state}</Badge>
                </td>
                <td>{when(k.activatesAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="actions">
        <ActionForm action="/admin/keys/rotate" csrf={props.csrf} label="Rotate now" />
        <span class="muted">The next key signs once caches have had time to see it (ERRAND_JWKS_MAX_AGE).</span>
      </div>
    </Layout>
  );
}

export function UsersPage(props: { user: LayoutUser; csrf: string; users: User[]; notice?: string; error?: string }) {
  return (
    <Layout title="People" user={props.user} csrf={props.csrf} current="/admin/users" wide>
      <h1>People</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Username</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {props.users.map((u) => (
              <tr>
                <td>{u.username}</td>
                <td>{u.role}</td>
                <td>{when(u.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form method="post" action="/admin/users" class="card">
        <h2>Add a person</h2>
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="new-username">Username</label>
        <input id="new-username" name="username" type="text" required autocomplete="off" />
        <label for="new-password">Initial password (12 characters or more)</label>
        <input id="new-password" name="password" type="password" required minlength={12} autocomplete="new-password" />
        <label for="new-role">Role</label>
        <select id="new-role" name="role">
          <option value="user">user</option>
          <option value="admin">admin</option>
        </select>
        <div class="actions">
          <button type="submit">Add</button>
        </div>
      </form>
    </Layout>
  );
}
