import { CLAIM, formatScope, JWT_TYP, parseScope, TOKEN_TYPE, toActClaim } from '@errand/protocol';
import { type Attributes, trace } from '@opentelemetry/api';
import type { Db, Tx } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore, Resource } from '../../db/stores/client-store.js';
import type { DelegationStore, StoredDelegation } from '../../db/stores/delegation-store.js';
import type { GrantStore, IssuedToken } from '../../db/stores/grant-store.js';
import type { TaskStore } from '../../db/stores/task-store.js';
import { attenuate, type ExchangePlan, type Parent } from '../core/attenuation.js';
import { type AssuranceLevel, type Client, canAct, canExchange } from '../core/client.js';
import type { ToolDetail } from '../core/delegation.js';
import { type Denial, denialToError } from '../core/denials.js';
import { OAuthError } from '../core/errors.js';
import type { Metrics } from '../core/metrics.js';
import type { Clock } from '../core/ports.js';
import { isQuarantined, quarantineDenial } from '../core/quarantine.js';
import { isLive, type Task } from '../core/task.js';
import type { WorkloadClaims } from '../core/workload-claims.js';
import { inSpan, SPAN_ATTR } from '../telemetry/tracing.js';
import { actorClaims, type TokenMinter, tokenTypeFor } from '../tokens/access-token.js';
import { newId } from '../tokens/random.js';
import type { TaskDetail } from './authorization-details.js';
import { type OnBehalfOf, readUserSubject } from './on-behalf-of.js';
import type { PolicyDoor } from './policy/entities.js';
import { type PolicyEngine, policyDenial } from './policy/policy-engine.js';

export interface ExchangeDeps {
  db: Db;
  clients: ClientStore;
  grants: GrantStore;
  delegations: DelegationStore;
  tasks: TaskStore;
  audit: AuditStore;
  minter: TokenMinter;
  clock: Clock;
  tokenTtl: number;
  taskMaxTtl: number;
  /** How long the delegation an exchange rule stands for lasts (on-behalf-of exchange). */
  ruleDelegationTtl: number;
  /** The status list URI and index within it for a global status index. */
  statusRef: (globalIdx: number) => { uri: string; idx: number };
  /** Counts denials by reason (README "Metrics and traces"). */
  metrics?: Metrics;
  /** The organisation's policies, asked after the delegation rules (README "Organisation policies"). */
  policy: PolicyEngine;
}

export interface ExchangeInput {
  client: Client;
  /** The actor when a separate actor_token was verified; otherwise the client acts. */
  actor: Client | null;
  subjectToken: string;
  subjectTokenType: string;
  audience: string | null;
  scope: string[] | null;
  tools: ToolDetail[] | null;
  task: TaskDetail | null;
  requestId: string;
  /**
   * The acting agent's assurance level, as its authentication in this request established it (the
   * client's, or the actor token's). Never the level recorded on an agent that did not take part.
   */
  actorAssurance: AssuranceLevel | null;
  /** The key of the request's DPoP proof: the issued token is bound to it (RFC 9449 §6.1). */
  dpopJkt?: string | null;
  /** What the acting agent's workload token attested in this request, if it authenticated with one. */
  actorWorkload?: WorkloadClaims | null;
  /** The caller's address and the door it came through, for policies (`context.source_address`, `context.door`). */
  address?: string | null;
  door?: PolicyDoor;
}

export interface ExchangeResponse {
  access_token: string;
  issued_token_type: string;
  token_type: 'Bearer' | 'DPoP';
  expires_in: number;
  scope: string;
  task_id: string;
  [extra: string]: unknown;
}

interface Subject {
  parent: Parent;
  delegation: StoredDelegation;
  /** Set when the subject is a user's access token exchanged by the resource server it was for. */
  onBehalfOf?: OnBehalfOf;
}

/** Where a refusal happened, for its audit event. */
interface Where {
  userId: string;
  delegationId: string | null;
  task: Task | null;
  onBehalfOf?: OnBehalfOf;
}

const whereOf = (s: Subject): Where => ({
  userId: s.delegation.userId,
  delegationId: s.delegation.id,
  task: s.parent.task,
  ...(s.onBehalfOf ? { onBehalfOf: s.onBehalfOf } : {}),
});

const INVALID_SUBJECT = 'subject_token is invalid, expired or revoked';

