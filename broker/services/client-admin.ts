import { AUTH_METHOD, ERRAND_SCOPE, GRANT_TYPE } from '@errand/protocol';
import { z } from 'zod';
import type { DelegationStore } from '../../db/stores/delegation-store.js';
import type { TrustedIssuerStore } from '../../db/stores/trusted-issuer-store.js';
import type { Client } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import {
  type AdminActor,
  type AdminDeps,
  canonicalResources,
  checkGrantTypes,
  checkPublicKeys,
  type UpdateClientSchema,
} from './admin.js';

/**
 * What an administrator changes on a registered client after creating it: its description and
 * limits, its keys, and its removal. The admin API and the console both call these.
 */

export interface ClientAdminDeps extends AdminDeps {
  delegations: DelegationStore;
  trustedIssuers: TrustedIssuerStore;
}

const Jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) });

/** New keys for a private_key_jwt client: a key set, or where the client publishes one. */
export const ReplaceClientKeysSchema = z
  .object({ jwks: Jwks.optional(), jwks_uri: z.url().max(2048).optional() })
  .strict()
  .refine((k) => !k.jwks !== !k.jwks_uri, { message: 'send jwks or jwks_uri (exactly one)' });

async function existing(deps: AdminDeps, id: string): Promise<Client> {
  const client = await deps.clients.get(id);
  if (!client) throw new OAuthError('not_found', 'no such client');
  return client;
}

const kidsOf = (jwks: Client['jwks']) =>
  (jwks?.keys ?? []).map((k) => (typeof k.kid === 'string' ? k.kid : '(no kid)')).join(' ');

/**
 * `errand:admin` stays with admin service clients (README "Admin API"), and an admin service keeps
 * exactly that scope, client_credentials and no resources: an edit cannot widen either side.
 */
function checkAdminServicePatch(client: Client, patch: Omit<z.output<typeof UpdateClientSchema>, 'status'>): void {
  const refuse = (why: string) => new OAuthError('invalid_client_metadata', why);
  if (client.kind !== 'admin_service') {
    if (patch.scope?.includes(ERRAND_SCOPE.admin)) {
      throw refuse(`scope "${ERRAND_SCOPE.admin}" is for kind "admin_service" only`);
    }
    return;
  }
  if (patch.scope !== undefined && (patch.scope?.length !== 1 || patch.scope[0] !== ERRAND_SCOPE.admin)) {
    throw refuse(`an admin_service client has scope "${ERRAND_SCOPE.admin}" only`);
  }
  if (patch.grant_types && (patch.grant_types.length !== 1 || patch.grant_types[0] !== GRANT_TYPE.clientCredentials)) {
    throw refuse('an admin_service client uses client_credentials only');
  }
  if (patch.resources && patch.resources.length > 0) throw refuse('an admin_service client takes no resources');
}

/**
 * Changes a client's name, owner, scopes, grant types or resources; recorded as `client.updated`
 * with the fields changed. Status changes go through `setClientStatus` (they end tasks).
 */
export async function updateClient(
  deps: AdminDeps,
  id: string,
  patch: Omit<z.output<typeof UpdateClientSchema>, 'status'>,
  actor: AdminActor,
): Promise<Client> {
  const client = await existing(deps, id);
  if (patch.owner_id && !(await deps.users.get(patch.owner_id))) {
    throw new OAuthError('invalid_request', `owner_id: no user "${patch.owner_id}"`);
  }
  if (patch.grant_types) checkGrantTypes(client.authMethod, patch.grant_types, client.redirectUris);
  checkAdminServicePatch(client, patch);
  const resources = patch.resources ? canonicalResources(patch.resources) : undefined;
  const fields = Object.keys(patch).filter((k) => patch[k as keyof typeof patch] !== undefined);
  await deps.db.write(async (tx) => {
    await deps.clients.patch(
      id,
      {
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.owner_id !== undefined ? { ownerId: patch.owner_id } : {}),
        ...(patch.scope !== undefined ? { scope: patch.scope ? [...new Set(patch.scope)] : null } : {}),
        ...(patch.grant_types ? { grantTypes: [...new Set(patch.grant_types)] } : {}),
        ...(resources ? { resources } : {}),
      },
      tx,
    );
    if (fields.length === 0) return;
    await deps.audit.append(
      {
        type: 'client.updated',
        result: 'allowed',
        userId: actor.adminId,
        clientId: id,
        requestId: actor.requestId,
        details: { fields: fields.join(' '), address: actor.address },
      },
      deps.clock.now(),
      tx,
    );
  });
  return existing(deps, id);
}

