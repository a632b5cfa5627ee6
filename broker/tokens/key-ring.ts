import type { KeyObject } from 'node:crypto';
import {
  exportPrivatePkcs8,
  generateSigningKey,
  importSigningKey,
  type JWK,
  type JwsKey,
  type SigningAlg,
} from '@errand/protocol';
import { eq, inArray, sql } from 'drizzle-orm';
import { greater } from '../../db/dialect.js';
import type { Db } from '../../db/open.js';
import { signingKeys } from '../../db/schema/index.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import {
  type KeySchedulePolicy,
  planRotation,
  publishedKeys,
  rotateNow,
  type ScheduledKey,
  signingKeyAt,
} from '../core/key-schedule.js';
import type { Clock } from '../core/ports.js';
import type { Logger } from '../log.js';
import type { CryptoBox } from './crypto-box.js';
import { newId } from './random.js';

interface RingKey extends ScheduledKey {
  key: JwsKey;
  createdAt: number;
}

export interface KeyInfo {
  kid: string;
  alg: SigningAlg;
  createdAt: number;
  activatesAt: number;
  state: 'next' | 'current' | 'previous';
}

export interface KeyRingDeps {
  db: Db;
  box: CryptoBox;
  clock: Clock;
  log: Logger;
  audit: AuditStore;
  alg: SigningAlg;
  policy: KeySchedulePolicy;
}

/**
 * Errand's signing keys. Rotation is decided inside a database write transaction, so several broker
 * processes on one database agree on one schedule; activation is by time, so they all switch keys
 * at the same moment without talking to each other. Signing reads only the in-memory copy.
 */
export class KeyRing {
  private keys: RingKey[] = [];

  constructor(private readonly deps: KeyRingDeps) {}

  /** Creates the next key when it is due, deletes keys whose tokens have all expired, reloads. */
  async maintain(): Promise<void> {
    const { db, clock, policy } = this.deps;
    const created = await db.write(async (tx) => {
      const now = clock.now();
      // Read inside the write transaction: a `signedUntil` recorded by another process is seen here.
      const rows = await tx
        .select({ kid: signingKeys.kid, activatesAt: signingKeys.activatesAt, signedUntil: signingKeys.signedUntil })
        .from(signingKeys);
      const plan = planRotation(rows, now, policy);
      if (plan.expire.length > 0) await tx.delete(signingKeys).where(inArray(signingKeys.kid, plan.expire));
      if (!plan.create) return null;
      const kid = await this.insertKey(tx, plan.create.activatesAt, now);
      await this.deps.audit.append(
        { type: 'key.created', result: 'allowed', details: { kid, activatesAt: plan.create.activatesAt } },
        now,
        tx,
      );
      return { kid, activatesAt: plan.create.activatesAt, expired: plan.expire };
    });
    if (created) this.deps.log.info('key.created', { kid: created.kid, activatesAt: created.activatesAt });
    await this.reload();
  }

  /** Pulls the next key forward (or creates one) to sign after `delay` seconds: an admin's "rotate now". */
  /** `actor`: who asked (a person's id, or an admin service client's), for the `key.rotated` event. */
  async rotateNow(
    delay: number,
    actor?: { userId: string; requestId: string; address: string },
  ): Promise<{ kid: string; activatesAt: number }> {
    const { db, clock } = this.deps;
    const result = await db.write(async (tx) => {
      const now = clock.now();
      const rows = await tx.select({ kid: signingKeys.kid, activatesAt: signingKeys.activatesAt }).from(signingKeys);
      const plan = rotateNow(rows, now, delay);
      let kid = plan.kid;
      if (kid) await tx.update(signingKeys).set({ activatesAt: plan.activatesAt }).where(eq(signingKeys.kid, kid));
      else kid = await this.insertKey(tx, plan.activatesAt, now);
      await this.deps.audit.append(
        {
          type: 'key.rotated',
          result: 'allowed',
          ...(actor ? { userId: actor.userId, requestId: actor.requestId } : {}),
          details: { kid, activatesAt: plan.activatesAt, ...(actor ? { address: actor.address } : {}) },
        },
        now,
        tx,
      );
      return { kid, activatesAt: plan.activatesAt };
    });
    this.deps.log.info('key.rotated', result);
    await this.reload();
    return result;
  }

