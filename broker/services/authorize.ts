import { GRANT_TYPE } from '@errand/protocol';
import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { AuthorizationRequest, GrantStore } from '../../db/stores/grant-store.js';
import { type Client, canExchange, isRegisteredRedirect } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import type { Form } from '../core/params.js';
import type { Clock } from '../core/ports.js';
import type { ClientDirectory } from '../identity/client-directory.js';
import { hashSecret, newId, newSecret } from '../tokens/random.js';
import { type AuthorizationTarget, authorizationTarget } from './authorization-target.js';
import { delegationAskFromForm, readDelegationRequest } from './delegation-ask.js';
import { type Approval, applyApproval, type DelegationLimits, type DelegationService } from './delegations.js';

/** An error shown on Errand's own page: the redirect URI cannot be trusted yet (RFC 9700 §4.11). */
export class UntrustedRedirectError extends Error {}

/** An error returned to the client's redirect URI (RFC 6749 §4.1.2.1, with RFC 9207 `iss`). */
export class RedirectableError extends Error {
  constructor(
    readonly redirectUri: string,
    readonly state: string | null,
    readonly error: OAuthError,
  ) {
    super(error.message);
  }
}

// RFC 7636 §4.2: S256 challenges are 43 base64url characters.
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

export interface AuthorizeDeps {
  db: Db;
  delegationService: DelegationService;
  limits: DelegationLimits;
  directory: ClientDirectory;
  clients: ClientStore;
  grants: GrantStore;
  audit: AuditStore;
  clock: Clock;
  requestTtl: number;
  codeTtl: number;
  /** The resource a request that names none and asks no scope is for (ERRAND_DEFAULT_RESOURCE). */
  defaultResource: string | null;
}

