import { Layout } from '../components/layout.js';

/** The landing page after sign-in: where to go next. */
export function AdminHomePage(props: {
  user: { username: string; role: 'user' | 'admin' };
  csrf: string;
  pending: number;
}) {
  return (
    <Layout title="Home" user={props.user} csrf={props.csrf}>
      <div class="card">
        <h1>Signed in as {props.user.username}</h1>
        <p>
          Role: <strong>{props.user.role}</strong>
        </p>
        <ul>
          <li>
            <a href="/my/requests">Requests waiting for you</a> ({props.pending})
          </li>
          <li>
            <a href="/my/delegations">What your agents may do</a>
          </li>
          <li>
            <a href="/my/tasks">Tasks running for you</a>
          </li>
          {props.user.role === 'admin' ? (
            <li>
              <a href="/admin/agents">Agents inventory</a>, <a href="/admin/audit">audit log</a>
            </li>
          ) : null}
        </ul>
      </div>
    </Layout>
  );
}