/** The span attributes known before the decision: who asks, and the task it names. Never the tokens. */
function exchangeAttributes(input: Pick<ExchangeInput, 'client' | 'actor' | 'task'>): Attributes {
  return {
    [SPAN_ATTR.clientId]: (input.actor ?? input.client).id,
    ...(input.actor ? { 'errand.via_client_id': input.client.id } : {}),
    ...(input.task?.taskId ? { [SPAN_ATTR.taskId]: input.task.taskId } : {}),
  };
}

/**
 * RFC 8693 token exchange into per-task tokens. The subject is a delegation credential (a new or
 * named root task) or a task token (a sub-task for the actor); the rules live in `attenuate`.
 */
export class ExchangeService {
  constructor(private readonly deps: ExchangeDeps) {}

  /** RFC 8693 at the token endpoint: the subject arrives as a token and is verified first. */
  async exchange(input: ExchangeInput): Promise<ExchangeResponse> {
    return inSpan('errand.exchange', exchangeAttributes(input), async () => {
      const actor = admit(input);
      const subject = await this.readSubject(input, actor);
      if ('denial' in subject) return this.refuse(subject.denial, input, actor, subject.where);
      return this.decideAndIssue(input, actor, subject);
    });
  }

  /**
   * The same exchange for callers Errand has already authenticated by other means (its MCP tools,
   * its A2A skills): the subject is named by id instead of presented as a token, and stands for
   * exactly what a token of it would: a delegation's grants until its expiry, or what a task holds
   * (see `taskHoldings`). Every other rule, record and audit event is the token endpoint's.
   */
  async exchangeOnBehalf(
    input: Omit<ExchangeInput, 'subjectToken' | 'subjectTokenType'> & {
      subject: { delegationId: string } | { taskId: string };
    },
  ): Promise<ExchangeResponse> {
    return inSpan('errand.exchange', exchangeAttributes(input), () => this.exchangeNamed(input));
  }

  private async exchangeNamed(
    input: Omit<ExchangeInput, 'subjectToken' | 'subjectTokenType'> & {
      subject: { delegationId: string } | { taskId: string };
    },
  ): Promise<ExchangeResponse> {
    const full = { ...input, subjectToken: '', subjectTokenType: '' };
    const actor = admit(full);
    const { deps } = this;
    if ('delegationId' in input.subject) {
      const delegation = await deps.delegations.get(input.subject.delegationId);
      // The credential's sender constraint, as at the token endpoint: only the delegated agent.
      if (!delegation || delegation.agentId !== input.client.id)
        throw new OAuthError('invalid_request', 'no such delegation for this agent');
      return this.decideAndIssue(full, actor, { delegation, parent: delegationParent(delegation) });
    }
    const task = await deps.tasks.get(input.subject.taskId);
    const delegation = task ? await deps.delegations.get(task.delegationId) : null;
    // Only the agent that holds the task may hand work below it.
    if (!task || !delegation || task.agentId !== input.client.id)
      throw new OAuthError('invalid_request', 'no such task for this agent');
    const holdings = await this.taskHoldings(task, delegation);
    if (!holdings) {
      return this.refuse({ reason: 'subject_expired' }, full, actor, {
        userId: delegation.userId,
        delegationId: delegation.id,
        task,
      });
    }
    return this.decideAndIssue(full, actor, { delegation, parent: holdings });
  }

  /**
   * What a task holds, as the parent of a hand-off: a root task holds its delegation (its agent can
   * always have a token of it from the credential), a sub-task holds what its latest live token
   * holds — that token's audience, scope, tools and expiry — exactly what the token endpoint would
   * take as the parent if that token were the subject. Null when a sub-task holds nothing live.
   */
  private async taskHoldings(task: Task, delegation: StoredDelegation): Promise<Parent | null> {
    if (task.parentTaskId === null) return { ...delegationParent(delegation), kind: 'task', task };
    const row = await this.deps.grants.latestLiveTokenForTask(task.id, this.deps.clock.now());
    if (!row) return null;
    return tokenParent(
      row,
      task,
      row.authorizationDetails ? (JSON.parse(row.authorizationDetails) as ToolDetail[]) : null,
    );
  }

