import { OAuthError } from '../core/errors.js';
import type { AdminDeps } from './admin.js';

/**
 * An administrator's decision on an agent that registered itself and waits (`pending`): approve
 * makes it active, reject disables it (kept, so the inventory shows what was refused). The status
 * change and its audit event are one transaction; a decision on a client that is not pending is a
 * conflict, so two administrators cannot both decide.
 */
export async function decideClient(
  deps: Pick<AdminDeps, 'db' | 'clients' | 'audit' | 'clock'>,
  id: string,
  decision: 'approve' | 'reject',
  adminId: string,
  requestId: string,
  address?: string,
) {
  const client = await deps.clients.get(id);
  if (!client) throw new OAuthError('not_found', 'no such client');
  const now = deps.clock.now();
  await deps.db.write(async (tx) => {
    const next = decision === 'approve' ? 'active' : 'disabled';
    if (!(await deps.clients.setStatusFrom(id, 'pending', next, tx))) {
      throw new OAuthError('conflict', `the client is ${client.status}, not awaiting approval`);
    }
    await deps.audit.append(
      {
        type: decision === 'approve' ? 'client.approved' : 'client.rejected',
        result: 'allowed',
        userId: adminId,
        clientId: id,
        reason: 'admin',
        requestId,
        ...(address ? { details: { address } } : {}),
      },
      now,
      tx,
    );
    // An administrator who approves the agent has looked at it: approval admits it from quarantine too.
    if (decision === 'approve' && (await deps.clients.admit(id, tx))) {
      await deps.audit.append(
        {
          type: 'client.admitted',
          result: 'allowed',
          userId: adminId,
          clientId: id,
          reason: 'approved',
          requestId,
          details: { source: client.source, ...(address ? { address } : {}) },
        },
        now,
        tx,
      );
    }
  });
  return (await deps.clients.get(id))!;
}
