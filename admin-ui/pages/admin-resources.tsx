import type { Resource } from '../../db/stores/client-store.js';
import { Badge, ConfirmLink, EmptyState, Layout, type LayoutUser, Notice } from '../components/layout.js';

const SCOPES_HINT = 'One scope per line: the scope, a space, then what it allows in plain words (optional).';

/** Resources: what tokens are issued for, each with a name and a description per scope. */
export function ResourcesPage(props: {
  user: LayoutUser;
  csrf: string;
  resources: Resource[];
  builtIn: (url: string) => boolean;
  notice?: string;
  error?: string;
  form?: { url: string; name: string; scopes: string; public?: boolean };
}) {
  return (
    <Layout title="Resources" user={props.user} csrf={props.csrf} current="/admin/resources" wide>
      <h1>Resources</h1>
      {props.notice ? <Notice kind="info">{props.notice}</Notice> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      {props.resources.every((r) => props.builtIn(r.url)) ? (
        <EmptyState action={{ href: '#add-resource', label: 'Add the first resource' }}>
          No resources of your own yet, only Errand's built-in endpoints. A resource is an API or MCP server agents get
          tokens for: add it with its URL, a name people recognise and its scopes, each described in plain words for the
          approval page.
        </EmptyState>
      ) : null}
      {props.resources.length === 0 ? null : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">URL</th>
                <th scope="col">Scopes</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {props.resources.map((r) => (
                <tr data-resource-id={r.id}>
                  <td>
                    {r.name} {props.builtIn(r.url) ? <Badge kind="info">built in</Badge> : null}
                  </td>
                  <td>
                    <code>{r.url}</code>
                  </td>
                  <td>
                    <ul class="scopes">
                      {r.scopes.map((s) => (
                        <li>
                          <code>{s}</code> {r.scopeDescriptions?.[s] ?? <span class="muted">no description</span>}
                        </li>
                      ))}
                    </ul>
                  </td>
                  <td>
                    <div class="actions">
                      <a href={`/admin/resources/${r.id}`}>Edit {r.name}</a>
                      {props.builtIn(r.url) ? null : (
                        <ConfirmLink action={`/admin/resources/${r.id}/delete`} label={`Delete ${r.name}`} />
                      )}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <form method="post" action="/admin/resources" class="card" id="add-resource">
        <h2>Add a resource</h2>
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="res-url">URL (what tokens name as their audience)</label>
        <input id="res-url" name="url" type="text" required value={props.form?.url ?? ''} />
        <label for="res-name">Name</label>
        <input id="res-name" name="name" type="text" required value={props.form?.name ?? ''} />
        <label for="res-scopes">Scopes</label>
        <textarea id="res-scopes" name="scopes" rows={4} cols={60} required aria-describedby="res-scopes-hint">
          {props.form?.scopes ?? ''}
        </textarea>
        <p class="muted" id="res-scopes-hint">
          {SCOPES_HINT} For example: <code>notes:read Read your notes</code>
        </p>
        <PublicCheck checked={props.form?.public ?? false} id="res-public" />
        <div class="actions">
          <button type="submit">Add resource</button>
        </div>
      </form>
    </Layout>
  );
}

/** The resource's `public` flag (README "Quarantine of new registrations and findings"). */
function PublicCheck(props: { checked: boolean; id: string }) {
  return (
    <label class="check" for={props.id}>
      <input id={props.id} type="checkbox" name="public" value="on" checked={props.checked} /> Public: clients still
      awaiting admission (quarantined) may get tokens for it
    </label>
  );
}

/** One resource: rename it, describe or remove its scopes, add scopes. */
export function ResourceEditPage(props: { user: LayoutUser; csrf: string; resource: Resource; error?: string }) {
  const r = props.resource;
  return (
    <Layout title={`Edit ${r.name}`} user={props.user} csrf={props.csrf} current="/admin/resources">
      <form method="post" action={`/admin/resources/${r.id}`} class="card">
        <h1>Edit {r.name}</h1>
        {props.error ? <Notice kind="error">{props.error}</Notice> : null}
        <p>
          <code>{r.url}</code>
        </p>
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label for="edit-name">Name</label>
        <input id="edit-name" name="name" type="text" required value={r.name} />
        <h2>Scopes</h2>
        {r.scopes.map((s, i) => (
          <div>
            <label for={`desc-${i}`}>Description of {s}</label>
            <input type="hidden" name="scope" value={s} />
            <input id={`desc-${i}`} name={`description:${s}`} type="text" value={r.scopeDescriptions?.[s] ?? ''} />
            <label class="check">
              <input type="checkbox" name="remove" value={s} /> Remove {s}
            </label>
          </div>
        ))}
        <label for="edit-add">Add scopes</label>
        <textarea id="edit-add" name="add" rows={3} cols={60} aria-describedby="edit-add-hint" />
        <p class="muted" id="edit-add-hint">
          {SCOPES_HINT} A scope a live delegation holds cannot be removed.
        </p>
        <PublicCheck checked={r.public ?? false} id="edit-public" />
        <div class="actions">
          <button type="submit">Save</button>
          <a href="/admin/resources">Cancel</a>
        </div>
      </form>
    </Layout>
  );
}

/** Parses the scope lines of the forms: `scope` or `scope description…` per line. */
export function scopeLines(text: string): { name: string; description?: string }[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const space = line.search(/\s/);
      if (space < 0) return { name: line };
      const description = line.slice(space + 1).trim();
      return { name: line.slice(0, space), ...(description ? { description } : {}) };
    });
}