  private async decideAndIssue(input: ExchangeInput, actor: Client, subject: Subject): Promise<ExchangeResponse> {
    const { deps } = this;
    const named = input.task?.taskId ? await deps.tasks.get(input.task.taskId) : null;
    const { actorAssurance } = input;
    // Minimum levels of the resources the subject covers (README "Assurance levels"), checked by `attenuate`.
    const resourceMinAssurance: Record<string, AssuranceLevel | null> = {};
    const resources = new Map<string, Resource>();
    for (const url of Object.keys(subject.parent.grants)) {
      const resource = await deps.clients.getResource(url);
      if (resource) resources.set(url, resource);
      resourceMinAssurance[url] = resource?.minAssurance ?? null;
    }
    const request = {
      audience: input.audience,
      scope: input.scope,
      details: input.tools,
      taskId: input.task?.taskId ?? null,
      taskTtl: input.task?.ttl ?? null,
    };
    const decide = (now: number, parent: Parent, delegation: StoredDelegation, task: Task | null) =>
      attenuate(parent, request, {
        now,
        actorId: actor.id,
        delegation,
        named: task,
        tokenTtl: deps.tokenTtl,
        maxTaskTtl: deps.taskMaxTtl,
        actorAssurance,
        resourceMinAssurance,
      });

    // Public resources of the subject, which a quarantined agent may still reach (README "Quarantine of new registrations and findings").
    const publicUrls = new Set<string>();
    if (isQuarantined(actor) || isQuarantined(input.client)) {
      for (const url of Object.keys(subject.parent.grants))
        if ((await deps.clients.getResource(url))?.public) publicUrls.add(url);
    }
    const where = whereOf(subject);
    // Decided once, inside the write transaction: a task may have ended or a delegation been
    // revoked since the subject was read, and ending and exchanging are serialized by the database.
    // A refusal writes nothing there (its audit event is written by `refuse`).
    // What policies may read about the person (and the delegated agent), read before the write
    // transaction opens, so that no policy keeps the writer waiting on a read.
    const actorFacts = { client: actor, assurance: input.actorAssurance, workload: input.actorWorkload ?? null };
    const facts = deps.policy.mayNeedFacts({ agent: actorFacts }) ? this.policyFacts(subject.delegation, actor) : null;
    // Awaited only when a policy asks; a failed read that nobody awaits must not go unhandled.
    facts?.catch(() => undefined);
    const outcome = await deps.db.write(async (tx): Promise<{ ok: ExchangeResponse } | { denial: Denial }> => {
      const now = deps.clock.now();
      const delegation = await deps.delegations.get(subject.delegation.id, tx);
      const parentTask = subject.parent.task ? await deps.tasks.get(subject.parent.task.id, tx) : null;
      const namedNow = named ? await deps.tasks.get(named.id, tx) : null;
      if (!delegation) return { denial: { reason: 'delegation_inactive', status: 'missing' } };
      // The user's token may have been revoked since it was read; its revocation and this exchange
      // are serialized here, so a task is never started from a token whose revocation committed.
      if (subject.onBehalfOf) {
        const row = await deps.grants.getToken(subject.onBehalfOf.subjectJti, tx);
        if (!row || row.revokedAt !== null) return { denial: { reason: 'subject_revoked' } };
      }
      const parent = { ...subject.parent, task: parentTask };
      const decision = decide(now, parent, delegation, namedNow);
      if (!decision.ok) return { denial: decision.denial };
      const { audience } = decision.value;
      const quarantined =
        quarantineDenial(actor, audience, publicUrls.has(audience)) ??
        quarantineDenial(input.client, audience, publicUrls.has(audience));
      if (quarantined) return { denial: quarantined };
      // The organisation's policies, after the delegation rules and never instead of them.
      const refused = await this.askPolicy(
        input,
        actor,
        facts,
        delegation,
        decision.value,
        resources,
        parentTask ?? namedNow,
        now,
      );
      if (refused) return { denial: refused };
      return {
        ok: await this.issue(tx, decision.value, delegation, actor, input, now, subject.onBehalfOf, parentTask),
      };
    });
    if ('denial' in outcome) return this.refuse(outcome.denial, input, actor, where);
    trace.getActiveSpan()?.setAttributes({
      [SPAN_ATTR.taskId]: outcome.ok.task_id,
      [SPAN_ATTR.delegationId]: subject.delegation.id,
      'errand.exchange.outcome': 'issued',
    });
    return outcome.ok;
  }

