import { Layout, Notice } from '../components/layout.js';

export function SetupPage(props: { token: string; error?: string; username?: string }) {
  return (
    <Layout title="Set up the first administrator">
      <div class="card">
        <h1>Create the first administrator</h1>
        <p class="muted">
          This one-time link works until an administrator exists. Choose a username and a password of at least 12
          characters.
        </p>
        {props.error ? <Notice kind="error">{props.error}</Notice> : null}
        <form method="post" action="/setup">
          <input type="hidden" name="token" value={props.token} />
          <label for="username">Username</label>
          <input
            id="username"
            name="username"
            type="text"
            autocomplete="username"
            required
            value={props.username ?? ''}
          />
          <label for="password">Password</label>
          <input id="password" name="password" type="password" autocomplete="new-password" required minlength={12} />
          <label for="confirm">Repeat the password</label>
          <input id="confirm" name="confirm" type="password" autocomplete="new-password" required minlength={12} />
          <div class="actions">
            <button type="submit">Create administrator</button>
          </div>
        </form>
      </div>
    </Layout>
  );
}
