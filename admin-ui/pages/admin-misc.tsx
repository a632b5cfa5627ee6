import type { KeyInfo } from '../../broker/tokens/key-ring.js';
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
