import { z } from 'zod';
import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { TrustedIssuerStore } from '../../db/stores/trusted-issuer-store.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { AUTH_METHOD } from '../core/protocol.js';
import { spiffeTrustDomain, type TrustedIssuer, type WorkloadRule } from '../core/trusted-issuer.js';
import { newId } from '../tokens/random.js';

/**
 * Administration of trusted workload issuers (RFC 7523 §3, JWT-SVID, README "Assurance levels"): which outside platforms may
 * vouch for agents, with which keys and audience, and which of their workloads map to which agent.
 */

const ClaimPath = z
  .string()
  .min(1)
  .max(200)
  // Names joined by `/`; `~1` and `~0` stand for `/` and `~` in a name (RFC 6901 §3); a trailing
  // `[]` matches any element of an array claim.
  .regex(
    /^(?:[A-Za-z0-9_.:-]|~[01])+(?:\/(?:[A-Za-z0-9_.:-]|~[01])+)*(?:\[\])?$/,
    'must be a claim name, or nested names joined by / (~1 for a / in a name), optionally ending in []',
  );
const Pattern = z.string().min(1).max(500);

export const WorkloadRuleSchema = z
  .object({
    /** Claim → pattern (or patterns, any of which may match); all listed claims must match. */
    match: z
      .record(ClaimPath, z.union([Pattern, z.array(Pattern).min(1).max(20)]))
      .refine((m) => Object.keys(m).length > 0 && Object.keys(m).length <= 20, 'name 1 to 20 claims'),
    agent_id: z.string().min(1).max(100),
    assurance: z.enum(['NHI-AAL2', 'NHI-AAL3']).default('NHI-AAL2'),
    /** Required for NHI-AAL3: the claim (and value) by which the issuer attests a hardware-anchored key. */
    attestation: z
      .object({ claim: ClaimPath, value: z.string().min(1).max(200) })
      .strict()
      .optional(),
  })
  .strict()
  .refine((r) => r.assurance !== 'NHI-AAL3' || r.attestation !== undefined, {
    path: ['attestation'],
    message: 'NHI-AAL3 needs an attestation claim the issuer sets for hardware-anchored keys',
  });

const Jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(50) });

export const CreateTrustedIssuerSchema = z
  .object({
    kind: z.enum(['oidc', 'spiffe', 'kubernetes', 'ci']),
    name: z.string().min(1).max(200),
    issuer: z.string().min(1).max(2048),
    jwks_uri: z.url().max(2048).optional(),
    jwks: Jwks.optional(),
    audience: z.string().min(1).max(2048).optional(),
    max_lifetime: z.number().int().min(30).max(86_400).default(3600),
    rules: z.array(WorkloadRuleSchema).min(1).max(100),
    status: z.enum(['active', 'disabled']).default('active'),
  })
  .strict();

export const UpdateTrustedIssuerSchema = z
  .object({
    name: z.string().min(1).max(200).optional(),
    jwks_uri: z.url().max(2048).nullable().optional(),
    jwks: Jwks.nullable().optional(),
    audience: z.string().min(1).max(2048).optional(),
    max_lifetime: z.number().int().min(30).max(86_400).optional(),
    rules: z.array(WorkloadRuleSchema).min(1).max(100).optional(),
    status: z.enum(['active', 'disabled']).optional(),
  })
  .strict();

export interface TrustedIssuerDeps {
  db: Db;
  trustedIssuers: TrustedIssuerStore;
  clients: ClientStore;
  audit: AuditStore;
  clock: Clock;
  /** Errand's issuer: the default audience of workload tokens (RFC 7523bis). */
  issuer: string;
}

/** The wire view of a trusted issuer. */
export function trustedIssuerView(t: TrustedIssuer) {
  return {
    id: t.id,
    kind: t.kind,
    name: t.name,
    issuer: t.issuer,
    jwks_uri: t.jwksUri,
    jwks: t.jwks,
    audience: t.audience,
    max_lifetime: t.maxLifetime,
    rules: t.rules.map((r) => ({
      match: r.match,
      agent_id: r.agentId,
      assurance: r.assurance,
      ...(r.attestation ? { attestation: r.attestation } : {}),
    })),
    status: t.status,
    created_at: t.createdAt,
  };
}

const invalid = (description: string) => new OAuthError('invalid_request', description);

function toRules(input: z.output<typeof WorkloadRuleSchema>[]): WorkloadRule[] {
  return input.map((r) => ({
    match: Object.fromEntries(Object.entries(r.match).map(([k, v]) => [k, Array.isArray(v) ? v : [v]])),
    agentId: r.agent_id,
    assurance: r.assurance,
    attestation: r.attestation ?? null,
  }));
}

