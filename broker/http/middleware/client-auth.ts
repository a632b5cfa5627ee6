import type { Context } from 'hono';
import type { AuthenticatedClient, ClientAuthenticator } from '../../identity/client-auth.js';
import { type Form, singleValues } from '../params.js';

/** Authenticates the client of a form request (token, revoke, introspect). */
export async function authenticateClient(
  c: Context,
  form: Form,
  auth: ClientAuthenticator,
): Promise<AuthenticatedClient> {
  return auth.authenticate({ form: singleValues(form), authorization: c.req.header('authorization') });
}
