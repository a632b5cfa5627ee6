import { PATHS } from '@errand/protocol';
import { Hono } from 'hono';
import { assuranceLevel } from '../broker/core/client.js';
import { OAuthError } from '../broker/core/errors.js';
import { formActionSource } from '../broker/http/csp.js';
import { collect } from '../broker/http/params.js';
import { checkCsrf } from '../broker/http/session.js';
import { type AppEnv, NO_STORE } from '../broker/http/types.js';
import {
  type AuthorizeDeps,
  decideAuthorization,
  RedirectableError,
  startAuthorization,
  UntrustedRedirectError,
} from '../broker/services/authorize.js';
import type { UserStore } from '../db/stores/user-store.js';
import { approvalFromForm } from './components/delegation-controls.js';
import { ConsentPage } from './pages/consent.js';
import { ContinuePage } from './pages/continue.js';
import { MessagePage } from './pages/message.js';
import { resourceInfo } from './resource-info.js';

/** Builds the redirect back to the client; RFC 9207 §2: `iss` on success and on error. */
function backToClient(redirectUri: string, issuer: string, params: Record<string, string | null | undefined>): string {
  const url = new URL(redirectUri);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) url.searchParams.set(k, v);
  url.searchParams.set('iss', issuer);
  return url.toString();
}

/** The authorization endpoint and the consent page (OAuth 2.1 §4.1). */
export function authorizeRoutes(deps: AuthorizeDeps & { issuer: string; users: Pick<UserStore, 'get'> }) {
  const app = new Hono<AppEnv>();

  app.get(PATHS.authorize, async (c) => {
    let form: ReturnType<typeof collect>;
    try {
      // Repeats are kept: a repeated parameter is redirected as invalid_request once the redirect URI is trusted.
      form = collect(new URL(c.req.url).searchParams, { keepRepeats: true });
    } catch (err) {
      const message = err instanceof OAuthError ? err.message : 'The request is malformed.';
      return c.html(<MessagePage title="Authorization request refused" message={message} />, 400);
    }
    try {
      const request = await startAuthorization(deps, form);
      return c.redirect(`${PATHS.consent}?request=${encodeURIComponent(request.id)}`, 303);
    } catch (err) {
      if (err instanceof UntrustedRedirectError) {
        c.var.log.info('authorize.refused', { reason: err.message });
        return c.html(<MessagePage title="Authorization request refused" message={err.message} />, 400);
      }
      if (err instanceof RedirectableError) {
        c.var.log.info('authorize.rejected', { code: err.error.code, description: err.error.message });
        return c.redirect(
          backToClient(err.redirectUri, deps.issuer, {
            error: err.error.code,
            error_description: err.error.message,
            state: err.state,
          }),
          303,
        );
      }
      throw err;
    }
  });

  app.get(PATHS.consent, async (c) => {
    const user = c.get('user');
    const id = c.req.query('request') ?? '';
    if (!user) return c.redirect(`${PATHS.signIn}?next=${encodeURIComponent(`${PATHS.consent}?request=${id}`)}`, 303);
    const request = id ? await deps.grants.getRequest(id, deps.clock.now()) : null;
    if (!request) {
      return c.html(
        <MessagePage
          title="Request expired"
          message="This authorization request has expired or was already answered. Start again from the application."
          user={user}
          csrf={c.get('csrfToken') ?? ''}
        />,
        400,
      );
    }
    const client = await deps.clients.get(request.clientId);
    if (!client)
      return c.html(<MessagePage title="Unknown client" message="The client is no longer registered." />, 400);
    const redirect = new URL(request.redirectUri);
    // Allow and Deny both end in a 303 to the redirect URI, which form-action must name.
    c.set('formActionTarget', formActionSource(request.redirectUri));
    const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(redirect.hostname);
    const owner = client.ownerId ? await deps.users.get(client.ownerId) : null;
    const resources = await resourceInfo(deps.clients, [
      ...request.resources,
      ...Object.keys(request.delegation?.grants ?? {}),
    ]);
    return c.html(
      <ConsentPage
        user={user}
        csrf={c.get('csrfToken') ?? ''}
        view={{
          requestId: request.id,
          clientName: client.name,
          clientId: client.id,
          redirectHost: redirect.host || redirect.protocol,
          clientHost: client.source === 'cimd' ? new URL(client.id).host : null,
          localhostOnly: loopback,
          scopes: request.scope,
          resources: request.resources,
          resourceInfo: resources,
          owner: owner?.username ?? null,
          assurance: assuranceLevel(client),
          ...(request.delegation ? { delegation: request.delegation } : {}),
        }}
      />,
    );
  });

  app.post(PATHS.consent, async (c) => {
    const user = c.get('user');
    if (!user) throw new OAuthError('unauthorized', 'sign in first');
    const body = await c.req.parseBody({ all: true });
    const first = (v: unknown) => (Array.isArray(v) ? v[0] : v);
    const csrf = first(body._csrf);
    checkCsrf(c, typeof csrf === 'string' ? csrf : undefined);
    const requestField = first(body.request);
    const id = typeof requestField === 'string' ? requestField : '';
    const request = id ? await deps.grants.getRequest(id, deps.clock.now()) : null;
    if (!request) {
      return c.html(
        <MessagePage
          title="Request expired"
          message="This authorization request has expired or was already answered."
        />,
        400,
      );
    }
    const approve = first(body.decision) === 'approve';
    let outcome: Awaited<ReturnType<typeof decideAuthorization>>;
    try {
      outcome = await decideAuthorization(deps, {
        request,
        userId: user.id,
        approve,
        ...(approve && request.delegation ? { approval: approvalFromForm(body, request.delegation) } : {}),
        requestId: c.var.requestId,
        address: c.var.address,
      });
    } catch (err) {
      if (!(err instanceof OAuthError) || err.status >= 500) throw err;
      return c.html(
        <MessagePage title="Not approved" message={err.message} user={user} csrf={c.get('csrfToken') ?? ''} />,
        400,
      );
    }
    const params =
      'code' in outcome
        ? { code: outcome.code, state: request.state }
        : { error: 'access_denied', error_description: 'the user denied the request', state: request.state };
    const to = backToClient(request.redirectUri, deps.issuer, params);
    if (formActionSource(request.redirectUri) === null) {
      const client = await deps.clients.get(request.clientId);
      return c.html(<ContinuePage clientName={client?.name ?? 'the application'} to={to} />, 200, NO_STORE);
    }
    // RFC 9700 §4.12: 303 after a POST so the browser does not resend the form.
    return c.redirect(to, 303);
  });

  return app;
}
