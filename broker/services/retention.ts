import { type SQL, sql } from 'drizzle-orm';
import { jsonText } from '../../db/dialect.js';
import { affected, type Db } from '../../db/open.js';
import type { Clock } from '../core/ports.js';

/**
 * Retention: deletes what the broker no longer needs so the database does not grow without bound.
 * Every statement deletes at most `batchSize` rows (one short write transaction each), and one call
 * of `prune()` does at most `maxBatches` statements per table, so a large backlog is worked off over
 * several maintenance runs instead of stalling token issuance.
 *
 * It runs from maintenance on one process per period across every process sharing the database
 * (broker/broker.ts claims the `retention` job in `maintenance_leases`); a second run at the same
 * time would still be correct, only wasted.
 *
 * Status list bits of deleted tokens are irrelevant: a token row is deleted only after its `exp`
 * has passed, and no verifier accepts an expired token whatever its status bit says.
 */
export interface RetentionPolicy {
  /** Seconds past expiry/use after which token-like rows are deleted. */
  tokens: number;
  /** Seconds after a task ended after which it is deleted (if no live token references it). */
  tasks: number;
  /** Seconds after which audit events are deleted; 0 keeps them forever. */
  audit: number;
}

export interface RetentionResult {
  issuedTokens: number;
  refreshTokens: number;
  authorizationCodes: number;
  authorizationRequests: number;
  usedAssertions: number;
  backchannelRequests: number;
  pendingDelegations: number;
  tasks: number;
  a2aTasks: number;
  auditEvents: number;
  revocationLog: number;
}

export const RETENTION_BATCH_SIZE = 5000;

/** Seconds after which a delegation request still pending is deleted. */
export const PENDING_DELEGATION_TTL = 86_400;

export class RetentionService {
  constructor(
    private readonly deps: { db: Db; clock: Clock },
    private readonly policy: RetentionPolicy,
    private readonly opts: { batchSize?: number; maxBatches?: number } = {},
  ) {}

  async prune(): Promise<RetentionResult> {
    const now = this.deps.clock.now();
    const tokenCutoff = now - this.policy.tokens;
    const taskCutoff = now - this.policy.tasks;
    const t = tokenCutoff;
    const result: RetentionResult = {
      issuedTokens: await this.batched('issued_tokens', 'jti', sql`expires_at < ${t}`),
      refreshTokens: await this.batched(
        'refresh_tokens',
        'token_hash',
        sql`expires_at < ${t} OR family_expires_at < ${t} OR revoked_at < ${t} OR used_at < ${t}`,
      ),
      authorizationCodes: await this.batched(
        'authorization_codes',
        'code_hash',
        sql`expires_at < ${t} OR used_at < ${t}`,
      ),
      authorizationRequests: await this.batched('authorization_requests', 'id', sql`expires_at < ${t}`),
      usedAssertions: await this.batched('used_assertions', 'key', sql`expires_at < ${t}`),
      backchannelRequests: await this.batched(
        'backchannel_requests',
        'auth_req_id_hash',
        sql`expires_at < ${t} OR redeemed_at < ${t}`,
      ),
      // A request nobody decided within a day is dropped (its backchannel request went above).
      pendingDelegations: await this.batched(
        'delegations',
        'id',
        sql`status = 'pending' AND created_at < ${now - PENDING_DELEGATION_TTL}`,
      ),
      // An ended task goes only when no unexpired token names it and no child task is left
      // (children go first, their parent on a later batch or run).
      tasks: await this.batched(
        'tasks',
        'id',
        sql`ended_at IS NOT NULL AND ended_at < ${taskCutoff}
          AND NOT EXISTS (SELECT 1 FROM issued_tokens it WHERE it.task_id = tasks.id AND it.expires_at >= ${now})
          AND NOT EXISTS (SELECT 1 FROM tasks c WHERE c.parent_task_id = tasks.id)`,
      ),
      // An A2A task goes once it has not changed for the task retention and the Errand task it
      // stands for (if any) is gone (so after the Errand task, never before).
      a2aTasks: await this.batched(
        'a2a_tasks',
        'id',
        sql`updated_at < ${taskCutoff}
          AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = ${jsonText(this.deps.db.q, sql.raw('a2a_tasks.body'), ['metadata', 'errand_task_id'])})`,
      ),
      auditEvents:
        this.policy.audit > 0 ? await this.batched('audit_events', 'id', sql`at < ${now - this.policy.audit}`) : 0,
      // Push streams read the log within a poll interval; a row is kept as long as a token row, well past that.
      revocationLog: await this.batched('revocation_log', 'seq', sql`at < ${t}`),
    };
    return result;
  }

  /** Deletes matching rows `batchSize` at a time until none are left or `maxBatches` is reached. */
  private async batched(table: string, key: string, where: SQL): Promise<number> {
    const batchSize = this.opts.batchSize ?? RETENTION_BATCH_SIZE;
    const maxBatches = this.opts.maxBatches ?? 20;
    const tbl = sql.identifier(table);
    const col = sql.identifier(key);
    let total = 0;
    for (let i = 0; i < maxBatches; i++) {
      const res = await this.deps.db.write((tx) =>
        tx.run(sql`DELETE FROM ${tbl} WHERE ${col} IN (SELECT ${col} FROM ${tbl} WHERE ${where} LIMIT ${batchSize})`),
      );
      total += affected(res);
      if (affected(res) < batchSize) break;
      // Yield between batches so requests waiting on the database get their turn.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return total;
  }
}
