import type { User } from '../../db/stores/user-store.js';
import { Layout, type LayoutUser, Notice } from '../components/layout.js';

/** A person's groups for policies: the local list, and what the upstream provider last sent. */
export function UserGroupsPage(props: {
  user: LayoutUser;
  csrf: string;
  target: User;
  local: string[];
  upstream: string[];
  notice?: string;
  error?: string;
}) {
  const t = props.target;
  return (
    <Layout title={`Groups of ${t.username}`} user={props.user} csrf={props.csrf} current="/admin/users">
      <form method="post" action={`/admin/users/${t.id}/groups`} class="card">
        <h1>Groups of {t.username}</h1>
        {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
        {props.error ? <Notice kind="error">{props.error}</Notice> : null}
        <p class="muted">
          Policies see a person's groups as <code>principal in Errand::Group::"name"</code> (or{' '}
          <code>context.user in …</code>).
        </p>
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="groups">Groups (one per line)</label>
        <textarea id="groups" name="groups" rows={6}>
          {props.local.join('\n')}
        </textarea>
        <p>
          From single sign-on (replaced at each sign-in):{' '}
          {props.upstream.length ? props.upstream.map((g) => <code>{g}</code>) : <span class="muted">none</span>}
        </p>
        <div class="actions">
          <button type="submit">Save groups</button>
          <a href="/admin/users">Back to people</a>
        </div>
      </form>
    </Layout>
  );
}
