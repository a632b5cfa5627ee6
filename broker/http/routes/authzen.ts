import { CLIENT_ASSERTION_TYPE } from '@errand/protocol';
import { type Context, Hono } from 'hono';
import type { z } from 'zod';
import type { Client } from '../../core/client.js';
import { OAuthError } from '../../core/errors.js';
import type { ClientAuthenticator } from '../../identity/client-auth.js';
import {
  AUTHZEN_PATHS,
  AuthzenEvaluationSchema,
  AuthzenEvaluationsSchema,
  type AuthzenService,
  authzenMetadata,
} from '../../services/policy/authzen.js';
import { jsonBody } from '../api.js';
import { type AppEnv, NO_STORE } from '../types.js';

export interface AuthzenRouteDeps {
  authzen: AuthzenService;
  auth: ClientAuthenticator;
  issuer: string;
}

const CHALLENGE = { 'WWW-Authenticate': 'Basic realm="errand", Bearer realm="errand"' };

/** AuthZEN Transport, Request Identification: an identifier the PEP chose, echoed as sent. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The calling resource server (AuthZEN §2 leaves the PDP's own authentication to the deployment;
 * §Security Considerations: the PDP SHOULD authenticate the PEP). The body is AuthZEN JSON, so
 * credentials travel in `Authorization`: `Basic` for client_secret_basic (RFC 6749 §2.3.1), or
 * `Bearer <client assertion>` for private_key_jwt (an RFC 7523 assertion, checked exactly as at the
 * token endpoint: audience the issuer, single use). Only clients of kind `resource_server` ask.
 */
async function authenticateResourceServer(c: Context<AppEnv>, auth: ClientAuthenticator): Promise<Client> {
  const header = c.req.header('authorization')?.trim();
  if (!header) {
    throw new OAuthError(
      'invalid_client',
      'client authentication is required: Authorization: Basic (client_secret_basic) or Bearer <client assertion> (private_key_jwt)',
      { headers: CHALLENGE },
    );
  }
  const bearer = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  const isBasic = /^Basic /i.test(header);
  if (!bearer && !isBasic) {
    throw new OAuthError('invalid_client', 'use Authorization: Basic or Bearer <client assertion>', {
      headers: CHALLENGE,
    });
  }
  const result = bearer
    ? await auth.authenticate({
        form: { client_assertion: bearer[1], client_assertion_type: CLIENT_ASSERTION_TYPE.jwtBearer },
        authorization: undefined,
      })
    : await auth.authenticate({ form: {}, authorization: header });
  c.set('clientId', result.client.id);
  if (result.client.kind !== 'resource_server') {
    throw new OAuthError('forbidden', 'only clients of kind resource_server may ask for authorization decisions');
  }
  return result.client;
}

/** Parses an AuthZEN body; a problem names the member by its full path (`subject.type: …`). */
function parseBody<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const [issue] = result.error.issues;
  const path = issue?.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('') ?? '';
  const message =
    issue?.code === 'invalid_type' && issue.input === undefined ? 'is required' : (issue?.message ?? 'is invalid');
  throw new OAuthError('invalid_request', path ? `${path.replace(/^\./, '')}: ${message}` : message);
}

/**
 * OpenID AuthZEN Authorization API 1.0 (README "AuthZEN authorization API"): the PDP metadata
 * (§9), one evaluation (§6) and a batch (§7). A decision is always 200 (a denial is
 * `decision: false`); 400, 401 and 403 are about the request itself (Transport, Error Responses).
 */
export function authzenRoutes(deps: AuthzenRouteDeps) {
  const echoRequestId = async (c: Context<AppEnv>, next: () => Promise<void>) => {
    const id = c.req.header('x-request-id');
    if (id !== undefined && REQUEST_ID.test(id)) c.header('X-Request-ID', id);
    await next();
  };
  const caller = (c: Context<AppEnv>, client: Client) => ({
    client,
    requestId: c.var.requestId,
    address: c.var.address,
    log: c.var.log,
  });
  return new Hono<AppEnv>()
    .get(AUTHZEN_PATHS.configuration, (c) =>
      c.json(authzenMetadata(deps.issuer), 200, { 'Cache-Control': 'public, max-age=3600' }),
    )
    .post(AUTHZEN_PATHS.evaluation, echoRequestId, async (c) => {
      const client = await authenticateResourceServer(c, deps.auth);
      const req = parseBody(AuthzenEvaluationSchema, await jsonBody(c));
      return c.json(await deps.authzen.evaluate(req, caller(c, client)), 200, NO_STORE);
    })
    .post(AUTHZEN_PATHS.evaluations, echoRequestId, async (c) => {
      const client = await authenticateResourceServer(c, deps.auth);
      const req = parseBody(AuthzenEvaluationsSchema, await jsonBody(c));
      return c.json(await deps.authzen.evaluateMany(req, caller(c, client)), 200, NO_STORE);
    });
}
