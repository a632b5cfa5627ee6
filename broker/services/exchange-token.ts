import type { Db, Tx } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { DelegationStore, StoredDelegation } from '../../db/stores/delegation-store.js';
import type { GrantStore } from '../../db/stores/grant-store.js';
import type { TaskStore } from '../../db/stores/task-store.js';
import { toActClaim } from '../core/act-chain.js';
import { attenuate, type ExchangePlan, type Parent } from '../core/attenuation.js';
import { type AssuranceLevel, assuranceLevel, type Client } from '../core/client.js';
import type { ToolDetail } from '../core/delegation.js';
import { type Denial, denialToError } from '../core/denials.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { CLAIM, JWT_TYP, TOKEN_TYPE } from '../core/protocol.js';
import { formatScope, parseScope } from '../core/scopes.js';
import { isLive, type Task } from '../core/task.js';
import { actorClaims, type TokenMinter, tokenTypeFor } from '../tokens/access-token.js';
import { newId } from '../tokens/random.js';
import type { TaskDetail } from './authorization-details.js';

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
  /** The status list URI and index within it for a global status index. */
  statusRef: (globalIdx: number) => { uri: string; idx: number };
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
   * The acting agent's assurance level for this request, as its authentication established it;
   * absent: the level recorded on the agent (callers Errand authenticated by other means).
   */
  actorAssurance?: AssuranceLevel | null;
  /** The key of the request's DPoP proof: the issued token is bound to it (RFC 9449 §6.1). */
  dpopJkt?: string | null;
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
}

const INVALID_SUBJECT = 'subject_token is invalid, expired or revoked';

/**
 * RFC 8693 token exchange into per-task tokens. The subject is a delegation credential (a new or
 * named root task) or a task token (a sub-task for the actor); the rules live in `attenuate`.
 */
export class ExchangeService {
  constructor(private readonly deps: ExchangeDeps) {}

  /** RFC 8693 at the token endpoint: the subject arrives as a token and is verified first. */
  async exchange(input: ExchangeInput): Promise<ExchangeResponse> {
    const actor = input.actor ?? input.client;
    if (actor.status !== 'active') throw new OAuthError('invalid_request', 'the acting agent is disabled');
    return this.decideAndIssue(input, actor, await this.readSubject(input));
  }

  /**
   * The same exchange for callers Errand has already authenticated by other means (its MCP tools,
   * its A2A skills): the subject is named by id instead of presented as a token. A task subject
   * stands for the authority of the agent that holds the task: its delegation's grants, until the
   * task's deadline. The rules are the same `attenuate`, the records and audit the same.
   */
  async exchangeOnBehalf(
    input: Omit<ExchangeInput, 'subjectToken' | 'subjectTokenType'> & {
      subject: { delegationId: string } | { taskId: string };
    },
  ): Promise<ExchangeResponse> {
    const actor = input.actor ?? input.client;
    if (actor.status !== 'active') throw new OAuthError('invalid_request', 'the acting agent is disabled');
    const { deps } = this;
    let subject: Subject;
    if ('delegationId' in input.subject) {
      const delegation = await deps.delegations.get(input.subject.delegationId);
      if (!delegation || delegation.agentId !== input.client.id)
        throw new OAuthError('invalid_request', 'no such delegation for this agent');
      subject = {
        delegation,
        parent: {
          kind: 'delegation',
          grants: delegation.grants,
          details: delegation.authorizationDetails,
          exp: delegation.expiresAt,
          task: null,
        },
      };
    } else {
      const task = await deps.tasks.get(input.subject.taskId);
      const delegation = task ? await deps.delegations.get(task.delegationId) : null;
      // Only an agent that holds the task may hand work below it.
      if (!task || !delegation || task.agentId !== input.client.id)
        throw new OAuthError('invalid_request', 'no such task for this agent');
      subject = {
        delegation,
        parent: {
          kind: 'task',
          grants: delegation.grants,
          details: delegation.authorizationDetails,
          exp: task.deadline,
          task,
        },
      };
    }
    return this.decideAndIssue({ ...input, subjectToken: '', subjectTokenType: '' }, actor, subject);
  }

