import type { Child } from 'hono/jsx';
import { Layout, type LayoutUser } from '../components/layout.js';

/**
 * The second step of a destructive action (GET on the action's URL, reached from a ConfirmLink):
 * it names what will happen in plain words and posts to the same URL, with the CSRF token, only when
 * the person presses the confirming button. Cancel returns to where they came from.
 */
export function ConfirmPage(props: {
  user: LayoutUser;
  csrf: string;
  title: string;
  /** What happens, and what cannot be undone. */
  consequence: Child;
  /** Where the confirmed form posts (the action's own URL). */
  action: string;
  confirmLabel: string;
  cancelHref: string;
  fields?: Record<string, string>;
}) {
  return (
    <Layout title={props.title} user={props.user} csrf={props.csrf}>
      <div class="card" data-confirm>
        <h1>{props.title}</h1>
        <div>{props.consequence}</div>
        <form method="post" action={props.action} class="actions">
          <input type="hidden" name="_csrf" value={props.csrf} />
          {Object.entries(props.fields ?? {}).map(([name, value]) => (
            <input type="hidden" name={name} value={value} />
          ))}
          <button type="submit" class="danger">
            {props.confirmLabel}
          </button>
          <a href={props.cancelHref}>Cancel</a>
        </form>
      </div>
    </Layout>
  );
}
