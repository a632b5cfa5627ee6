import { eq } from 'drizzle-orm';
import type { TrustedIssuer, WorkloadRule } from '../../broker/core/trusted-issuer.js';
import { affected, type Db, type Tx } from '../open.js';
import { trustedIssuers } from '../schema/index.js';
import { parseJson, toJson } from './json.js';

type Row = typeof trustedIssuers.$inferSelect;

function toIssuer(row: Row): TrustedIssuer {
  return {
    id: row.id,
    kind: row.kind,
    name: row.name,
    issuer: row.issuer,
    jwksUri: row.jwksUri,
    jwks: parseJson<TrustedIssuer['jwks']>(row.jwks, null),
    audience: row.audience,
    maxLifetime: row.maxLifetime,
    rules: parseJson<WorkloadRule[]>(row.rules, []),
    status: row.status,
    createdAt: row.createdAt,
  };
}

function toRow(t: TrustedIssuer): Row {
  return { ...t, jwks: t.jwks ? toJson(t.jwks) : null, rules: toJson(t.rules) };
}

/** Trusted workload issuers (OIDC, SPIFFE trust domains, Kubernetes, CI) and their rules. */
export class TrustedIssuerStore {
  constructor(private readonly db: Db) {}

  async list(): Promise<TrustedIssuer[]> {
    return (await this.db.q.select().from(trustedIssuers).orderBy(trustedIssuers.createdAt)).map(toIssuer);
  }

  async get(id: string): Promise<TrustedIssuer | null> {
    const [row] = await this.db.q.select().from(trustedIssuers).where(eq(trustedIssuers.id, id)).limit(1);
    return row ? toIssuer(row) : null;
  }

  /** The issuer registered under an `iss` value (or a SPIFFE trust domain `spiffe://<domain>`). */
  async findByIssuer(issuer: string): Promise<TrustedIssuer | null> {
    const [row] = await this.db.q.select().from(trustedIssuers).where(eq(trustedIssuers.issuer, issuer)).limit(1);
    return row ? toIssuer(row) : null;
  }

  async insert(t: TrustedIssuer, tx: Tx): Promise<void> {
    await tx.insert(trustedIssuers).values(toRow(t));
  }

  async update(t: TrustedIssuer, tx: Tx): Promise<void> {
    const { id, createdAt: _created, ...rest } = toRow(t);
    await tx.update(trustedIssuers).set(rest).where(eq(trustedIssuers.id, id));
  }

  async delete(id: string, tx: Tx): Promise<boolean> {
    const res = await tx.delete(trustedIssuers).where(eq(trustedIssuers.id, id));
    return affected(res) === 1;
  }
}