  /**
   * Asks the policies about the planned token: `exchange` for a root task, `hand_off` for a sub-task
   * (depth > 0), with the actor as principal and the token's resource. Returns the denial, if any.
   */
  /** The person's facts and the delegated agent (when another acts below it), for policies. */
  private async policyFacts(delegation: StoredDelegation, actor: Client) {
    const { policy, clients } = this.deps;
    const [user, delegated] = await Promise.all([
      policy.userFacts(delegation.userId),
      delegation.agentId === actor.id ? null : clients.get(delegation.agentId),
    ]);
    return { user: user ?? { id: delegation.userId, username: '', role: 'user' as const, groups: [] }, delegated };
  }

  private async askPolicy(
    input: ExchangeInput,
    actor: Client,
    /** The facts read before the transaction, when the policies may need them. */
    early: ReturnType<ExchangeService['policyFacts']> | null,
    delegation: StoredDelegation,
    plan: ExchangePlan,
    resources: Map<string, Resource>,
    /** The task this exchange continues (the parent of a new sub-task, or the named task). */
    continued: Task | null,
    now: number,
  ): Promise<Denial | null> {
    const { policy } = this.deps;
    const depth = plan.task.kind === 'new' ? plan.task.depth : plan.task.task.depth;
    const action = depth > 0 ? 'hand_off' : 'exchange';
    const actorFacts = { client: actor, assurance: input.actorAssurance, workload: input.actorWorkload ?? null };
    const resource = resources.get(plan.audience) ?? { url: plan.audience, name: plan.audience, minAssurance: null };
    const verdict = await policy.decideLoading(
      { action, principal: { agent: actorFacts }, resource: { resource }, requestId: input.requestId },
      async () => {
        // The delegated agent, when another acts below it: its registration, no level it did not show here.
        const { user, delegated } = await (early ?? this.policyFacts(delegation, actor));
        return {
          user,
          agent: delegated ? { client: delegated, assurance: null, workload: null } : actorFacts,
          actorChain: plan.actorChain,
          depth,
          scopes: plan.scope,
          tools: (plan.details ?? []).flatMap((d) => d.actions),
          taskAge: continued ? now - continued.createdAt : 0,
          now,
          address: input.address ?? null,
          dpopBound: Boolean(input.dpopJkt),
          door: input.door ?? 'token',
        };
      },
    );
    return verdict.allowed ? null : policyDenial(verdict, action);
  }

  private async issue(
    tx: Tx,
    plan: ExchangePlan,
    d: StoredDelegation,
    actor: Client,
    input: ExchangeInput,
    now: number,
    onBehalfOf: OnBehalfOf | undefined,
    /** The subject's task as read in this transaction, if any. */
    subjectTask: Task | null,
  ) {
    const { deps } = this;
    let task: Task;
    if (plan.task.kind === 'existing') {
      task = plan.task.task;
    } else {
      const { parentTaskId } = plan.task;
      const parentTask =
        parentTaskId === null
          ? null
          : subjectTask?.id === parentTaskId
            ? subjectTask
            : await deps.tasks.get(parentTaskId, tx);
      const id = newId('tsk');
      task = {
        id,
        delegationId: d.id,
        userId: d.userId,
        agentId: actor.id,
        actorChain: plan.actorChain,
        parentTaskId: plan.task.parentTaskId,
        rootTaskId: parentTask?.rootTaskId ?? id,
        depth: plan.task.depth,
        state: 'working',
        createdAt: now,
        deadline: plan.task.deadline,
        endedAt: null,
        endReason: null,
        externalIds: input.task?.externalIds ?? {},
        subjectJti: onBehalfOf?.subjectJti ?? null,
      };
      await deps.tasks.insert(task, tx);
    }
    const globalIdx = await deps.tasks.nextStatusIndex(tx);
    const status = deps.statusRef(globalIdx);
    const minted = deps.minter.mint({
      clientId: actor.id,
      subject: d.userId,
      audience: plan.audience,
      scope: plan.scope,
      ttl: plan.exp - now,
      exp: plan.exp,
      grantId: null,
      claims: {
        [CLAIM.act]: toActClaim(plan.actorChain),
        [CLAIM.task]: task.id,
        [CLAIM.status]: { status_list: { idx: status.idx, uri: status.uri } },
        ...(plan.details ? { [CLAIM.authorizationDetails]: plan.details } : {}),
        // The current actor's level and, with a proof, the requester's key (README "Assurance levels"; RFC 9449 §6.1).
        ...actorClaims({ assurance: input.actorAssurance, dpopJkt: input.dpopJkt ?? null }),
      },
    });
    await deps.grants.insertToken(
      {
        ...minted.record,
        taskId: task.id,
        delegationId: d.id,
        actorChain: JSON.stringify(plan.actorChain),
        statusIdx: globalIdx,
        authorizationDetails: plan.details ? JSON.stringify(plan.details) : null,
      },
      tx,
    );
    await deps.audit.append(
      {
        type: 'token.exchanged',
        result: 'allowed',
        userId: d.userId,
        clientId: actor.id,
        actorChain: plan.actorChain,
        taskId: task.id,
        delegationId: d.id,
        audience: plan.audience,
        scope: formatScope(plan.scope),
        requestId: input.requestId,
        details: {
          jti: minted.record.jti,
          depth: task.depth,
          newTask: plan.task.kind === 'new',
          via: input.client.id,
          assurance: input.actorAssurance,
          dpopBound: Boolean(input.dpopJkt),
          ...(onBehalfOf ? { onBehalfOf } : {}),
        },
      },
      now,
      tx,
    );
    return {
      access_token: minted.token,
      issued_token_type: TOKEN_TYPE.accessToken,
      token_type: tokenTypeFor(input.dpopJkt),
      expires_in: minted.expiresIn,
      scope: formatScope(plan.scope),
      task_id: task.id,
      ...(plan.details ? { authorization_details: plan.details } : {}),
    };
  }