  /** Reloads keys from the database (other processes may have created some). */
  async reload(): Promise<void> {
    const rows = await this.deps.db.q.select().from(signingKeys);
    const known = new Map(this.keys.map((k) => [k.kid, k]));
    this.keys = rows.map((row) => {
      const cached = known.get(row.kid);
      if (cached) return { ...cached, activatesAt: row.activatesAt, signedUntil: row.signedUntil };
      const pkcs8 = this.deps.box.open(row.privateKeySealed, `signing-key:${row.kid}`);
      return {
        kid: row.kid,
        activatesAt: row.activatesAt,
        signedUntil: row.signedUntil,
        createdAt: row.createdAt,
        key: importSigningKey({ kid: row.kid, alg: row.alg, pkcs8 }),
      };
    });
  }

  /**
   * The key that signs now. After a backward clock step that is still the key that was signing
   * (`signingKeyAt`), so issuing never stops for want of a key.
   */
  signingKey(): JwsKey {
    const current = signingKeyAt(this.keys, this.deps.clock.now());
    if (!current) throw new Error('no signing key: KeyRing.maintain() must run before issuing tokens');
    return (current as RingKey).key;
  }

  /**
   * The key to sign a token issued at `iat` that lives no longer than the policy's `maxTokenTtl`:
   * the key stays published at least that long after it stops signing, with nothing to record.
   */
  signingKeyFor(token: { iat: number; exp: number }): JwsKey {
    const { maxTokenTtl } = this.deps.policy;
    if (token.exp - token.iat > maxTokenTtl) {
      throw new Error(`a token living past maxTokenTtl (${maxTokenTtl} s) must be signed with signingKeyUntil`);
    }
    return this.signingKey();
  }

  /**
   * The key to sign a long-lived token expiring at `exp` (a delegation credential). Its `exp` is
   * recorded on the key's row first, so no process deletes the key before the token expires. One
   * small write per such token; the short-lived tokens above need none.
   */
  async signingKeyUntil(exp: number): Promise<JwsKey> {
    if (exp <= this.deps.clock.now() + this.deps.policy.maxTokenTtl) return this.signingKey();
    for (let attempt = 0; attempt < 2; attempt++) {
      const current = signingKeyAt(this.keys, this.deps.clock.now()) as RingKey | undefined;
      if (!current) break;
      const recorded = await this.deps.db.write((tx) =>
        tx
          .update(signingKeys)
          .set({ signedUntil: greater(tx, sql`coalesce(${signingKeys.signedUntil}, 0)`, sql`${exp}`) })
          .where(eq(signingKeys.kid, current.kid))
          .returning({ signedUntil: signingKeys.signedUntil }),
      );
      if (recorded[0]) {
        current.signedUntil = recorded[0].signedUntil;
        return current.key;
      }
      // Another process deleted the key: this process's copy of the ring is stale. Reload, retry once.
      await this.reload();
    }
    throw new Error('no signing key could be recorded for a long-lived token');
  }

  /** The public key for a `kid` Errand published, if it is still published. */
  verificationKey(kid: string): KeyObject | undefined {
    const now = this.deps.clock.now();
    const published = publishedKeys(this.keys, now, this.deps.policy) as RingKey[];
    return published.find((k) => k.kid === kid)?.key.publicKey;
  }

  /** The JWKS document: next, current and still-needed previous keys (RFC 7517 §5). */
  jwks(): { keys: JWK[] } {
    const published = publishedKeys(this.keys, this.deps.clock.now(), this.deps.policy) as RingKey[];
    return { keys: published.sort((a, b) => b.activatesAt - a.activatesAt).map((k) => k.key.publicJwk) };
  }

  /** Published keys with their role, for the admin API. */
  describe(): KeyInfo[] {
    const now = this.deps.clock.now();
    const current = signingKeyAt(this.keys, now);
    const published = publishedKeys(this.keys, now, this.deps.policy) as RingKey[];
    return published
      .sort((a, b) => b.activatesAt - a.activatesAt)
      .map((k) => ({
        kid: k.kid,
        alg: k.key.alg,
        createdAt: k.createdAt,
        activatesAt: k.activatesAt,
        state:
          k.kid === current?.kid ? 'current' : current && k.activatesAt > current.activatesAt ? 'next' : 'previous',
      }));
  }

  private async insertKey(tx: Parameters<Parameters<Db['write']>[0]>[0], activatesAt: number, now: number) {
    const kid = newId('key').slice(4);
    const key = generateSigningKey(this.deps.alg, kid);
    const sealed = this.deps.box.seal(exportPrivatePkcs8(key), `signing-key:${kid}`);
    await tx.insert(signingKeys).values({
      kid,
      alg: this.deps.alg,
      publicJwk: JSON.stringify(key.publicJwk),
      privateKeySealed: sealed,
      createdAt: now,
      activatesAt,
    });
    return kid;
  }
}
