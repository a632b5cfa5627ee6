import { ASSURANCE_LEVELS, CLAIM, formatScope, JWT_TYP, TOKEN_TYPE } from '@errand/protocol';
import { z } from 'zod';
import type { Db, Tx } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { DelegationStore, StoredDelegation } from '../../db/stores/delegation-store.js';
import type { TaskStore } from '../../db/stores/task-store.js';
import type { UserStore } from '../../db/stores/user-store.js';
import type { AssuranceLevel, Client } from '../core/client.js';
import { type DelegationRequest, narrowingProblem, type ToolDetail } from '../core/delegation.js';
import { type PolicyDenial, policyDenialText } from '../core/denials.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import type { TokenMinter } from '../tokens/access-token.js';
import { signIdToken } from '../tokens/id-token.js';
import { hashSecret, newId, newSecret } from '../tokens/random.js';
import type { PolicyDoor, UserFacts } from './policy/entities.js';
import { type PolicyEngine, policyDenial } from './policy/policy-engine.js';
import type { TaskService } from './tasks.js';

export interface DelegationLimits {
  defaultTtl: number;
  maxTtl: number;
  maxDepth: number;
  tokenTtl: number;
  cibaRequestTtl: number;
  cibaInterval: number;
}

export interface DelegationDeps {
  db: Db;
  clients: ClientStore;
  users: UserStore;
  delegations: DelegationStore;
  tasks: TaskStore;
  taskService: TaskService;
  audit: AuditStore;
  minter: TokenMinter;
  clock: Clock;
  limits: DelegationLimits;
  /** The organisation's policies (README "Organisation policies"): asked for every ask and approval. */
  policy: PolicyEngine;
}

/** Where an ask or an approval came in, for policies and the audit event of a refusal. */
export interface DecisionDoor {
  door: PolicyDoor;
  address?: string | null;
}