  /** Records the denial (with both attributions) and answers with its wire error. */
  private async refuse(denial: Denial, input: ExchangeInput, actor: Client, where: Where): Promise<never> {
    const { deps } = this;
    deps.metrics?.exchangeDenied(denial.reason);
    const taskId = where.task?.id ?? input.task?.taskId ?? null;
    trace.getActiveSpan()?.setAttributes({
      'errand.exchange.outcome': 'denied',
      'errand.denial_reason': denial.reason,
      ...(taskId ? { [SPAN_ATTR.taskId]: taskId } : {}),
      ...(where.delegationId ? { [SPAN_ATTR.delegationId]: where.delegationId } : {}),
    });
    await deps.db.write((tx) =>
      deps.audit.append(
        {
          type: 'exchange.denied',
          result: 'denied',
          userId: where.userId,
          clientId: actor.id,
          actorChain: [actor.id, ...(where.task?.actorChain ?? [])],
          taskId: where.task?.id ?? input.task?.taskId ?? null,
          delegationId: where.delegationId,
          audience: input.audience,
          scope: input.scope ? formatScope(input.scope) : null,
          reason: denial.reason,
          requestId: input.requestId,
          details: {
            ...(denial.reason === 'policy_denied'
              ? { policy_version: denial.version, policies: denial.policies, action: denial.action }
              : {}),
            ...(denial.reason === 'assurance_too_low'
              ? { required: denial.required, actual: denial.actual, by: denial.by }
              : {}),
            ...(where.onBehalfOf ? { onBehalfOf: where.onBehalfOf } : {}),
          },
        },
        deps.clock.now(),
        tx,
      ),
    );
    throw denialToError(denial);
  }

