import { z } from 'zod';
import type { Db, Tx } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { Client } from '../core/client.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { isQuarantined } from '../core/quarantine.js';
import type { PolicyEngine } from './policy/policy-engine.js';

/**
 * Quarantine of new registrations (README "Quarantine of new registrations and findings"): clients
 * that register themselves start quarantined (`core/quarantine.ts` holds the rule tokens pass
 * through); an admission rule or an administrator admits them.
 */

/**
 * The admission rule port, asked once when a client registers itself (dynamic registration or its
 * first metadata document). True: the client starts admitted, audited as `admitted_by_rule`.
 */
export interface ClientAdmission {
  admits(client: Client): Promise<boolean>;
}

/** No rule: nobody is admitted without an administrator. */
export const noAdmissionRule: ClientAdmission = { admits: async () => false };

/**
 * The organisation's policies as the admission rule: a client starts admitted when a policy permits
 * `admit` with it as principal and resource (README "Organisation policies"). The built-in default
 * permits only the `delegated` actions, so nothing is admitted until a policy says so.
 */
export function policyAdmission(policy: Pick<PolicyEngine, 'decide'>): ClientAdmission {
  return {
    admits: async (client) => {
      const agent = { client, assurance: null, workload: null };
      return policy.decide({ action: 'admit', principal: { agent }, resource: { agent }, context: null, requestId: '' })
        .allowed;
    },
  };
}

/**
 * When a new self-registered client's quarantine starts: `now`, or null when the rule admits it.
 * A rule that fails leaves the client quarantined (an administrator can still admit it).
 */
export async function startingQuarantine(
  admission: ClientAdmission | undefined,
  client: Client,
  now: number,
): Promise<number | null> {
  try {
    return (await (admission ?? noAdmissionRule).admits(client)) ? null : now;
  } catch {
    return now;
  }
}

/** The audit event of an admission a rule made at registration, in the registration's transaction. */
export async function recordRuleAdmission(
  audit: AuditStore,
  client: Pick<Client, 'id' | 'source'>,
  requestId: string | null,
  now: number,
  tx: Tx,
): Promise<void> {
  await audit.append(
    {
      type: 'client.admitted',
      result: 'allowed',
      clientId: client.id,
      reason: 'admitted_by_rule',
      requestId,
      details: { source: client.source },
    },
    now,
    tx,
  );
}

/** `GET /api/admin/clients?quarantined=true|false`: only the clients waiting (or not) to be admitted. */
export const ClientListQuerySchema = z.object({ quarantined: z.enum(['true', 'false']).optional() }).strict();

/** The registered clients, optionally only the quarantined ones (or only the others). */
export async function listClients(
  deps: { clients: Pick<ClientStore, 'list'> },
  query: z.output<typeof ClientListQuerySchema>,
): Promise<Client[]> {
  const all = await deps.clients.list();
  if (query.quarantined === undefined) return all;
  const wanted = query.quarantined === 'true';
  return all.filter((c) => isQuarantined(c) === wanted);
}

export interface AdmissionDeps {
  db: Db;
  clients: ClientStore;
  audit: AuditStore;
  clock: Clock;
}

/**
 * An administrator admits a quarantined client: from the commit on it may get tokens for every
 * resource its registration and people's consent allow. Recorded as `client.admitted` (reason
 * `admin`) with the administrator's address. Admitting a client that is not quarantined is a conflict.
 */
export async function admitClient(
  deps: AdmissionDeps,
  id: string,
  actor: { adminId: string; requestId: string; address?: string | undefined },
): Promise<Client> {
  const client = await deps.clients.get(id);
  if (!client) throw new OAuthError('not_found', 'no such client');
  await deps.db.write(async (tx) => {
    if (!(await deps.clients.admit(id, tx))) throw new OAuthError('conflict', 'the client is not quarantined');
    await deps.audit.append(
      {
        type: 'client.admitted',
        result: 'allowed',
        userId: actor.adminId,
        clientId: id,
        reason: 'admin',
        requestId: actor.requestId,
        details: {
          source: client.source,
          quarantinedAt: client.quarantinedAt ?? null,
          ...(actor.address ? { address: actor.address } : {}),
        },
      },
      deps.clock.now(),
      tx,
    );
  });
  return (await deps.clients.get(id))!;
}
