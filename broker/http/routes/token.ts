import { DPOP } from '@errand/protocol';
import { Hono } from 'hono';
import type { Client } from '../../core/client.js';
import { OAuthError } from '../../core/errors.js';
import type { GrantRegistry } from '../../grants/index.js';
import type { ClientAuthenticator } from '../../identity/client-auth.js';
import type { DpopProofs } from '../../identity/dpop.js';
import { authenticateClient } from '../middleware/client-auth.js';
import { parseParams, readForm } from '../params.js';
import { type AppEnv, NO_STORE } from '../types.js';

/** The token endpoint (RFC 6749 §3.2): authenticate, pick the grant, let it decide. */
export function tokenRoutes(deps: {
  grants: GrantRegistry;
  auth: ClientAuthenticator;
  dpop: DpopProofs;
  touch: (client: Client) => Promise<void>;
}) {
  return new Hono<AppEnv>().post('/token', async (c) => {
    const form = await readForm(c);
    const grant = deps.grants.select(form.grant_type);
    // RFC 9449 §5: the proof is checked before client authentication, so that a retry with the
    // server's nonce does not find its client assertion already spent.
    const dpop = await deps.dpop.verify(c.req.header(DPOP.header), c.req.method);
    const client = await authenticateClient(c, form, deps.auth);
    // RFC 9449 §5.2: a client registered with dpop_bound_access_tokens must always send a proof.
    if (!dpop && client.client.metadata.dpop_bound_access_tokens === true) {
      throw new OAuthError('invalid_dpop_proof', 'this client must send a DPoP proof (dpop_bound_access_tokens)', {
        headers: deps.dpop.responseHeaders(),
      });
    }
    const body = await deps.grants.handle(grant, parseParams(grant.params, form), {
      client,
      dpop,
      log: c.var.log,
      requestId: c.var.requestId,
      address: c.var.address,
    });
    await deps.touch(client.client);
    c.var.log.info('token.issued', {
      clientId: client.client.id,
      grantType: grant.type,
      dpopBound: body.token_type === DPOP.tokenType,
      assurance: client.assurance,
    });
    return c.json(body, 200, { ...NO_STORE, ...deps.dpop.responseHeaders() });
  });
}
