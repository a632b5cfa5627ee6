import { and, count, eq, gt, inArray, isNull, lt, lte, ne } from 'drizzle-orm';
import { affected, type Db, type Tx } from '../open.js';
import { bootstrapTokens, sessions, signinFailures, userIdentities, users } from '../schema/index.js';

export interface User {
  id: string;
  username: string;
  displayName: string | null;
  role: 'user' | 'admin';
  createdAt: number;
  disabledAt: number | null;
  failedSignins: number;
  lockedUntil: number | null;
}

export interface UserWithPassword extends User {
  passwordHash: string | null;
}

export interface Session {
  userId: string;
  csrfToken: string;
  expiresAt: number;
}

/** An account at an upstream OpenID Connect provider: `iss` and `sub` of its ID tokens. */
export interface UpstreamIdentityRef {
  issuer: string;
  subject: string;
}

/** A user to create on a first federated sign-in; `username` is a wish, made unique on insert. */
export type NewLinkedUser = Omit<User, 'failedSignins' | 'lockedUntil'>;

/** A sign-in failure counter: an opaque key and the number of failures that lock it. */
export interface SignInCounter {
  key: string;
  maxFailures: number;
}

/** Whether a sign-in attempt may check a password, or until when it is locked. */
export type SignInReservation = { ok: true } | { ok: false; lockedUntil: number };

const MAX_USERNAME = 64;

function toUser(row: typeof users.$inferSelect): UserWithPassword {
  return { ...row };
}

export class UserStore {
  constructor(private readonly db: Db) {}

  async findByUsername(username: string): Promise<UserWithPassword | null> {
    const [row] = await this.db.q.select().from(users).where(eq(users.username, username)).limit(1);
    return row ? toUser(row) : null;
  }

  async get(id: string): Promise<User | null> {
    const [row] = await this.db.q.select().from(users).where(eq(users.id, id)).limit(1);
    if (!row) return null;
    const { passwordHash: _omit, ...user } = toUser(row);
    return user;
  }

  async list(): Promise<User[]> {
    const rows = await this.db.q.select().from(users).orderBy(users.createdAt);
    return rows.map(({ passwordHash: _omit, ...u }) => u);
  }

  async insert(user: UserWithPassword, tx?: Tx): Promise<void> {
    if (tx) await tx.insert(users).values(user);
    else await this.db.write((t) => t.insert(users).values(user));
  }

  async getWithPassword(id: string): Promise<UserWithPassword | null> {
    const [row] = await this.db.q.select().from(users).where(eq(users.id, id)).limit(1);
    return row ? toUser(row) : null;
  }

  /** Changes an account's role, display name, disabled time or password hash. */
  async update(
    id: string,
    patch: Partial<Pick<UserWithPassword, 'role' | 'displayName' | 'disabledAt' | 'passwordHash'>>,
    tx: Tx,
  ): Promise<void> {
    if (Object.keys(patch).length > 0) await tx.update(users).set(patch).where(eq(users.id, id));
  }

  /** Administrators who can sign in (not disabled). */
  async countActiveAdmins(tx: Tx): Promise<number> {
    const [row] = await tx
      .select({ n: count() })
      .from(users)
      .where(and(eq(users.role, 'admin'), isNull(users.disabledAt)));
    return row?.n ?? 0;
  }

  /** Ends a person's sessions, all of them or all but the one whose id hash is `keep`. */
  async deleteSessionsOf(userId: string, tx: Tx, keep?: string): Promise<void> {
    await tx
      .delete(sessions)
      .where(keep ? and(eq(sessions.userId, userId), ne(sessions.idHash, keep)) : eq(sessions.userId, userId));
  }

  async countAdmins(): Promise<number> {
    const [row] = await this.db.q.select({ n: count() }).from(users).where(eq(users.role, 'admin'));
    return row?.n ?? 0;
  }

  // Sign-in failures ---------------------------------------------------------------------------

  /**
   * Reserves one sign-in attempt on every counter, before the password is checked. Refused while
   * any counter is locked. Otherwise each counter is incremented now, as if the attempt had failed,
   * and locked for `lockout` seconds when it reaches its limit; a success then clears it. The check
   * and the increment are one write transaction (BEGIN IMMEDIATE), so parallel requests and other
   * processes on the same database never get more than the limit of passwords checked per lock-out.
   * A counter is forgotten `lockout` seconds after its last attempt.
   */
  async reserveSignInAttempt(counters: SignInCounter[], now: number, lockout: number): Promise<SignInReservation> {
    return this.db.write(async (tx) => {
      await tx.delete(signinFailures).where(lte(signinFailures.expiresAt, now));
      const keys = counters.map((c) => c.key);
      const rows = await tx.select().from(signinFailures).where(inArray(signinFailures.key, keys));
      const lockedUntil = Math.max(0, ...rows.map((r) => r.lockedUntil ?? 0));
      if (lockedUntil > now) return { ok: false, lockedUntil };
      for (const counter of counters) {
        const failures = (rows.find((r) => r.key === counter.key)?.failures ?? 0) + 1;
        const row = {
          failures,
          lockedUntil: failures >= counter.maxFailures ? now + lockout : null,
          expiresAt: now + lockout,
        };
        await tx
          .insert(signinFailures)
          .values({ key: counter.key, ...row })
          .onConflictDoUpdate({ target: signinFailures.key, set: row });
      }
      return { ok: true };
    });
  }

