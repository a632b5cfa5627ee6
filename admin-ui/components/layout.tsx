import type { Child } from 'hono/jsx';

/** The page frame shared by every server-rendered page. */
export function Layout(props: { title: string; user?: { username: string } | null; csrf?: string; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · Errand`}</title>
        <link rel="stylesheet" href="/assets/app.css" />
      </head>
      <body>
        <header class="topbar">
          <a class="brand" href="/admin">
            Errand
          </a>
          {props.user ? (
            <form method="post" action="/signout" class="signout">
              <span>{props.user.username}</span>
              <input type="hidden" name="_csrf" value={props.csrf ?? ''} />
              <button type="submit" class="link">
                Sign out
              </button>
            </form>
          ) : null}
        </header>
        <main>{props.children}</main>
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

export const STYLESHEET = `
:root { --fg:#1b1f24; --muted:#57606a; --bg:#f6f8fa; --card:#fff; --accent:#0b5cad; --danger:#b42318; --border:#d0d7de; }
* { box-sizing: border-box; }
body { margin:0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
.topbar { display:flex; justify-content:space-between; align-items:center; padding:.75rem 1.25rem; background:#0d1b2a; color:#fff; }
.topbar a.brand { color:#fff; font-weight:700; text-decoration:none; font-size:1.1rem; }
.topbar .signout { display:flex; gap:.75rem; align-items:center; margin:0; }
main { max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
.card { background:var(--card); border:1px solid var(--border); border-radius:8px; padding:1.5rem; }
h1 { font-size:1.4rem; margin-top:0; }
label { display:block; font-weight:600; margin:.75rem 0 .25rem; }
input[type=text], input[type=password] { width:100%; padding:.55rem .6rem; font-size:1rem; border:1px solid var(--border); border-radius:6px; }
input:focus, button:focus { outline: 3px solid #6ea8fe; outline-offset: 1px; }
button { font-size:1rem; padding:.55rem 1.1rem; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; cursor:pointer; }
button.secondary { background:#fff; color:var(--fg); border-color:var(--border); }
button.link { background:none; border:none; color:#fff; text-decoration:underline; padding:0; }
.actions { display:flex; gap:.75rem; margin-top:1.25rem; flex-wrap:wrap; }
.notice { padding:.6rem .8rem; border-radius:6px; }
.notice.error { background:#fdecea; color:var(--danger); border:1px solid #f5c2c0; }
.notice.info { background:#e8f1fb; color:#0b3d91; border:1px solid #b6d4fe; }
.muted { color:var(--muted); }
ul.scopes { padding-left:1.2rem; } code { background:#eef1f4; padding:0 .25rem; border-radius:4px; }
fieldset.delegation { border:1px solid var(--border); border-radius:6px; margin:1rem 0; padding:.5rem 1rem 1rem; }
label.check { display:flex; gap:.5rem; align-items:center; font-weight:400; margin:.25rem 0; }
select { font-size:1rem; padding:.4rem; border:1px solid var(--border); border-radius:6px; }
dl { display:grid; grid-template-columns: max-content 1fr; gap:.25rem 1rem; } dt { font-weight:600; } dd { margin:0; overflow-wrap:anywhere; }
`;
