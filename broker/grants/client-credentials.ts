import { GRANT_TYPE } from '@errand/protocol';
import { z } from 'zod';
import type { ClientStore } from '../../db/stores/client-store.js';
import { meetsAssurance } from '../core/assurance.js';
import { isConfidential } from '../core/client.js';
import { denialToError } from '../core/denials.js';
import { OAuthError } from '../core/errors.js';
import { param } from '../core/params.js';
import { quarantineDenial } from '../core/quarantine.js';
import {
  canonicalResources,
  checkScope,
  defaultResource,
  lookUpResources,
  pickAudience,
  requestedScope,
} from '../services/resource-policy.js';
import type { TokenService } from '../services/token-service.js';
import type { Grant } from './types.js';

const Params = z.object({
  scope: param(2048).optional(),
  resource: z.array(z.string()).optional(),
});

/** `client_credentials` (RFC 6749 §4.4): an agent or service acting as itself. */
export function clientCredentialsGrant(deps: {
  clients: ClientStore;
  tokens: TokenService;
  /** RFC 8707 §2: the resource of a request that names none (ERRAND_DEFAULT_RESOURCE). */
  defaultResource: string | null;
}): Grant<typeof Params> {
  return {
    type: GRANT_TYPE.clientCredentials,
    params: Params,
    async handle(p, ctx) {
      const { client } = ctx.client;
      // OAuth 2.1 §4.2: only confidential clients, and only those registered for this grant.
      if (!isConfidential(client) || !client.grantTypes.includes(GRANT_TYPE.clientCredentials)) {
        throw new OAuthError('unauthorized_client', 'this client is not allowed to use client_credentials');
      }
      if (!client.scope || client.scope.length === 0) {
        throw new OAuthError('invalid_scope', 'no scopes are registered for this client');
      }
      const requested = canonicalResources(p.resource);
      // Without a resource: the one resource that offers the scopes asked (or registered), else the default.
      const audience =
        requested.length === 0
          ? await defaultResource(deps, requestedScope(p.scope) ?? client.scope)
          : pickAudience(requested, null);
      const [resource] = await lookUpResources(deps.clients, [audience]);
      if (!resource) throw new OAuthError('invalid_target', 'resource is required');
      // Without a scope parameter the client gets what it is registered for at this resource.
      const scope = requestedScope(p.scope) ?? client.scope.filter((s) => resource.scopes.includes(s));
      checkScope(scope, resource, client);
      // A client that registered itself gets tokens for public resources only until it is admitted.
      const quarantined = quarantineDenial(client, resource.url, resource.public ?? false);
      if (quarantined) throw denialToError(quarantined);
      // A resource's minimum assurance level (README "Assurance levels") holds for tokens an agent gets as itself too.
      if (resource.minAssurance && !meetsAssurance(ctx.client.assurance, resource.minAssurance)) {
        throw denialToError({
          reason: 'assurance_too_low',
          required: resource.minAssurance,
          actual: ctx.client.assurance,
          by: 'resource',
        });
      }
      return deps.tokens.issue({
        clientId: client.id,
        subject: client.id,
        userId: null,
        audience,
        scope,
        grantId: null,
        assurance: ctx.client.assurance,
        dpopJkt: ctx.dpop?.jkt ?? null,
        auditType: 'token.issued',
        requestId: ctx.requestId,
      });
    },
  };
}
