import { Layout } from '../components/layout.js';

export function AdminHomePage(props: { user: { username: string; role: string }; csrf: string }) {
  return (
    <Layout title="Home" user={props.user} csrf={props.csrf}>
      <div class="card">
        <h1>Signed in as {props.user.username}</h1>
        <p>
          Role: <strong>{props.user.role}</strong>
        </p>
        <p class="muted">
          Administrators manage clients, resources, users and signing keys through the admin API at{' '}
          <code>/api/admin</code> (see the README).
        </p>
      </div>
    </Layout>
  );
}