/**
 * Replaces a private_key_jwt client's keys: from the commit on, an assertion signed with a key that
 * is no longer in its set is refused (tokens already issued keep their own lifetime). Recorded as
 * `client.keys_replaced` with the key ids before and after.
 */
export async function replaceClientKeys(
  deps: AdminDeps,
  id: string,
  input: z.output<typeof ReplaceClientKeysSchema>,
  actor: AdminActor,
): Promise<Client> {
  const client = await existing(deps, id);
  if (client.authMethod !== AUTH_METHOD.privateKeyJwt) {
    throw new OAuthError(
      'invalid_request',
      `the client authenticates with ${client.authMethod}: only ${AUTH_METHOD.privateKeyJwt} clients have keys to replace`,
    );
  }
  if (client.source === 'cimd') {
    throw new OAuthError(
      'invalid_request',
      'the client publishes its keys in its metadata document: change them there',
    );
  }
  checkPublicKeys(input.jwks);
  const jwks = input.jwks ?? null;
  const jwksUri = input.jwks_uri ?? null;
  await deps.db.write(async (tx) => {
    await deps.clients.patch(id, { jwks, jwksUri }, tx);
    await deps.audit.append(
      {
        type: 'client.keys_replaced',
        result: 'allowed',
        userId: actor.adminId,
        clientId: id,
        requestId: actor.requestId,
        details: {
          before: client.jwksUri ?? kidsOf(client.jwks),
          after: jwksUri ?? kidsOf(jwks),
          address: actor.address,
        },
      },
      deps.clock.now(),
      tx,
    );
  });
  return existing(deps, id);
}

/**
 * Deletes a client. In one transaction: its live tasks end (with their subtrees, reason
 * `agent_deleted`), its delegations are revoked, every token it holds is revoked, its row goes, and
 * `client.deleted` is recorded. A client a trusted issuer's rule maps workloads to is refused until
 * the rule is removed, so that no rule is left pointing at nothing.
 */
export async function deleteClient(deps: ClientAdminDeps, id: string, actor: AdminActor): Promise<void> {
  const client = await existing(deps, id);
  const vouching = (await deps.trustedIssuers.list()).find((t) => t.rules.some((r) => r.agentId === id));
  if (vouching) {
    throw new OAuthError(
      'conflict',
      `trusted issuer "${vouching.name}" maps workloads to this agent: remove that rule (or the issuer) first`,
    );
  }
  const events = await deps.db.write(async (tx) => {
    const now = deps.clock.now();
    const ended = await deps.taskService.endWhere(tx, { agentId: id }, 'agent_deleted', now, actor.requestId);
    for (const d of await deps.delegations.listForAgent(id, tx)) {
      if (!(await deps.delegations.revoke(d.id, now, tx))) continue;
      await deps.audit.append(
        {
          type: 'delegation.revoked',
          result: 'allowed',
          userId: d.userId,
          clientId: id,
          delegationId: d.id,
          reason: 'client_deleted',
          requestId: actor.requestId,
          details: { by: actor.adminId },
        },
        now,
        tx,
      );
    }
    await deps.grants.revokeClientTokens(id, now, tx);
    await deps.clients.delete(id, tx);
    await deps.audit.append(
      {
        type: 'client.deleted',
        result: 'allowed',
        userId: actor.adminId,
        clientId: id,
        requestId: actor.requestId,
        details: { name: client.name, kind: client.kind, address: actor.address },
      },
      now,
      tx,
    );
    return ended;
  });
  deps.taskService.flush(events);
}
