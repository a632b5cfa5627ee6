import { z } from 'zod';
import type { ClientStore } from '../../db/stores/client-store.js';
import { type Client, credentialKindOf } from '../core/client.js';
import { isQuarantined } from '../core/quarantine.js';

/**
 * Findings (README "Quarantine of new registrations and findings"): non-human identities an
 * administrator should act on, each with what to do about it as concrete admin API calls. The admin
 * API (`GET /api/admin/findings`) and the console's Findings page both list these.
 */

export type FindingKind = 'static_secret' | 'no_owner' | 'quarantined';

/** One admin API call that is part of the fix; `body` is an example to complete. */
export interface FindingStep {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  body?: Record<string, unknown>;
  /** What the call is for. */
  purpose: string;
}

export interface Finding {
  kind: FindingKind;
  client: Pick<Client, 'id' | 'name' | 'kind' | 'source' | 'status' | 'ownerId' | 'quarantinedAt'>;
  /** What is wrong, in one sentence. */
  problem: string;
  /** The migration or fix, in words. */
  hint: string;
  steps: FindingStep[];
}

const clientPath = (id: string) => `/api/admin/clients/${encodeURIComponent(id)}`;

function staticSecret(c: Client): Finding {
  return {
    kind: 'static_secret',
    client: c,
    problem: 'It authenticates with a static client secret, which can be copied and replayed from anywhere.',
    hint:
      'Register a public key (private_key_jwt) or a workload identity from a trusted issuer, then remove the secret: ' +
      'create a replacement client with its key (or token_endpoint_auth_method "workload_federation" and a trusted ' +
      'issuer rule naming it), move the agent to the new client_id, then delete this client, which removes the secret.',
    steps: [
      {
        purpose: "a replacement client that authenticates with the agent's public key",
        method: 'POST',
        path: '/api/admin/clients',
        body: {
          kind: c.kind,
          name: c.name,
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: ['<the agent public key (JWK)>'] },
          grant_types: c.grantTypes,
          ...(c.scope ? { scope: c.scope } : {}),
          ...(c.ownerId ? { owner_id: c.ownerId } : {}),
        },
      },
      {
        purpose:
          'or, for a workload identity: a replacement client with token_endpoint_auth_method "workload_federation", and a trusted issuer rule mapping the workload to it',
        method: 'POST',
        path: '/api/admin/trusted-issuers',
        body: {
          kind: 'oidc',
          name: '<issuer name>',
          issuer: '<issuer URL>',
          rules: [{ match: { sub: '<workload subject>' }, agent_id: '<the new client_id>' }],
        },
      },
      {
        purpose: 'once the agent uses the new client_id: remove this client and its secret',
        method: 'DELETE',
        path: clientPath(c.id),
      },
    ],
  };
}

function noOwner(c: Client): Finding {
  return {
    kind: 'no_owner',
    client: c,
    problem: 'No person answers for this agent.',
    hint: 'Name the person responsible for it as its owner.',
    steps: [{ purpose: 'set its owner', method: 'PATCH', path: clientPath(c.id), body: { owner_id: '<user id>' } }],
  };
}

function quarantined(c: Client): Finding {
  return {
    kind: 'quarantined',
    client: c,
    problem: 'It registered itself and may get tokens only for public resources until it is admitted.',
    hint: 'Check who registered it and what it asks for; admit it, or disable or delete it.',
    steps: [
      { purpose: 'admit it', method: 'POST', path: `${clientPath(c.id)}/admit` },
      { purpose: 'or keep it out', method: 'PATCH', path: clientPath(c.id), body: { status: 'disabled' } },
    ],
  };
}

/** The findings about these clients: static secrets, agents without an owner, clients awaiting admission. */
export function findingsOf(clients: readonly Client[]): Finding[] {
  const out: Finding[] = [];
  for (const c of clients) {
    if (c.status === 'disabled' || c.status === 'expired') continue;
    if (credentialKindOf(c.authMethod) === 'client_secret') out.push(staticSecret(c));
    if (c.kind === 'agent' && c.ownerId === null) out.push(noOwner(c));
    if (isQuarantined(c)) out.push(quarantined(c));
  }
  return out;
}

/** Every current finding, from the client registry. */
export async function listFindings(deps: { clients: Pick<ClientStore, 'list'> }): Promise<Finding[]> {
  return findingsOf(await deps.clients.list());
}

const StepSchema = z
  .object({
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
    path: z.string(),
    body: z.record(z.string(), z.unknown()).optional(),
    purpose: z.string(),
  })
  .strict();

/** `GET /api/admin/findings` entries. */
export const FindingViewSchema = z
  .object({
    kind: z.enum(['static_secret', 'no_owner', 'quarantined']),
    client_id: z.string(),
    client_name: z.string(),
    client_kind: z.string(),
    source: z.enum(['admin', 'dcr', 'cimd']),
    status: z.string(),
    owner_id: z.string().nullable(),
    quarantined_at: z.number().int().nullable(),
    problem: z.string(),
    hint: z.string(),
    steps: z.array(StepSchema),
  })
  .strict();

export function findingView(f: Finding): z.infer<typeof FindingViewSchema> {
  return {
    kind: f.kind,
    client_id: f.client.id,
    client_name: f.client.name,
    client_kind: f.client.kind,
    source: f.client.source,
    status: f.client.status,
    owner_id: f.client.ownerId,
    quarantined_at: f.client.quarantinedAt ?? null,
    problem: f.problem,
    hint: f.hint,
    steps: f.steps.map((s) => ({
      method: s.method,
      path: s.path,
      ...(s.body ? { body: s.body } : {}),
      purpose: s.purpose,
    })),
  };
}