  /** Forgets the counters of a successful sign-in. */
  async clearSignInFailures(keys: string[]): Promise<void> {
    await this.db.write((tx) => tx.delete(signinFailures).where(inArray(signinFailures.key, keys)));
  }

  // Upstream identities -------------------------------------------------------------------------

  /** The user linked to an upstream identity, or null. */
  async findByIdentity(identity: UpstreamIdentityRef): Promise<User | null> {
    const [row] = await this.db.q
      .select({ userId: userIdentities.userId })
      .from(userIdentities)
      .where(and(eq(userIdentities.issuer, identity.issuer), eq(userIdentities.subject, identity.subject)))
      .limit(1);
    return row ? this.get(row.userId) : null;
  }

  /**
   * Links an upstream identity to an existing user (`userId`) or to a new password-less user created
   * in the same transaction (`create`; its username gets a `-2`, `-3`… suffix when taken). Returns the
   * linked user: when the identity is already linked (two first sign-ins racing), the existing link wins.
   */
  async linkIdentity(
    identity: UpstreamIdentityRef,
    target: { userId: string } | { create: NewLinkedUser },
    now: number,
  ): Promise<User> {
    const userId = await this.db.write(async (tx) => {
      const [existing] = await tx
        .select({ userId: userIdentities.userId })
        .from(userIdentities)
        .where(and(eq(userIdentities.issuer, identity.issuer), eq(userIdentities.subject, identity.subject)));
      if (existing) return existing.userId;
      let id: string;
      if ('userId' in target) {
        id = target.userId;
      } else {
        const base = target.create.username.slice(0, MAX_USERNAME);
        let username = base;
        for (let n = 2; ; n++) {
          const [taken] = await tx.select({ id: users.id }).from(users).where(eq(users.username, username)).limit(1);
          if (!taken) break;
          const suffix = `-${n}`;
          username = `${base.slice(0, MAX_USERNAME - suffix.length)}${suffix}`;
        }
        id = target.create.id;
        await tx
          .insert(users)
          .values({ ...target.create, username, passwordHash: null, failedSignins: 0, lockedUntil: null });
      }
      await tx.insert(userIdentities).values({ ...identity, userId: id, createdAt: now });
      return id;
    });
    const user = await this.get(userId);
    if (!user) throw new Error('linked user not found');
    return user;
  }

  // Bootstrap -----------------------------------------------------------------------------------

  async addBootstrapToken(tokenHash: string, now: number, expiresAt: number): Promise<void> {
    await this.db.write((tx) => tx.insert(bootstrapTokens).values({ tokenHash, createdAt: now, expiresAt }));
  }

  async isBootstrapTokenValid(tokenHash: string, now: number): Promise<boolean> {
    const [row] = await this.db.q
      .select()
      .from(bootstrapTokens)
      .where(
        and(
          eq(bootstrapTokens.tokenHash, tokenHash),
          isNull(bootstrapTokens.usedAt),
          gt(bootstrapTokens.expiresAt, now),
        ),
      )
      .limit(1);
    return row !== undefined;
  }

  /**
   * Creates the first administrator with a one-time bootstrap token. Consuming the token and
   * creating the user are one transaction, and the token works only while no administrator exists.
   */
  async createFirstAdmin(tokenHash: string, admin: UserWithPassword, now: number): Promise<boolean> {
    return this.db.write(async (tx) => {
      const [admins] = await tx.select({ n: count() }).from(users).where(eq(users.role, 'admin'));
      if ((admins?.n ?? 0) > 0) return false;
      const used = await tx
        .update(bootstrapTokens)
        .set({ usedAt: now })
        .where(
          and(
            eq(bootstrapTokens.tokenHash, tokenHash),
            isNull(bootstrapTokens.usedAt),
            gt(bootstrapTokens.expiresAt, now),
          ),
        );
      if (affected(used) !== 1) return false;
      await tx.insert(users).values(admin);
      // Every other outstanding bootstrap link dies with the first administrator.
      await tx.update(bootstrapTokens).set({ usedAt: now }).where(isNull(bootstrapTokens.usedAt));
      return true;
    });
  }

  /**
   * Creates an administrator only while none exists (the check and the insert in `tx`, a write
   * transaction); every outstanding bootstrap link dies with it. False when an administrator exists.
   */
  async insertFirstAdmin(admin: UserWithPassword, now: number, tx: Tx): Promise<boolean> {
    const [admins] = await tx.select({ n: count() }).from(users).where(eq(users.role, 'admin'));
    if ((admins?.n ?? 0) > 0) return false;
    await tx.insert(users).values(admin);
    await tx.update(bootstrapTokens).set({ usedAt: now }).where(isNull(bootstrapTokens.usedAt));
    return true;
  }

  // Sessions ------------------------------------------------------------------------------------

  async createSession(idHash: string, session: Session, now: number): Promise<void> {
    await this.db.write(async (tx) => {
      await tx.delete(sessions).where(lt(sessions.expiresAt, now));
      await tx.insert(sessions).values({ idHash, ...session, createdAt: now });
    });
  }

  async getSession(idHash: string, now: number): Promise<Session | null> {
    const [row] = await this.db.q
      .select()
      .from(sessions)
      .where(and(eq(sessions.idHash, idHash), gt(sessions.expiresAt, now)))
      .limit(1);
    return row ? { userId: row.userId, csrfToken: row.csrfToken, expiresAt: row.expiresAt } : null;
  }

  async deleteSession(idHash: string): Promise<void> {
    await this.db.write((tx) => tx.delete(sessions).where(eq(sessions.idHash, idHash)));
  }
}
