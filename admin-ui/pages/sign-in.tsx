import { Layout, Notice } from '../components/layout.js';

export function SignInPage(props: {
  csrf: string;
  next: string;
  error?: string;
  username?: string;
  /** Label of the upstream single sign-on provider; null or absent when federation is off. */
  federationName?: string | null;
}) {
  return (
    <Layout title="Sign in">
      <div class="card">
        <h1>Sign in to Errand</h1>
        {props.error ? <Notice kind="error">{props.error}</Notice> : null}
        <form method="post" action="/signin">
          <input type="hidden" name="_csrf" value={props.csrf} />
          <input type="hidden" name="next" value={props.next} />
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
          <input id="password" name="password" type="password" autocomplete="current-password" required />
          <div class="actions">
            <button type="submit">Sign in</button>
          </div>
        </form>
        {props.federationName ? (
          <p class="actions">
            <span class="muted">or</span>
            <a href={`/signin/oidc?next=${encodeURIComponent(props.next)}`}>Sign in with {props.federationName}</a>
          </p>
        ) : null}
      </div>
    </Layout>
  );
}