function single(form: Form, name: string): string | undefined {
  const v = form[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Validates an authorization request (OAuth 2.1 §4.1.1, RFC 8707, RFC 7636 S256 only) and stores it
 * until the user signs in and decides. Client and redirect problems are shown, never redirected.
 */
export async function startAuthorization(deps: AuthorizeDeps, form: Form): Promise<AuthorizationRequest> {
  for (const name of ['client_id', 'redirect_uri']) {
    if (Array.isArray(form[name])) throw new UntrustedRedirectError(`The request repeats the ${name} parameter.`);
  }
  const clientId = single(form, 'client_id');
  if (!clientId) throw new UntrustedRedirectError('The request names no client (client_id is missing).');
  let client: Client | null;
  try {
    client = await deps.directory.resolve(clientId);
  } catch (err) {
    throw new UntrustedRedirectError(err instanceof OAuthError ? err.message : 'The client could not be loaded.');
  }
  if (!client) throw new UntrustedRedirectError('The client is not registered with Errand.');
  if (client.status !== 'active') throw new UntrustedRedirectError('The client is disabled.');

  const sentRedirect = single(form, 'redirect_uri');
  let redirectUri: string;
  if (sentRedirect !== undefined) {
    if (!isRegisteredRedirect(client, sentRedirect)) {
      throw new UntrustedRedirectError('The redirect_uri does not match any URI registered for this client.');
    }
    redirectUri = sentRedirect;
  } else if (client.redirectUris.length === 1 && client.redirectUris[0]) {
    redirectUri = client.redirectUris[0];
  } else {
    throw new UntrustedRedirectError('redirect_uri is required: the client registered more than one.');
  }

  const state = single(form, 'state') ?? null;
  const fail = (code: OAuthError['code'], description: string) =>
    new RedirectableError(redirectUri, state, new OAuthError(code, description));
  // From here on, errors go back to the (now trusted) redirect URI.
  for (const [k, v] of Object.entries(form)) {
    if (Array.isArray(v) && v.length > 1 && k !== 'resource')
      throw fail('invalid_request', `parameter ${k} must not be repeated`);
  }
  if (single(form, 'response_type') !== 'code') {
    throw fail('unsupported_response_type', 'response_type must be "code"');
  }
  if (!client.grantTypes.includes(GRANT_TYPE.authorizationCode)) {
    throw fail('unauthorized_client', 'this client is not allowed to use the authorization code flow');
  }
  const challenge = single(form, 'code_challenge');
  if (!challenge) throw fail('invalid_request', 'code_challenge is required (PKCE with S256)');
  // Errand accepts only S256; an absent method means "plain" (RFC 7636 §4.3), which is refused.
  if (single(form, 'code_challenge_method') !== 'S256') {
    throw fail('invalid_request', 'code_challenge_method must be S256');
  }
  if (!S256_CHALLENGE.test(challenge)) throw fail('invalid_request', 'code_challenge must be 43 base64url characters');
  if (single(form, 'request') || single(form, 'request_uri')) {
    throw fail('invalid_request', 'request objects are not supported');
  }

  let target: AuthorizationTarget;
  let delegation: AuthorizationRequest['delegation'] = null;
  try {
    target = await authorizationTarget(deps, client, { resource: form.resource, scope: single(form, 'scope') });
    // An agent asks for a delegation: the user may narrow it on the consent page.
    if (client.kind === 'agent') {
      // A delegation is used only through token exchange: an agent that cannot exchange cannot hold one.
      if (!canExchange(client)) {
        throw new OAuthError(
          'unauthorized_client',
          'this agent cannot hold delegations: it must be a confidential client allowed token exchange',
        );
      }
      const ask = { ...delegationAskFromForm(form), resources: target.resources, scope: target.scope };
      delegation = await readDelegationRequest({ clients: deps.clients, limits: deps.limits }, ask, client);
    }
  } catch (err) {
    if (err instanceof OAuthError) throw new RedirectableError(redirectUri, state, err);
    throw err;
  }
  const nonce = single(form, 'nonce');
  if (nonce !== undefined && nonce.length > 512) throw fail('invalid_request', 'nonce must be at most 512 characters');

  const now = deps.clock.now();
  const request: AuthorizationRequest = {
    id: newSecret('req_'),
    delegation,
    clientId: client.id,
    redirectUri,
    redirectUriSent: sentRedirect !== undefined,
    state,
    codeChallenge: challenge,
    scope: target.scope,
    resources: target.resources,
    openid: target.openid,
    nonce: target.openid ? (nonce ?? null) : null,
    createdAt: now,
    expiresAt: now + deps.requestTtl,
  };
  await deps.grants.saveRequest(request);
  return request;
}

/** Records the user's decision; an approval yields a one-time code bound to client, user and PKCE. */
export async function decideAuthorization(
  deps: AuthorizeDeps,
  input: {
    request: AuthorizationRequest;
    userId: string;
    approve: boolean;
    approval?: Approval;
    requestId: string;
    address?: string;
  },
): Promise<{ code: string } | { denied: true }> {
  const { request } = input;
  if (input.approve && request.delegation) {
    // The organisation's policies on what the agent asked and on what the person grants (consent is both).
    const agent = await deps.clients.get(request.clientId);
    if (agent) {
      const door = { door: 'web' as const, address: input.address ?? null };
      const common = { agent, userId: input.userId, requestId: input.requestId, door };
      await deps.delegationService.checkPolicy('ask_delegation', { ...common, granted: request.delegation });
      await deps.delegationService.checkPolicy('approve_delegation', {
        ...common,
        granted: applyApproval(request.delegation, input.approval ?? {}),
      });
    }
  }
  const code = newSecret('ec_');
  const approved = await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    if (!(await deps.grants.takeRequest(request.id, tx))) return null;
    if (input.approve) {
      const delegation = request.delegation
        ? await deps.delegationService.insertApproved(tx, {
            agentId: request.clientId,
            userId: input.userId,
            asked: request.delegation,
            approval: input.approval ?? {},
            now,
            requestId: input.requestId,
          })
        : null;
      await deps.grants.insertCode(
        {
          delegationId: delegation?.id ?? null,
          codeHash: hashSecret(code),
          grantId: newId('grt'),
          clientId: request.clientId,
          userId: input.userId,
          redirectUri: request.redirectUri,
          redirectUriSent: request.redirectUriSent,
          codeChallenge: request.codeChallenge,
          scope: request.scope,
          resources: request.resources,
          openid: request.openid ?? false,
          nonce: request.nonce ?? null,
          createdAt: now,
          expiresAt: now + deps.codeTtl,
        },
        tx,
      );
    }
    await deps.audit.append(
      {
        // The person's answer, not a delivery: the code travels through their browser and the client
        // may never receive it. `authorization_code.redeemed` records that it did.
        type: input.approve ? 'consent.approved' : 'consent.denied',
        result: input.approve ? 'allowed' : 'denied',
        userId: input.userId,
        clientId: request.clientId,
        scope: request.scope.join(' '),
        audience: request.resources.join(' '),
        requestId: input.requestId,
        ...(input.approve ? {} : { reason: 'user_denied' }),
      },
      now,
      tx,
    );
    return true;
  });
  if (approved === null) throw new OAuthError('invalid_request', 'this authorization request was already answered');
  return input.approve ? { code } : { denied: true };
}
