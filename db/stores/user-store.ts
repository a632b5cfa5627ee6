import { and, count, eq, gt, isNull, lt } from 'drizzle-orm';
import type { Db } from '../open.js';
import { bootstrapTokens, sessions, users } from '../schema/index.js';

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

  async insert(user: UserWithPassword): Promise<void> {
    await this.db.write((tx) => tx.insert(users).values(user));
  }

  async countAdmins(): Promise<number> {
    const [row] = await this.db.q.select({ n: count() }).from(users).where(eq(users.role, 'admin'));
    return row?.n ?? 0;
  }

  /** Counts a failed sign-in; locks the account for `lockout` seconds after `maxFailures`. */
  async recordFailure(id: string, now: number, maxFailures: number, lockout: number): Promise<void> {
    await this.db.write(async (tx) => {
      const [row] = await tx.select().from(users).where(eq(users.id, id));
      if (!row) return;
      const failures = row.failedSignins + 1;
      await tx
        .update(users)
        .set(failures >= maxFailures ? { failedSignins: 0, lockedUntil: now + lockout } : { failedSignins: failures })
        .where(eq(users.id, id));
    });
  }

  async recordSuccess(id: string): Promise<void> {
    await this.db.write((tx) => tx.update(users).set({ failedSignins: 0, lockedUntil: null }).where(eq(users.id, id)));
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
      if (used.rowsAffected !== 1) return false;
      await tx.insert(users).values(admin);
      // Every other outstanding bootstrap link dies with the first administrator.
      await tx.update(bootstrapTokens).set({ usedAt: now }).where(isNull(bootstrapTokens.usedAt));
      return true;
    });
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