  private async decideAndIssue(input: ExchangeInput, actor: Client, subject: Subject): Promise<ExchangeResponse> {
    const { deps } = this;
    const named = input.task?.taskId ? await deps.tasks.get(input.task.taskId) : null;
    const actorAssurance = input.actorAssurance !== undefined ? input.actorAssurance : assuranceLevel(actor);
    // Minimum levels of the resources the subject covers (SPECS §8), checked by `attenuate`.
    const resourceMinAssurance: Record<string, AssuranceLevel | null> = {};
    for (const url of Object.keys(subject.parent.grants)) {
      resourceMinAssurance[url] = (await deps.clients.getResource(url))?.minAssurance ?? null;
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

    const first = decide(deps.clock.now(), subject.parent, subject.delegation, named);
    if (!first.ok) return this.refuse(first.denial, input, actor, subject);

    // Decide again inside the write transaction: a task may have ended or a delegation been
    // revoked since, and ending and exchanging are serialized by the database.
    const outcome = await deps.db.write(async (tx): Promise<{ ok: ExchangeResponse } | { denial: Denial }> => {
      const now = deps.clock.now();
      const delegation = await deps.delegations.get(subject.delegation.id, tx);
      const parentTask = subject.parent.task ? await deps.tasks.get(subject.parent.task.id, tx) : null;
      const namedNow = named ? await deps.tasks.get(named.id, tx) : null;
      if (!delegation) return { denial: { reason: 'delegation_inactive', status: 'missing' } };
      const parent = { ...subject.parent, task: parentTask };
      const decision = decide(now, parent, delegation, namedNow);
      if (!decision.ok) return { denial: decision.denial };
      return { ok: await this.issue(tx, decision.value, delegation, actor, { ...input, actorAssurance }, now) };
    });
    if ('denial' in outcome) return this.refuse(outcome.denial, input, actor, subject);
    return outcome.ok;
  }

  private async issue(
    tx: Tx,
    plan: ExchangePlan,
    d: StoredDelegation,
    actor: Client,
    input: ExchangeInput,
    now: number,
  ) {
    const { deps } = this;
    let task: Task;
    if (plan.task.kind === 'existing') {
      task = plan.task.task;
    } else {
      const parentTask = plan.task.parentTaskId ? await deps.tasks.get(plan.task.parentTaskId, tx) : null;
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
        // The current actor's level and, with a proof, the requester's key (SPECS §8; RFC 9449 §6.1).
        ...actorClaims({ assurance: input.actorAssurance ?? null, dpopJkt: input.dpopJkt ?? null }),
      },
    });
    await deps.grants.insertToken(
      {
        ...minted.record,
        taskId: task.id,
        delegationId: d.id,
        actorChain: JSON.stringify(plan.actorChain),
        statusIdx: globalIdx,
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
          assurance: input.actorAssurance ?? null,
          dpopBound: Boolean(input.dpopJkt),
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
  private async refuse(denial: Denial, input: ExchangeInput, actor: Client, subject: Subject): Promise<never> {
    const { deps } = this;
    await deps.db.write((tx) =>
      deps.audit.append(
        {
          type: 'exchange.denied',
          result: 'denied',
          userId: subject.delegation.userId,
          clientId: actor.id,
          actorChain: [actor.id, ...(subject.parent.task?.actorChain ?? [])],
          taskId: subject.parent.task?.id ?? input.task?.taskId ?? null,
          delegationId: subject.delegation.id,
          audience: input.audience,
          scope: input.scope ? formatScope(input.scope) : null,
          reason: denial.reason,
          requestId: input.requestId,
          ...(denial.reason === 'assurance_too_low'
            ? { details: { required: denial.required, actual: denial.actual, by: denial.by } }
            : {}),
        },
        deps.clock.now(),
        tx,
      ),
    );
    throw denialToError(denial);
  }

  /** Verifies the subject token and loads what it stands for; failures are invalid_request. */
  private async readSubject(input: ExchangeInput): Promise<Subject> {
    const { deps } = this;
    if (input.subjectTokenType === TOKEN_TYPE.jwt) {
      const verified = deps.minter.verifyOwn(input.subjectToken, JWT_TYP.delegation);
      if (!verified || verified.claims.aud !== deps.minter.issuer)
        throw new OAuthError('invalid_request', INVALID_SUBJECT);
      const delegation = await deps.delegations.get(String(verified.claims[CLAIM.delegation]));
      if (!delegation || delegation.credentialJti !== verified.jti)
        throw new OAuthError('invalid_request', INVALID_SUBJECT);
      // Sender constraint: the credential works only with its own agent's client authentication.
      if (verified.claims.client_id !== input.client.id) {
        throw new OAuthError('invalid_request', 'the delegation credential was issued to another agent');
      }
      return {
        delegation,
        parent: {
          kind: 'delegation',
          grants: delegation.grants,
          details: delegation.authorizationDetails,
          exp: delegation.expiresAt,
          task: null,
        },
      };
    }
    if (input.subjectTokenType === TOKEN_TYPE.accessToken) {
      const verified = deps.minter.verify(input.subjectToken);
      const taskId = verified?.claims[CLAIM.task];
      if (!verified || typeof taskId !== 'string') throw new OAuthError('invalid_request', INVALID_SUBJECT);
      const row = await deps.grants.getToken(verified.jti);
      if (!row || row.taskId !== taskId) throw new OAuthError('invalid_request', INVALID_SUBJECT);
      const task = await deps.tasks.get(taskId);
      const delegation = task ? await deps.delegations.get(task.delegationId) : null;
      if (!task || !delegation) throw new OAuthError('invalid_request', INVALID_SUBJECT);
      const parent: Parent = {
        kind: 'task',
        grants: { [row.audience]: parseScope(row.scope) ?? [] },
        details: (verified.claims[CLAIM.authorizationDetails] as ToolDetail[] | undefined) ?? null,
        exp: row.expiresAt,
        task,
      };
      // A revoked token of a live task (revoked on its own) is still not a valid subject.
      if (row.revokedAt !== null && isLive(task, deps.clock.now()))
        throw new OAuthError('invalid_request', INVALID_SUBJECT);
      return { delegation, parent };
    }
    throw new OAuthError(
      'invalid_request',
      `subject_token_type must be ${TOKEN_TYPE.jwt} (a delegation credential) or ${TOKEN_TYPE.accessToken} (a task token)`,
    );
  }
}