/** Checks what only makes sense as a whole: the issuer identifier, the keys, the agents named. */
async function checkIssuer(deps: TrustedIssuerDeps, t: TrustedIssuer): Promise<void> {
  if (t.kind === 'spiffe') {
    const isDomain = t.issuer.startsWith('spiffe://');
    if (isDomain && (spiffeTrustDomain(`${t.issuer}/x`) === null || t.issuer.slice(9).includes('/'))) {
      throw invalid('issuer: a SPIFFE trust domain is spiffe://<trust-domain>, without a path');
    }
    if (!t.jwks && !t.jwksUri) throw invalid('a SPIFFE trust domain needs its bundle (jwks) or a jwks_uri');
  }
  if (!t.issuer.startsWith('spiffe://')) {
    let url: URL;
    try {
      url = new URL(t.issuer);
    } catch {
      throw invalid('issuer: must be the exact iss of the tokens (an https URL) or spiffe://<trust-domain>');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('issuer: must be an https URL');
  }
  if (t.jwks && t.jwksUri) throw invalid('send jwks or jwks_uri, not both');
  for (const key of t.jwks?.keys ?? []) {
    if (['d', 'p', 'q', 'k'].some((m) => m in key)) throw invalid('jwks must hold public keys only');
  }
  for (const rule of t.rules) {
    const agent = await deps.clients.get(rule.agentId);
    if (agent?.kind !== 'agent' || agent.authMethod !== AUTH_METHOD.workloadFederation) {
      throw invalid(
        `rules: ${rule.agentId} is not an agent registered with token_endpoint_auth_method ${AUTH_METHOD.workloadFederation}`,
      );
    }
  }
}

/** Registers a trusted issuer. */
export async function createTrustedIssuer(
  deps: TrustedIssuerDeps,
  input: z.output<typeof CreateTrustedIssuerSchema>,
  adminId: string,
  requestId: string,
  address?: string,
): Promise<TrustedIssuer> {
  const now = deps.clock.now();
  const t: TrustedIssuer = {
    id: newId('tis'),
    kind: input.kind,
    name: input.name,
    // Compared with the tokens' iss exactly, as OpenID Discovery §4.3 asks: stored as given.
    issuer: input.issuer,
    jwksUri: input.jwks_uri ?? null,
    jwks: input.jwks ?? null,
    audience: input.audience ?? deps.issuer,
    maxLifetime: input.max_lifetime,
    rules: toRules(input.rules),
    status: input.status,
    createdAt: now,
  };
  await checkIssuer(deps, t);
  if (await deps.trustedIssuers.findByIssuer(t.issuer)) {
    throw new OAuthError('conflict', `issuer ${t.issuer} is already registered`);
  }
  await deps.db.write(async (tx) => {
    await deps.trustedIssuers.insert(t, tx);
    await deps.audit.append(
      {
        type: 'trusted_issuer.registered',
        result: 'allowed',
        userId: adminId,
        requestId,
        details: {
          trustedIssuerId: t.id,
          kind: t.kind,
          issuer: t.issuer,
          rules: t.rules.length,
          ...(address ? { address } : {}),
        },
      },
      now,
      tx,
    );
  });
  return t;
}

/** Changes a trusted issuer (its rules, keys, audience, lifetime limit or status). */
export async function updateTrustedIssuer(
  deps: TrustedIssuerDeps,
  id: string,
  patch: z.output<typeof UpdateTrustedIssuerSchema>,
  adminId: string,
  requestId: string,
  address?: string,
): Promise<TrustedIssuer> {
  const current = await deps.trustedIssuers.get(id);
  if (!current) throw new OAuthError('not_found', 'no such trusted issuer');
  const next: TrustedIssuer = {
    ...current,
    ...(patch.name !== undefined ? { name: patch.name } : {}),
    ...(patch.jwks_uri !== undefined ? { jwksUri: patch.jwks_uri } : {}),
    ...(patch.jwks !== undefined ? { jwks: patch.jwks } : {}),
    ...(patch.audience !== undefined ? { audience: patch.audience } : {}),
    ...(patch.max_lifetime !== undefined ? { maxLifetime: patch.max_lifetime } : {}),
    ...(patch.rules !== undefined ? { rules: toRules(patch.rules) } : {}),
    ...(patch.status !== undefined ? { status: patch.status } : {}),
  };
  await checkIssuer(deps, next);
  const now = deps.clock.now();
  await deps.db.write(async (tx) => {
    await deps.trustedIssuers.update(next, tx);
    await deps.audit.append(
      {
        type: 'trusted_issuer.updated',
        result: 'allowed',
        userId: adminId,
        requestId,
        details: {
          trustedIssuerId: id,
          fields: Object.keys(patch).join(' '),
          status: next.status,
          ...(address ? { address } : {}),
        },
      },
      now,
      tx,
    );
  });
  return next;
}

/** Removes a trusted issuer: its tokens stop authenticating at once. */
export async function deleteTrustedIssuer(
  deps: TrustedIssuerDeps,
  id: string,
  adminId: string,
  requestId: string,
  address?: string,
): Promise<void> {
  const now = deps.clock.now();
  await deps.db.write(async (tx) => {
    if (!(await deps.trustedIssuers.delete(id, tx))) throw new OAuthError('not_found', 'no such trusted issuer');
    await deps.audit.append(
      {
        type: 'trusted_issuer.deleted',
        result: 'allowed',
        userId: adminId,
        requestId,
        details: { trustedIssuerId: id, ...(address ? { address } : {}) },
      },
      now,
      tx,
    );
  });
}
