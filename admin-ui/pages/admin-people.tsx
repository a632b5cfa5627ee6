import type { User } from '../../db/stores/user-store.js';
import { ActionForm, Badge, ConfirmLink, Layout, type LayoutUser, Notice, when } from '../components/layout.js';

/** People: add accounts; disable or enable them, change their role, set a new password. */
export function PeoplePage(props: {
  user: LayoutUser & { id: string };
  csrf: string;
  users: User[];
  notice?: string;
  error?: string;
}) {
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
              <th scope="col">Status</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {props.users.map((u) => (
              <tr data-user-id={u.id}>
                <td>
                  {u.username} {u.id === props.user.id ? <span class="muted">(you)</span> : null}
                </td>
                <td>{u.role}</td>
                <td>
                  {u.disabledAt === null ? (
                    <Badge kind="ok">active</Badge>
                  ) : (
                    <Badge kind="risk">disabled {when(u.disabledAt)}</Badge>
                  )}
                </td>
                <td>{when(u.createdAt)}</td>
                <td>
                  <div class="actions">
                    <ActionForm
                      action={`/admin/users/${u.id}/role`}
                      csrf={props.csrf}
                      label={u.role === 'admin' ? `Make ${u.username} a user` : `Make ${u.username} an administrator`}
                      fields={{ role: u.role === 'admin' ? 'user' : 'admin' }}
                    />
                    <a href={`/admin/users/${u.id}/password`}>Set a new password for {u.username}</a>
                    <a href={`/admin/users/${u.id}/groups`}>Groups of {u.username}</a>
                    {u.disabledAt === null ? (
                      <ConfirmLink action={`/admin/users/${u.id}/disable`} label={`Disable ${u.username}`} />
                    ) : (
                      <ActionForm
                        action={`/admin/users/${u.id}/enable`}
                        csrf={props.csrf}
                        label={`Enable ${u.username}`}
                      />
                    )}
                  </div>
                </td>
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

/** An administrator sets a new password for someone, to hand over in person. */
export function SetPasswordPage(props: { user: LayoutUser; csrf: string; target: User; error?: string }) {
  return (
    <Layout title="Set a new password" user={props.user} csrf={props.csrf} current="/admin/users">
      <form method="post" action={`/admin/users/${props.target.id}/password`} class="card">
        <h1>Set a new password for {props.target.username}</h1>
        {props.error ? <Notice kind="error">{props.error}</Notice> : null}
        <p>
          Every session of {props.target.username} ends, so whoever knew the old password is signed out. Hand the new
          one over in person; they should change it at once under “Change password”.
        </p>
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="reset-password">New password (12 characters or more)</label>
        <input
          id="reset-password"
          name="password"
          type="password"
          required
          minlength={12}
          autocomplete="new-password"
        />
        <div class="actions">
          <button type="submit">Set password</button>
          <a href="/admin/users">Cancel</a>
        </div>
      </form>
    </Layout>
  );
}

/** Every signed-in person changes their own password here. */
export function ChangePasswordPage(props: { user: LayoutUser; csrf: string; error?: string; notice?: string }) {
  return (
    <Layout title="Change password" user={props.user} csrf={props.csrf} current="/my/password">
      <form method="post" action="/my/password" class="card">
        <h1>Change your password</h1>
        {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
        {props.error ? <Notice kind="error">{props.error}</Notice> : null}
        <p class="muted">You stay signed in here; every other session of yours ends.</p>
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="current-password">Current password</label>
        <input id="current-password" name="current_password" type="password" required autocomplete="current-password" />
        <label for="new-password">New password (12 characters or more)</label>
        <input
          id="new-password"
          name="new_password"
          type="password"
          required
          minlength={12}
          autocomplete="new-password"
        />
        <label for="confirm-password">New password again</label>
        <input
          id="confirm-password"
          name="confirm"
          type="password"
          required
          minlength={12}
          autocomplete="new-password"
        />
        <div class="actions">
          <button type="submit">Change password</button>
        </div>
      </form>
    </Layout>
  );
}