/** How a user narrows a request on approval (JSON body of the approve call). */
export const ApprovalSchema = z
  .object({
    scopes: z.record(z.string().max(2048), z.array(z.string().max(128)).max(100)).optional(),
    expires_in: z.number().int().min(60).optional(),
    max_depth: z.number().int().min(0).optional(),
    max_token_ttl: z.number().int().min(30).optional(),
    sub_agents: z.array(z.string().max(2048)).max(100).nullable().optional(),
    /** The user may require a higher assurance level of every actor (never a lower one than asked). */
    min_assurance: z.enum(ASSURANCE_LEVELS).optional(),
    authorization_details: z
      .array(
        z
          .object({
            type: z.literal('mcp_tool'),
            locations: z.tuple([z.string()]),
            actions: z.array(z.string()).min(1),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();
export type Approval = z.output<typeof ApprovalSchema>;

/** What the user grants: the request narrowed by the approval, refused if it widens anything. */
export function applyApproval(asked: DelegationRequest, approval: Approval): DelegationRequest {
  const granted: DelegationRequest = {
    grants: approval.scopes ?? asked.grants,
    authorizationDetails: (approval.authorization_details as ToolDetail[] | undefined) ?? asked.authorizationDetails,
    maxDepth: approval.max_depth ?? asked.maxDepth,
    maxTokenTtl: approval.max_token_ttl ?? asked.maxTokenTtl,
    expiresIn: approval.expires_in ?? asked.expiresIn,
    subAgents: approval.sub_agents === undefined ? asked.subAgents : approval.sub_agents,
  };
  const minAssurance = approval.min_assurance ?? asked.minAssurance;
  if (minAssurance) granted.minAssurance = minAssurance;
  const problem = narrowingProblem(asked, granted);
  if (problem) throw new OAuthError('invalid_request', `cannot approve: ${problem}`);
  // Resources the user unticked entirely are dropped, with their tools.
  granted.grants = Object.fromEntries(
    Object.entries(granted.grants)
      .filter(([, scopes]) => scopes.length > 0)
      .map(([resource, scopes]) => [resource, [...new Set(scopes)].sort()]),
  );
  granted.authorizationDetails = grantedTools(granted);
  return granted;
}

/** One `mcp_tool` entry per granted location (RFC 9396 §2), its tools sorted; null when none is left. */
function grantedTools(granted: DelegationRequest): ToolDetail[] | null {
  const byLocation = new Map<string, Set<string>>();
  for (const d of granted.authorizationDetails ?? []) {
    const location = d.locations[0];
    if (!granted.grants[location]) continue;
    const actions = byLocation.get(location) ?? new Set<string>();
    for (const a of d.actions) actions.add(a);
    byLocation.set(location, actions);
  }
  const tools = [...byLocation].map(
    ([location, actions]): ToolDetail => ({ type: 'mcp_tool', locations: [location], actions: [...actions].sort() }),
  );
  return tools.length > 0 ? tools : null;
}

function approvedDelegation(d: StoredDelegation, granted: DelegationRequest, now: number): StoredDelegation {
  return {
    ...d,
    status: 'active',
    grants: granted.grants,
    authorizationDetails: granted.authorizationDetails,
    maxDepth: granted.maxDepth,
    maxTokenTtl: granted.maxTokenTtl,
    subAgents: granted.subAgents,
    minAssurance: granted.minAssurance ?? null,
    expiresAt: now + granted.expiresIn,
    decidedAt: now,
    credentialJti: newId('dcj').slice(4),
  };
}

function approvedEvent(d: StoredDelegation, granted: DelegationRequest, requestId: string) {
  return {
    type: 'delegation.approved',
    result: 'allowed' as const,
    userId: d.userId,
    clientId: d.agentId,
    actorChain: [d.agentId],
    delegationId: d.id,
    scope: formatScope(Object.values(granted.grants).flat()),
    audience: Object.keys(granted.grants).join(' '),
    requestId,
    details: {
      narrowed: JSON.stringify(granted) !== JSON.stringify(d.requested),
      maxDepth: granted.maxDepth,
      source: d.source,
    },
  };
}

/** The wire view of a delegation. */
export function delegationView(d: StoredDelegation) {
  return {
    delegation_id: d.id,
    user_id: d.userId,
    agent_id: d.agentId,
    status: d.status,
    source: d.source,
    binding_message: d.bindingMessage,
    requested: {
      scopes: d.requested.grants,
      authorization_details: d.requested.authorizationDetails,
      max_depth: d.requested.maxDepth,
      max_token_ttl: d.requested.maxTokenTtl,
      expires_in: d.requested.expiresIn,
      sub_agents: d.requested.subAgents,
      min_assurance: d.requested.minAssurance ?? null,
    },
    scopes: d.grants,
    authorization_details: d.authorizationDetails,
    max_depth: d.maxDepth,
    max_token_ttl: d.maxTokenTtl,
    sub_agents: d.subAgents,
    min_assurance: d.minAssurance ?? null,
    expires_at: d.expiresAt,
    created_at: d.createdAt,
    decided_at: d.decidedAt,
    revoked_at: d.revokedAt,
  };
}

/** Delegations: asked for (CIBA or consent), decided by the user, revoked, and held by agents. */
export class DelegationService {
  constructor(private readonly deps: DelegationDeps) {}

  /** Creates a pending delegation; for CIBA, also the `auth_req_id` the agent polls with. */
  async request(input: {
    client: Client;
    userId: string;
    asked: DelegationRequest;
    source: 'ciba' | 'consent';
    bindingMessage: string | null;
    requestedExpiry: number | null;
    requestId: string;
    /** The door the agent asked through (default: the backchannel endpoint). */
    door?: DecisionDoor;
  }): Promise<{ delegation: StoredDelegation; authReqId: string | null; expiresIn: number; interval: number }> {
    const { db, delegations, audit, clock, limits } = this.deps;
    await this.checkPolicy('ask_delegation', {
      agent: input.client,
      userId: input.userId,
      granted: input.asked,
      requestId: input.requestId,
      door: input.door ?? { door: 'backchannel' },
    });
    const now = clock.now();
    const delegation: StoredDelegation = {
      id: newId('dlg'),
      userId: input.userId,
      agentId: input.client.id,
      status: 'pending',
      requested: input.asked,
      grants: {},
      authorizationDetails: null,
      maxTokenTtl: input.asked.maxTokenTtl,
      maxDepth: input.asked.maxDepth,
      subAgents: input.asked.subAgents,
      expiresAt: now + input.asked.expiresIn,
      createdAt: now,
      decidedAt: null,
      revokedAt: null,
      source: input.source,
      bindingMessage: input.bindingMessage,
      credentialJti: null,
    };
    const authReqId = input.source === 'ciba' ? newSecret('ear_') : null;
    const expiresIn = Math.min(input.requestedExpiry ?? limits.cibaRequestTtl, limits.cibaRequestTtl);
    await db.write(async (tx) => {
      await delegations.insert(delegation, tx);
      if (authReqId) {
        await delegations.insertBackchannel(
          {
            authReqIdHash: hashSecret(authReqId),
            delegationId: delegation.id,
            clientId: input.client.id,
            createdAt: now,
            expiresAt: now + expiresIn,
            interval: limits.cibaInterval,
            lastPolledAt: null,
            redeemedAt: null,
          },
          tx,
        );
      }
      await audit.append(
        {
          type: 'delegation.requested',
          result: 'allowed',
          userId: input.userId,
          clientId: input.client.id,
          actorChain: [input.client.id],
          delegationId: delegation.id,
          scope: formatScope(Object.values(input.asked.grants).flat()),
          audience: Object.keys(input.asked.grants).join(' '),
          requestId: input.requestId,
          details: { source: input.source },
        },
        now,
        tx,
      );
    });
    return { delegation, authReqId, expiresIn, interval: limits.cibaInterval };
  }

  /** The user approves, optionally narrowing every part; returns the delegation as granted. */
  async approve(
    userId: string,
    id: string,
    approval: Approval,
    requestId: string,
    door: DecisionDoor = { door: 'user_api' },
  ): Promise<StoredDelegation> {
    const { db, delegations, audit, clock } = this.deps;
    const d = await delegations.get(id);
    if (!d || d.userId !== userId) throw new OAuthError('not_found', 'no such delegation');
    if (d.status !== 'pending') throw new OAuthError('conflict', `the delegation is already ${d.status}`);
    if (d.source === 'ciba') {
      // CIBA §11: past the request's expiry the agent can no longer collect anything; say so.
      const req = await delegations.backchannelForDelegation(d.id);
      if (!req || req.expiresAt <= clock.now())
        throw new OAuthError('conflict', "the agent's request has expired; it must ask again");
    }
    const granted = applyApproval(d.requested, approval);
    const agent = await this.deps.clients.get(d.agentId);
    if (agent)
      await this.checkPolicy('approve_delegation', { agent, userId, granted, requestId, door, delegationId: d.id });
    const now = clock.now();
    const result = approvedDelegation(d, granted, now);
    await db.write(async (tx) => {
      const ok = await delegations.decide(id, result, tx);
      if (!ok) throw new OAuthError('conflict', 'the delegation was decided meanwhile');
      await audit.append(approvedEvent(result, granted, requestId), now, tx);
    });
    return result;
  }

  /**
   * Asks the organisation's policies about an ask or an approval, for each resource it covers
   * (principal: the agent asking, or the person approving; context: the person and the agent).
   * A refusal is audited (`delegation.policy_denied`, both identities) and thrown as `access_denied`.
   */
  async checkPolicy(
    action: 'ask_delegation' | 'approve_delegation',
    input: {
      agent: Client;
      userId: string;
      granted: DelegationRequest;
      requestId: string;
      door: DecisionDoor;
      delegationId?: string;
    },
  ): Promise<void> {
    const { policy, clock } = this.deps;
    const now = clock.now();
    let user: UserFacts | null = null;
    const userFacts = async () => {
      user ??= (await policy.userFacts(input.userId)) ?? { id: input.userId, username: '', role: 'user', groups: [] };
      return user;
    };
    // The level the agent's registration carries: an ask is not an authentication of its own.
    const agent = { client: input.agent, assurance: null, workload: null };
    for (const [url, scopes] of Object.entries(input.granted.grants)) {
      const resource = (await policy.resourceFacts(url)) ?? { url, name: url, minAssurance: null };
      const context = async () => ({
        user: await userFacts(),
        agent,
        actorChain: [input.agent.id],
        depth: 0,
        scopes,
        tools: (input.granted.authorizationDetails ?? [])
          .filter((t) => t.locations[0] === url)
          .flatMap((t) => t.actions),
        taskAge: 0,
        now,
        address: input.door.address ?? null,
        dpopBound: false,
        door: input.door.door,
      });
      const verdict =
        action === 'ask_delegation'
          ? await policy.decideLoading(
              { action, principal: { agent }, resource: { resource }, requestId: input.requestId },
              context,
            )
          : policy.decide({
              action,
              principal: { user: await userFacts() },
              resource: { resource },
              context: await context(),
              requestId: input.requestId,
            });
      if (verdict.allowed) continue;
      const denial = policyDenial(verdict, action) as PolicyDenial;
      await this.deps.db.write((tx) =>
        this.deps.audit.append(
          {
            type: 'delegation.policy_denied',
            result: 'denied',
            userId: input.userId,
            clientId: input.agent.id,
            actorChain: [input.agent.id],
            delegationId: input.delegationId ?? null,
            audience: url,
            scope: formatScope(scopes),
            reason: 'policy_denied',
            requestId: input.requestId,
            details: {
              action,
              policy_version: verdict.version,
              policies: verdict.policies,
              door: input.door.door,
              ...(input.door.address ? { address: input.door.address } : {}),
            },
          },
          now,
          tx,
        ),
      );
      throw new OAuthError('access_denied', `${policyDenialText(denial)} at "${url}"`);
    }
  }

  /** Records a delegation approved on the consent page (authorization code flow) in `tx`. */
  async insertApproved(
    tx: Tx,
    input: {
      agentId: string;
      userId: string;
      asked: DelegationRequest;
      approval: Approval;
      now: number;
      requestId: string;
    },
  ): Promise<StoredDelegation> {
    const granted = applyApproval(input.asked, input.approval);
    const pending: StoredDelegation = {
      id: newId('dlg'),
      userId: input.userId,
      agentId: input.agentId,
      status: 'pending',
      requested: input.asked,
      grants: {},
      authorizationDetails: null,
      maxTokenTtl: input.asked.maxTokenTtl,
      maxDepth: input.asked.maxDepth,
      subAgents: input.asked.subAgents,
      expiresAt: input.now + input.asked.expiresIn,
      createdAt: input.now,
      decidedAt: null,
      revokedAt: null,
      source: 'consent',
      bindingMessage: null,
      credentialJti: null,
    };
    const result = approvedDelegation(pending, granted, input.now);
    await this.deps.delegations.insert(result, tx);
    await this.deps.audit.append(approvedEvent(result, granted, input.requestId), input.now, tx);
    return result;
  }

  async deny(userId: string, id: string, requestId: string): Promise<void> {
    const { db, delegations, audit, clock } = this.deps;
    const d = await delegations.get(id);
    if (!d || d.userId !== userId) throw new OAuthError('not_found', 'no such delegation');
    await db.write(async (tx) => {
      const now = clock.now();
      const ok = await delegations.decide(id, { ...d, status: 'denied', decidedAt: now, credentialJti: null }, tx);
      if (!ok) throw new OAuthError('conflict', `the delegation is already ${d.status}`);
      await audit.append(
        {
          type: 'delegation.denied',
          result: 'denied',
          userId,
          clientId: d.agentId,
          delegationId: id,
          reason: 'user_denied',
          requestId,
        },
        now,
        tx,
      );
    });
  }

  /**
   * Revokes a delegation (by its user or an administrator) and ends every task under it, with their
   * tokens, in the same transaction (README "Invariants", 4).
   */
  async revoke(by: { userId: string; admin: boolean }, id: string, requestId: string): Promise<void> {
    const d = await this.deps.delegations.get(id);
    if (!d || (!by.admin && d.userId !== by.userId)) throw new OAuthError('not_found', 'no such delegation');
    if (!(await this.revokeWithTasks(d, requestId, { details: { by: by.userId } }))) {
      throw new OAuthError('conflict', `the delegation is already ${d.status}`);
    }
  }

  /**
   * Revokes the delegation an agent's authorization code stood for when that code is redeemed a
   * second time (OAuth 2.1 §4.1.3: what a replayed code produced is revoked). For an agent the
   * product is the delegation, so its tasks and their tokens end with it, as on any revocation.
   * A delegation that is no longer active is left as it is.
   */
  async revokeForReusedCode(id: string, requestId: string): Promise<void> {
    const d = await this.deps.delegations.get(id);
    const reason = 'authorization_code_reuse';
    if (d) await this.revokeWithTasks(d, requestId, { reason, details: { by: reason } });
  }

  /**
   * Revokes `d` with its audit event and ends its tasks in one transaction, then tells the push
   * channel. False when it was not pending or active.
   */
  private async revokeWithTasks(
    d: StoredDelegation,
    requestId: string,
    why: { reason?: string; details: Record<string, unknown> },
  ): Promise<boolean> {
    const { db, delegations, audit, clock, taskService } = this.deps;
    const events = await db.write(async (tx) => {
      const now = clock.now();
      if (!(await delegations.revoke(d.id, now, tx))) return null;
      await audit.append(
        {
          type: 'delegation.revoked',
          result: 'allowed',
          userId: d.userId,
          clientId: d.agentId,
          delegationId: d.id,
          ...(why.reason ? { reason: why.reason } : {}),
          requestId,
          details: why.details,
        },
        now,
        tx,
      );
      return taskService.endWhere(tx, { delegationId: d.id }, 'delegation_revoked', now, requestId);
    });
    if (!events) return false;
    taskService.flush(events);
    return true;
  }

  /** The credential an agent holds for an active delegation; opens no resource by itself. */
  async issueCredential(
    d: StoredDelegation,
    /** The level the agent authenticated at when collecting it (stated in every token, README "Assurance levels"). */
    assurance: AssuranceLevel | null = null,
  ): Promise<{
    access_token: string;
    token_type: 'Bearer';
    issued_token_type: string;
    expires_in: number;
    scope: string;
    delegation_id: string;
  }> {
    const now = this.deps.clock.now();
    // It lives as long as the delegation (days), far past the signing key's usual retention.
    const { token } = await this.deps.minter.signLongLived(JWT_TYP.delegation, {
      sub: d.userId,
      // Usable only at Errand's token endpoint, only by the agent it names (sender-constrained).
      aud: this.deps.minter.issuer,
      client_id: d.agentId,
      delegation_id: d.id,
      jti: d.credentialJti,
      iat: now,
      exp: d.expiresAt,
      ...(assurance ? { [CLAIM.assurance]: assurance } : {}),
    });
    return {
      access_token: token,
      // RFC 6749 §5.1 and CIBA §10.1.1 responses carry a token type their clients know. The credential
      // is used by value at the token endpoint only, with the agent's own client authentication.
      token_type: 'Bearer',
      issued_token_type: TOKEN_TYPE.jwt,
      expires_in: d.expiresAt - now,
      scope: formatScope(Object.values(d.grants).flat()),
      delegation_id: d.id,
    };
  }

  /** An OpenID ID token for the CIBA response (CIBA §10.1.1); `auth_time` is the person's approval. */
  idToken(d: StoredDelegation): string {
    const now = this.deps.clock.now();
    return signIdToken(this.deps.minter, now, { sub: d.userId, clientId: d.agentId, authTime: d.decidedAt ?? now });
  }

  /** CIBA poll (CIBA §11): pending, slow down, denied, expired, or the credential (once). */
  async poll(client: Client, authReqId: string, requestId: string | null = null) {
    const { db, delegations, audit, clock } = this.deps;
    const hash = hashSecret(authReqId);
    type Outcome = { error: OAuthError } | { delegation: StoredDelegation };
    const outcome = await db.write(async (tx: Tx): Promise<Outcome> => {
      const now = clock.now();
      const req = await delegations.getBackchannel(hash, tx);
      if (!req || req.clientId !== client.id)
        return { error: new OAuthError('invalid_grant', 'auth_req_id is invalid') };
      if (req.redeemedAt !== null)
        return { error: new OAuthError('invalid_grant', 'auth_req_id has already been used') };
      // CIBA §11: an expired auth_req_id never yields the credential, even if approved late.
      if (req.expiresAt <= now)
        return { error: new OAuthError('expired_token', 'the request expired before the user decided') };
      const d = await delegations.get(req.delegationId, tx);
      if (!d) return { error: new OAuthError('invalid_grant', 'auth_req_id is invalid') };
      if (d.status === 'denied')
        return { error: new OAuthError('access_denied', 'the user denied the request', { status: 400 }) };
      if (d.status === 'revoked')
        return { error: new OAuthError('access_denied', 'the delegation was revoked', { status: 400 }) };
      if (d.status === 'active') {
        await delegations.pollBackchannel(hash, { redeemedAt: now, lastPolledAt: now }, tx);
        // `delegation.approved` is the person's answer; this is the agent receiving what it allows.
        await audit.append(
          {
            type: 'delegation.collected',
            result: 'allowed',
            userId: d.userId,
            clientId: d.agentId,
            delegationId: d.id,
            requestId,
          },
          now,
          tx,
        );
        return { delegation: d };
      }
      if (req.lastPolledAt !== null && now - req.lastPolledAt < req.interval) {
        // CIBA §11: the client must add at least 5 seconds to its interval.
        await delegations.pollBackchannel(hash, { interval: req.interval + 5, lastPolledAt: now }, tx);
        return { error: new OAuthError('slow_down', `poll at most every ${req.interval + 5} seconds`) };
      }
      await delegations.pollBackchannel(hash, { lastPolledAt: now }, tx);
      return { error: new OAuthError('authorization_pending', 'the user has not decided yet') };
    });
    if ('error' in outcome) throw outcome.error;
    return outcome.delegation;
  }
}
