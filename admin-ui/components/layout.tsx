import type { Child } from 'hono/jsx';

export interface LayoutUser {
  username: string;
  role?: 'user' | 'admin';
}

const USER_NAV = [
  ['/my/requests', 'Requests'],
  ['/my/delegations', 'Delegations'],
  ['/my/tasks', 'Tasks'],
  ['/my/certifications', 'Certify agents'],
] as const;
const ADMIN_NAV = [
  ['/admin/agents', 'Agents'],
  ['/admin/certifications', 'Certification'],
  ['/admin/clients', 'Clients'],
  ['/admin/resources', 'Resources'],
  ['/admin/registration-tokens', 'Agent registration'],
  ['/admin/peers', 'A2A peers'],
  ['/admin/trusted-issuers', 'Trusted issuers'],
  ['/admin/tasks', 'All tasks'],
  ['/admin/delegations', 'All delegations'],
  ['/admin/users', 'People'],
  ['/admin/policies', 'Policies'],
  ['/admin/access', 'Access explorer'],
  ['/admin/keys', 'Keys'],
  ['/admin/audit', 'Audit'],
  ['/admin/findings', 'Findings'],
] as const;

/** The page frame shared by every server-rendered page. */
export function Layout(props: {
  title: string;
  user?: LayoutUser | null;
  csrf?: string;
  wide?: boolean;
  current?: string;
  scripts?: string[];
  /** Navigate there at once (a same-origin page that hands the browser on, see ContinuePage). */
  refresh?: string;
  children: Child;
}) {
  const links = props.user ? [...USER_NAV, ...(props.user.role === 'admin' ? ADMIN_NAV : [])] : [];
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · Errand`}</title>
        <link rel="stylesheet" href="/assets/app.css" />
        {props.refresh ? <meta http-equiv="refresh" content={`0;url=${props.refresh}`} /> : null}
        {(props.scripts ?? []).map((src) => (
          <script src={src} defer />
        ))}
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="topbar">
          <a class="brand" href="/admin">
            Errand
          </a>
          {links.length ? (
            <nav aria-label="Main">
              {links.map(([href, label]) => (
                <a href={href} aria-current={props.current === href ? 'page' : undefined}>
                  {label}
                </a>
              ))}
            </nav>
          ) : null}
          {props.user ? (
            <form method="post" action="/signout" class="signout">
              <span>{props.user.username}</span>
              <a
                href="/my/password"
                class="account"
                aria-current={props.current === '/my/password' ? 'page' : undefined}
              >
                Change password
              </a>
              <input type="hidden" name="_csrf" value={props.csrf ?? ''} />
              <button type="submit" class="link">
                Sign out
              </button>
            </form>
          ) : null}
        </header>
        <main id="main" class={props.wide ? 'wide' : undefined}>
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** A message box for errors and notices, announced to screen readers. */
export function Notice(props: { kind: 'error' | 'info'; children: Child }) {
  return (
    <p class={`notice ${props.kind}`} role={props.kind === 'error' ? 'alert' : 'status'}>
      {props.children}
    </p>
  );
}

/** A small label: `risk` for things an administrator should look at. */
export function Badge(props: { kind?: 'ok' | 'risk' | 'muted' | 'info'; children: Child }) {
  return <span class={`badge ${props.kind ?? 'muted'}`}>{props.children}</span>;
}

/** A one-button form that posts with the session's CSRF token. */
export function ActionForm(props: {
  action: string;
  csrf: string;
  label: string;
  danger?: boolean;
  fields?: Record<string, string>;
}) {
  return (
    <form method="post" action={props.action} class="inline">
      <input type="hidden" name="_csrf" value={props.csrf} />
      {Object.entries(props.fields ?? {}).map(([name, value]) => (
        <input type="hidden" name={name} value={value} />
      ))}
      <button type="submit" class={props.danger ? 'danger' : 'secondary'}>
        {props.label}
      </button>
    </form>
  );
}

/**
 * What an empty list shows: what it would hold and how to add the first item, so a new installation
 * never greets an administrator with a bare table header.
 */
export function EmptyState(props: { children: Child; action?: { href: string; label: string } }) {
  return (
    <div class="card empty" data-empty-state>
      <p>{props.children}</p>
      {props.action ? (
        <p>
          <a class="button" href={props.action.href}>
            {props.action.label}
          </a>
        </p>
      ) : null}
    </div>
  );
}

/**
 * The first step of a destructive action: a link to the confirmation page (GET on the action's URL,
 * see ConfirmPage), which says what will happen and posts only when the person confirms.
 */
export function ConfirmLink(props: {
  action: string;
  label: string;
  /** The link's accessible name when the visible label alone is ambiguous (one per table row). */
  name?: string;
}) {
  return (
    <a class="button danger" href={props.action} aria-label={props.name}>
      {props.label}
    </a>
  );
}

/** Seconds as a short human duration ("4 min", "2 h"). */
export function humanDuration(seconds: number): string {
  if (seconds <= 0) return 'none';
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

/** Epoch seconds as an ISO-like UTC time. */
export function when(epoch: number | null): string {
  return epoch === null ? 'never' : `${new Date(epoch * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export const STYLESHEET = `
:root { --fg:#1b1f24; --muted:#57606a; --bg:#f6f8fa; --card:#fff; --accent:#0b5cad; --danger:#b42318; --ok:#1a7f37; --border:#d0d7de; }
* { box-sizing: border-box; }
body { margin:0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
.sr-only { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
.skip { position:absolute; left:-999px; } .skip:focus { left:1rem; top:.5rem; background:#fff; padding:.25rem .5rem; z-index:2; }
.topbar { display:flex; flex-wrap:wrap; gap:.5rem 1.5rem; justify-content:space-between; align-items:center; padding:.75rem 1.25rem; background:#0d1b2a; color:#fff; }
.topbar a.brand { color:#fff; font-weight:700; text-decoration:none; font-size:1.1rem; }
.topbar nav { display:flex; flex-wrap:wrap; gap:.25rem 1rem; flex:1; }
.topbar nav a { color:#dbe7f3; text-decoration:none; padding:.15rem 0; border-bottom:2px solid transparent; }
.topbar nav a:hover, .topbar nav a[aria-current=page] { color:#fff; border-bottom-color:#6ea8fe; }
.topbar .signout { display:flex; gap:.75rem; align-items:center; margin:0; }
.topbar .signout a.account { color:#dbe7f3; }
main { max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
main.wide { max-width: 78rem; }
.card { background:var(--card); border:1px solid var(--border); border-radius:8px; padding:1.25rem 1.5rem; margin-bottom:1rem; }
h1 { font-size:1.5rem; margin-top:0; } h2 { font-size:1.15rem; margin:.25rem 0 .5rem; }
label { display:block; font-weight:600; margin:.75rem 0 .25rem; }
input[type=text], input[type=password], input[type=datetime-local], select, textarea { width:100%; max-width:28rem; padding:.5rem .6rem; font-size:1rem; border:1px solid var(--border); border-radius:6px; background:#fff; }
input:focus, button:focus, select:focus, a:focus { outline: 3px solid #6ea8fe; outline-offset: 1px; }
button { font-size:1rem; padding:.5rem 1.05rem; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; cursor:pointer; }
button.secondary { background:#fff; color:var(--fg); border-color:var(--border); }
button.danger { background:#fff; color:var(--danger); border-color:var(--danger); }
a.button { display:inline-block; font-size:1rem; padding:.5rem 1.05rem; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; text-decoration:none; }
a.button.danger { background:#fff; color:var(--danger); border-color:var(--danger); }
.empty { text-align:center; color:var(--muted); }
button.link { background:none; border:none; color:#fff; text-decoration:underline; padding:0; }
form.inline { display:inline; margin:0; }
.actions { display:flex; gap:.75rem; margin-top:1rem; flex-wrap:wrap; align-items:center; }
.notice { padding:.6rem .8rem; border-radius:6px; }
.notice.error { background:#fdecea; color:var(--danger); border:1px solid #f5c2c0; }
.notice.info { background:#e8f1fb; color:#0b3d91; border:1px solid #b6d4fe; }
.muted { color:var(--muted); }
.badge { display:inline-block; font-size:.8rem; padding:.05rem .45rem; border-radius:999px; border:1px solid var(--border); background:#eef1f4; color:var(--fg); white-space:nowrap; }
.badge.risk { background:#fdecea; color:var(--danger); border-color:#f5c2c0; font-weight:600; }
.badge.ok { background:#dafbe1; color:var(--ok); border-color:#aceebb; }
.badge.info { background:#e8f1fb; color:#0b3d91; border-color:#b6d4fe; }
ul.scopes { padding-left:1.2rem; } code { background:#eef1f4; padding:0 .25rem; border-radius:4px; overflow-wrap:anywhere; }
dl { display:grid; grid-template-columns: max-content 1fr; gap:.25rem 1rem; } dt { font-weight:600; } dd { margin:0; overflow-wrap:anywhere; }
fieldset.delegation { border:1px solid var(--border); border-radius:6px; margin:1rem 0; padding:.5rem 1rem 1rem; }
fieldset.tools { border:none; border-left:2px solid var(--border); margin:.5rem 0 0; padding:0 0 0 .75rem; }
fieldset.tools legend { font-weight:600; padding:0; }
label.check { display:flex; gap:.5rem; align-items:center; font-weight:400; margin:.25rem 0; }
table { width:100%; border-collapse:collapse; background:var(--card); font-size:.95rem; }
th, td { text-align:left; padding:.45rem .6rem; border-bottom:1px solid var(--border); vertical-align:top; }
th { background:#eef1f4; font-weight:600; }
tr.stale td { background:#fff8c5; }
.table-wrap { overflow-x:auto; border:1px solid var(--border); border-radius:8px; }
.tree, .tree ul { list-style:none; padding-left:1.25rem; margin:.25rem 0; }
.tree > li { padding-left:0; }
.tree li { border-left:2px solid var(--border); padding:.35rem 0 .35rem .75rem; margin:.25rem 0; }
.task-line { display:flex; flex-wrap:wrap; gap:.4rem .75rem; align-items:center; }
.filters { display:grid; grid-template-columns: repeat(auto-fit, minmax(12rem, 1fr)); gap:.25rem 1rem; align-items:end; }
textarea { width:100%; max-width:40rem; padding:.5rem .6rem; font:.9rem/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; border:1px solid var(--border); border-radius:6px; background:#fff; }
td { overflow-wrap:anywhere; }
details > summary { cursor:pointer; color:var(--accent); }
details dl { margin:.5rem 0 0; font-size:.85rem; }
@media (max-width: 40rem) { th, td { padding:.35rem; } .topbar { padding:.6rem .75rem; } }
/* Stacked tables: below 40rem each row is a block with its cells labelled, so nothing scrolls sideways. */
@media (max-width: 40rem) {
  table.stack thead { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); }
  table.stack, table.stack tbody, table.stack tr, table.stack td { display:block; width:100%; }
  table.stack tr { border-bottom:2px solid var(--border); padding:.35rem 0; }
  table.stack td { border:none; padding:.15rem .6rem; }
  table.stack td:empty { display:none; }
  table.stack td[data-label]::before { content:attr(data-label); display:block; font-size:.75rem; font-weight:600; color:var(--muted); text-transform:uppercase; letter-spacing:.02em; }
  main { margin:1rem auto; padding:0 .5rem; }
  .card { padding:1rem; }
}
`;