  /**
   * Verifies the subject token and loads what it stands for; failures are invalid_request. A denial
   * (rather than an exception) is for refusals that are audited: an on-behalf-of subject no
   * delegation or rule covers.
   */
  private async readSubject(input: ExchangeInput, actor: Client): Promise<Subject | { denial: Denial; where: Where }> {
    const { deps } = this;
    const foreign = foreignIssuer(input.subjectToken, deps.minter.issuer);
    if (foreign) {
      throw new OAuthError(
        'invalid_request',
        "subject_token was issued by another issuer; only Errand's tokens are accepted",
      );
    }
    if (input.subjectTokenType === TOKEN_TYPE.jwt) {
      const verified = deps.minter.verifyOwn(input.subjectToken, JWT_TYP.delegation);
      if (!verified && deps.minter.verify(input.subjectToken)) {
        throw new OAuthError(
          'invalid_request',
          `subject_token is an access token: send subject_token_type ${TOKEN_TYPE.accessToken}`,
        );
      }
      if (!verified || verified.claims.aud !== deps.minter.issuer)
        throw new OAuthError('invalid_request', INVALID_SUBJECT);
      const delegation = await deps.delegations.get(String(verified.claims[CLAIM.delegation]));
      if (!delegation || delegation.credentialJti !== verified.jti)
        throw new OAuthError('invalid_request', INVALID_SUBJECT);
      // Sender constraint: the credential works only with its own agent's client authentication.
      if (verified.claims.client_id !== input.client.id) {
        throw new OAuthError('invalid_request', 'the delegation credential was issued to another agent');
      }
      return { delegation, parent: delegationParent(delegation) };
    }
    if (input.subjectTokenType === TOKEN_TYPE.accessToken) {
      const verified = deps.minter.verify(input.subjectToken);
      if (!verified) throw new OAuthError('invalid_request', INVALID_SUBJECT);
      const taskId = verified.claims[CLAIM.task];
      // Not a task token: a user's access token, exchanged by the resource server it was issued for.
      if (taskId === undefined) {
        const read = await readUserSubject(
          deps,
          {
            client: input.client,
            actor,
            audience: input.audience,
            dpopJkt: input.dpopJkt ?? null,
            requestId: input.requestId,
          },
          verified,
        );
        if (!read.ok) return { denial: read.denial, where: { userId: read.userId, delegationId: null, task: null } };
        return { delegation: read.delegation, parent: read.parent, onBehalfOf: read.onBehalfOf };
      }
      if (typeof taskId !== 'string') throw new OAuthError('invalid_request', INVALID_SUBJECT);
      const row = await deps.grants.getToken(verified.jti);
      if (!row || row.taskId !== taskId) throw new OAuthError('invalid_request', INVALID_SUBJECT);
      const task = await deps.tasks.get(taskId);
      const delegation = task ? await deps.delegations.get(task.delegationId) : null;
      if (!task || !delegation) throw new OAuthError('invalid_request', INVALID_SUBJECT);
      const parent = tokenParent(
        row,
        task,
        (verified.claims[CLAIM.authorizationDetails] as ToolDetail[] | undefined) ?? null,
      );
      // A revoked token of a live task (revoked on its own) is still not a valid subject.
      if (row.revokedAt !== null && isLive(task, deps.clock.now()))
        throw new OAuthError('invalid_request', INVALID_SUBJECT);
      return { delegation, parent };
    }
    throw new OAuthError(
      'invalid_request',
      `subject_token_type must be ${TOKEN_TYPE.jwt} (a delegation credential) or ${TOKEN_TYPE.accessToken} (a task token or a user's access token)`,
    );
  }
}

/**
 * Whether a JWT names an issuer other than Errand (read without verifying: only to say what is
 * wrong; a token that names Errand is verified as usual and refused with the generic description).
 */
function foreignIssuer(token: string, issuer: string): boolean {
  const payload = token.split('.')[1];
  if (!payload) return false;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { iss?: unknown };
    return typeof claims.iss === 'string' && claims.iss !== issuer;
  } catch {
    return false;
  }
}

/** The parent a delegation credential stands for: the delegation's grants until its expiry. */
function delegationParent(d: StoredDelegation): Parent {
  return { kind: 'delegation', grants: d.grants, details: d.authorizationDetails, exp: d.expiresAt, task: null };
}

/** The parent a task token stands for: its one audience, its scope and tools, until its `exp`. */
function tokenParent(row: IssuedToken, task: Task, details: ToolDetail[] | null): Parent {
  return { kind: 'task', grants: { [row.audience]: parseScope(row.scope) ?? [] }, details, exp: row.expiresAt, task };
}

/**
 * Who may exchange at all, decided the same way at every door (RFC 8693 §2.1 leaves it to policy):
 * the client must be a confidential client allowed token exchange, and the actor (the client, or
 * the party an actor token authenticated) an active client that authenticates. Returns the actor.
 */
function admit(input: Pick<ExchangeInput, 'client' | 'actor'>): Client {
  if (!canExchange(input.client)) {
    throw new OAuthError('unauthorized_client', 'this client is not allowed to use token exchange');
  }
  const actor = input.actor ?? input.client;
  if (actor.status !== 'active') throw new OAuthError('invalid_request', 'the acting agent is disabled');
  if (!canAct(actor)) {
    throw new OAuthError('invalid_request', 'the actor must be a client that authenticates (not a public client)');
  }
  return actor;
}
