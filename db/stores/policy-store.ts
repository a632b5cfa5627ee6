import { and, desc, eq, inArray, max } from 'drizzle-orm';
import type { Db, Tx } from '../open.js';
import { policyVersions, userGroups, users } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

export type PolicyStatus = 'draft' | 'shadow' | 'published' | 'retired';

/** One saved version of the organisation's policy set (README "Organisation policies"). */
export interface PolicyVersion {
  version: number;
  text: string;
  /** The policy tests saved with it (their shape is the policy service's `PolicyTest`). */
  tests: unknown[];
  status: PolicyStatus;
  comment: string | null;
  createdBy: string;
  createdAt: number;
  changedBy: string | null;
  changedAt: number | null;
}

type Row = typeof policyVersions.$inferSelect;

const toVersion = (r: Row): PolicyVersion => ({ ...r, tests: parseJson<unknown[]>(r.tests, []) });

/** The heads a process enforces: the published version and the one in shadow, if any. */
export interface PolicyHeads {
  published: number | null;
  shadow: number | null;
}

/** A person as policies read them (README "Organisation policies"). */
export interface PersonFacts {
  id: string;
  username: string;
  role: 'user' | 'admin';
  groups: string[];
}

/** People whose facts a process keeps at most (least recently read go first). */
const MAX_PEOPLE = 10_000;

export class PolicyStore {
  /** People's facts as last read, until `until` (performance.now() ms); see `personFacts`. */
  private readonly people = new Map<string, { facts: PersonFacts | null; until: number }>();

  /**
   * `personTtlMs`: how long a person's facts read for a decision are reused (0: read every time).
   * The broker uses ERRAND_POLICY_REFRESH, the time another process's policy change takes too.
   */
  constructor(
    private readonly db: Db,
    private readonly opts: { personTtlMs?: number } = {},
  ) {}

  async heads(): Promise<PolicyHeads> {
    const rows = await this.db.q
      .select({ version: policyVersions.version, status: policyVersions.status })
      .from(policyVersions)
      .where(inArray(policyVersions.status, ['published', 'shadow']));
    return {
      published: rows.find((r) => r.status === 'published')?.version ?? null,
      shadow: rows.find((r) => r.status === 'shadow')?.version ?? null,
    };
  }

  async get(version: number, tx?: Tx): Promise<PolicyVersion | null> {
    const [row] = await (tx ?? this.db.q)
      .select()
      .from(policyVersions)
      .where(eq(policyVersions.version, version))
      .limit(1);
    return row ? toVersion(row) : null;
  }

  /** Newest first. */
  async list(limit = 100): Promise<PolicyVersion[]> {
    return (await this.db.q.select().from(policyVersions).orderBy(desc(policyVersions.version)).limit(limit)).map(
      toVersion,
    );
  }

  /** Saves a new draft; its number is one above the highest so far (writes are serialized). */
  async insertDraft(
    v: Pick<PolicyVersion, 'text' | 'tests' | 'comment' | 'createdBy' | 'createdAt'>,
    tx: Tx,
  ): Promise<number> {
    const [row] = await tx.select({ top: max(policyVersions.version) }).from(policyVersions);
    const version = (row?.top ?? 0) + 1;
    await tx.insert(policyVersions).values({
      version,
      text: v.text,
      tests: toJson(v.tests),
      status: 'draft',
      comment: v.comment,
      createdBy: v.createdBy,
      createdAt: v.createdAt,
      changedBy: null,
      changedAt: null,
    });
    return version;
  }

  /** Moves every version in `from` to `to` (retiring a published one, dropping a shadow back to draft). */
  async demote(from: PolicyStatus, to: PolicyStatus, tx: Tx): Promise<void> {
    await tx.update(policyVersions).set({ status: to }).where(eq(policyVersions.status, from));
  }

  async setStatus(version: number, status: PolicyStatus, by: string, at: number, tx: Tx): Promise<void> {
    await tx
      .update(policyVersions)
      .set({ status, changedBy: by, changedAt: at })
      .where(eq(policyVersions.version, version));
  }

  /** A person's groups (local and upstream, or of one source), sorted, without repeats. */
  async groupsOf(userId: string, source?: 'local' | 'upstream'): Promise<string[]> {
    const rows = await this.db.q
      .select({ group: userGroups.group })
      .from(userGroups)
      .where(
        source ? and(eq(userGroups.userId, userId), eq(userGroups.source, source)) : eq(userGroups.userId, userId),
      );
    return [...new Set(rows.map((r) => r.group))].sort();
  }

  /**
   * A person's account, role and groups, as policies read them: reused for `personTtlMs` (a change
   * of groups made through this process is seen at once, see `forgetPerson`; one made elsewhere, or
   * of the role, within that time).
   */
  async personFacts(userId: string): Promise<PersonFacts | null> {
    const ttl = this.opts.personTtlMs ?? 0;
    const now = performance.now();
    const held = this.people.get(userId);
    if (held && held.until > now) return held.facts;
    const facts = await this.readPerson(userId);
    if (ttl > 0) {
      this.people.delete(userId);
      if (this.people.size >= MAX_PEOPLE) this.people.delete(this.people.keys().next().value as string);
      this.people.set(userId, { facts, until: now + ttl });
    }
    return facts;
  }

  /** Drops what is held about a person (after a change of their groups has committed). */
  forgetPerson(userId: string): void {
    this.people.delete(userId);
  }

  private async readPerson(userId: string): Promise<PersonFacts | null> {
    const [user] = await this.db.q
      .select({ id: users.id, username: users.username, role: users.role })
      .from(users)
      .where(eq(users.id, userId))
      .limit(1);
    if (!user) return null;
    return { id: user.id, username: user.username, role: user.role, groups: await this.groupsOf(userId) };
  }

  /** Replaces the groups of one source (an administrator's list, or the upstream provider's claim). */
  async setGroups(userId: string, source: 'local' | 'upstream', groups: string[], tx: Tx): Promise<void> {
    this.forgetPerson(userId);
    await tx.delete(userGroups).where(and(eq(userGroups.userId, userId), eq(userGroups.source, source)));
    if (groups.length > 0) {
      await tx.insert(userGroups).values([...new Set(groups)].map((group) => ({ userId, group, source })));
    }
  }
}
