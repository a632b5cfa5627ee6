import { Layout } from '../components/layout.js';

/**
 * Hands the browser on to a client whose redirect URI no CSP source expression can name (an
 * IP-literal host such as `http://[::1]:8400/cb`): a navigation from this page, unlike a redirect
 * after the consent form, is not subject to `form-action`. The link is for browsers that ignore
 * the refresh.
 */
export function ContinuePage(props: { clientName: string; to: string }) {
  return (
    <Layout title="Returning to the application" refresh={props.to}>
      <div class="card">
        <h1>Returning to {props.clientName}</h1>
        <p>
          <a href={props.to}>Continue to {props.clientName}</a>
        </p>
      </div>
    </Layout>
  );
}
