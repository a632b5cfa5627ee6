import type { Context } from 'hono';
import type { AuthenticatedClient, ClientAuthenticator } from '../../identity/client-auth.js';
import { type Form, singleValues } from '../params.js';

/** Authenticates the client of a form request (token, revoke, introspect). */
export async function authenticateClient(
  c: Context,
  form: Form,
  auth: ClientAuthenticator,
): Promise<AuthenticatedClient> {
  const result = await auth.authenticate({ form: singleValues(form), authorization: c.req.header('authorization') });
  c.set('clientId', result.client.id);
  return result;
}
