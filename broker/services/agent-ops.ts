import { ERRAND_SCOPE, PATHS, parseScope } from '@errand/protocol';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { DelegationStore, StoredDelegation } from '../../db/stores/delegation-store.js';
import type { TaskStore } from '../../db/stores/task-store.js';
import { type Client, canExchange } from '../core/client.js';
import type { DelegationStatus } from '../core/delegation.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import type { Task, TerminalState } from '../core/task.js';
import type { WorkloadClaims } from '../core/workload-claims.js';
import type { ClientAuthenticator } from '../identity/client-auth.js';
import { type Refusal, type Result, refusal, refused } from './agent-refusals.js';
import type { TaskDetail } from './authorization-details.js';
import { type DelegationAsk, readDelegationRequest } from './delegation-ask.js';
import type { DelegationLimits, DelegationService } from './delegations.js';
import type { ExchangeResponse, ExchangeService } from './exchange-token.js';
import type { PolicyDoor } from './policy/entities.js';
import type { Caller } from './resource-access.js';
import { canonicalResources } from './resource-policy.js';
import type { TaskService } from './tasks.js';
import type { UserLookup } from './user-lookup.js';

/** The operations agents perform through Errand's own endpoints, and the scope each needs. */
export const AGENT_OPERATIONS = {
  request_delegation: ERRAND_SCOPE.delegate,
  list_delegations: ERRAND_SCOPE.delegate,
  start_task: ERRAND_SCOPE.tasks,
  renew_task_token: ERRAND_SCOPE.tasks,
  delegate_to_subagent: ERRAND_SCOPE.tasks,
  end_task: ERRAND_SCOPE.tasks,
  list_tasks: ERRAND_SCOPE.tasks,
} as const;
export type AgentOperation = keyof typeof AGENT_OPERATIONS;

export interface AgentOpsDeps {
  issuer: string;
  clock: Clock;
  limits: DelegationLimits;
  clients: ClientStore;
  delegations: DelegationStore;
  tasks: TaskStore;
  delegationService: DelegationService;
  taskService: TaskService;
  exchange: ExchangeService;
  /** Verifies a sub-agent's `actor_token` (RFC 8693 §2.1), as the token endpoint does. */
  auth: Pick<ClientAuthenticator, 'verifyActorToken'>;
  users: UserLookup;
}

/** Where a resource and scope arrive as the wire carries them (a URL, a space-separated list). */
export interface Target {
  resource?: string | undefined;
  scope?: string | undefined;
}

/**
 * What agents do through Errand's MCP tools and A2A skills, decided in one place: who the caller
 * is and whom its token speaks for, which delegations and tasks it may touch, and the token
 * exchange itself (the token endpoint's own `ExchangeService`, with every one of its rules).
 * Doors only translate: arguments in, a typed result or refusal out.
 *
 * A token that speaks for a person (authorization code) reaches only that person's delegations and
 * tasks; a client acting as itself (client credentials) reaches every delegation given to it, as
 * it does at the token endpoint with its credentials. A public client, which anyone can claim to
 * be, holds no delegation, exchanges nothing and never acts (RFC 8693 §2.1 policy).
 */
export class AgentOps {
  constructor(private readonly deps: AgentOpsDeps) {}

  /** Where a person approves what agents asked for; carries no token, user id or other PII. */
  get approvalUrl(): string {
    return `${this.deps.issuer}${PATHS.myRequests}`;
  }

  /** The delegations given to (or asked for by) the caller, newest first, for the user it speaks for. */
  async listDelegations(caller: Caller, status?: DelegationStatus): Promise<Result<StoredDelegation[]>> {
    const denied = this.scopeRefusal(caller, 'list_delegations');
    if (denied) return denied;
    const all = await this.deps.delegations.listForAgent(caller.client.id);
    return {
      ok: true,
      value: all
        .filter((d) => speaksFor(caller, d.userId) && (status === undefined || d.status === status))
        .sort((a, b) => b.createdAt - a.createdAt),
    };
  }

  /** One of the caller's delegations (same scoping as the listing), or null. */
  async delegationFor(caller: Caller, delegationId: string): Promise<StoredDelegation | null> {
    const d = await this.deps.delegations.get(delegationId);
    return d && d.agentId === caller.client.id && speaksFor(caller, d.userId) ? d : null;
  }

  /**
   * Asks a person for a delegation (a CIBA-style request without a poll handle; the person decides
   * at the approval page). A repeat of the same request within the CIBA request lifetime returns
   * the delegation it created, so a client retrying after an elicitation does not ask twice.
   */
  async requestDelegation(
    caller: Caller,
    input: { user?: string | undefined; ask: DelegationAsk; bindingMessage: string | null },
    requestId: string,
  ): Promise<Result<{ delegation: StoredDelegation; created: boolean }>> {
    const denied = this.scopeRefusal(caller, 'request_delegation') ?? this.exchangeRefusal(caller);
    if (denied) return denied;
    const { deps } = this;
    let userId: string;
    if (caller.user) {
      if (input.user !== undefined && input.user !== caller.user.username) {
        return refusal('other_user', 'invalid_request', 'the access token speaks for another user');
      }
      userId = caller.user.id;
    } else {
      if (input.user === undefined) {
        return refusal(
          'user_required',
          'invalid_request',
          'user is required: the access token does not speak for a user',
          {
            user: 'the Errand username of the person to ask',
          },
        );
      }
      const found = await deps.users.resolve(caller.client.id, input.user);
      if (!found.ok && found.reason === 'too_many_unknown') {
        return refusal(
          'too_many_unknown',
          'rate_limited',
          `too many requests named unknown users; try again in ${found.retryAfter} seconds`,
        );
      }
      if (!found.ok) {
        // CIBA Core §13: unknown_user_id.
        return refusal('unknown_user', 'unknown_user_id', 'user does not name a known user', {
          user: 'the Errand username of the person to ask',
        });
      }
      userId = found.user.id;
    }
    return this.guard(async () => {
      const asked = await readDelegationRequest(
        { clients: deps.clients, limits: deps.limits },
        input.ask,
        caller.client,
      );
      const now = deps.clock.now();
      const mine = await deps.delegations.listForAgent(caller.client.id);
      const same = mine.find(
        (d) =>
          d.userId === userId &&
          (d.status === 'pending' || d.status === 'active') &&
          now - d.createdAt < deps.limits.cibaRequestTtl &&
          JSON.stringify(d.requested) === JSON.stringify(asked),
      );
      if (same) return { delegation: same, created: false };
      const { delegation } = await deps.delegationService.request({
        client: caller.client,
        userId,
        asked,
        source: 'ciba',
        bindingMessage: input.bindingMessage,
        requestedExpiry: null,
        requestId,
        door: { door: caller.door ?? 'mcp', address: caller.address ?? null },
      });
      return { delegation, created: true };
    });
  }

  /** Starts a task under one of the caller's delegations, with its first token (RFC 8693 exchange). */
  async startTask(
    caller: Caller,
    input: Target & { delegationId: string; ttl?: number | undefined; externalIds?: Record<string, string> },
    requestId: string,
  ): Promise<Result<ExchangeResponse>> {
    const denied = this.scopeRefusal(caller, 'start_task') ?? this.exchangeRefusal(caller);
    if (denied) return denied;
    const d = await this.delegationFor(caller, input.delegationId);
    const wanted = { delegation: { resource: input.resource ?? null, scope: input.scope ?? null } };
    if (!d) {
      return refusal(
        'no_delegation',
        'no_delegation',
        `no delegation ${input.delegationId} is held by this agent`,
        wanted,
      );
    }
    if (d.status === 'pending') {
      return refusal('approval_pending', 'approval_pending', 'the user has not approved the delegation yet', {
        approval: this.approvalUrl,
      });
    }
    if (d.status !== 'active') {
      return refusal('delegation_inactive', `delegation_${d.status}`, `the delegation is ${d.status}`, wanted);
    }
    const task =
      input.ttl === undefined && !input.externalIds
        ? null
        : { taskId: null, ttl: input.ttl ?? null, externalIds: input.externalIds ?? {} };
    return this.exchangeAsCaller(caller, d.id, input, task, requestId);
  }

  /**
   * A new token for a root task the caller holds: when the last one expired, or for another resource
   * of the same delegation (the token endpoint's exchange with the credential naming the task).
   * A sub-task's tokens come from the token of the task above it, as at the token endpoint.
   */
  async renewTaskToken(
    caller: Caller,
    input: Target & { taskId: string },
    requestId: string,
  ): Promise<Result<ExchangeResponse>> {
    const denied = this.scopeRefusal(caller, 'renew_task_token') ?? this.exchangeRefusal(caller);
    if (denied) return denied;
    const task = await this.heldTask(caller, input.taskId);
    if (!task) return noTask(input.taskId);
    if (task.parentTaskId !== null) {
      return refusal(
        'not_root_task',
        'invalid_request',
        `task ${task.id} is a sub-task: its tokens come from the task above it (ask the agent that handed it to you)`,
      );
    }
    return this.exchangeAsCaller(
      caller,
      task.delegationId,
      input,
      { taskId: task.id, ttl: null, externalIds: {} },
      requestId,
    );
  }

  /**
   * Hands part of a task the caller holds to a sub-agent: a sub-task below it and a token for the
   * sub-agent, never more than the task holds. The sub-agent takes part, as at the token endpoint
   * (RFC 8693 §2.1 `actor_token`): it signs an actor token, which fixes who acts and the assurance
   * level it authenticated at. Only a hand-off to the caller itself needs none.
   */
  async delegateToSubagent(
    caller: Caller,
    input: Target & { taskId: string; subAgentId: string; actorToken?: string | undefined },
    requestId: string,
  ): Promise<Result<ExchangeResponse & { subAgent: Client }>> {
    const denied = this.scopeRefusal(caller, 'delegate_to_subagent') ?? this.exchangeRefusal(caller);
    if (denied) return denied;
    const task = await this.heldTask(caller, input.taskId);
    if (!task) return noTask(input.taskId);
    let actor: Client;
    let actorAssurance = caller.assurance;
    let actorWorkload: WorkloadClaims | null = null;
    if (input.actorToken !== undefined) {
      let verified: Awaited<ReturnType<AgentOpsDeps['auth']['verifyActorToken']>>;
      try {
        verified = await this.deps.auth.verifyActorToken(input.actorToken);
      } catch (err) {
        if (err instanceof OAuthError && err.status < 500) return refused(err);
        throw err;
      }
      if (verified.client.id !== input.subAgentId) {
        return refusal('actor_mismatch', 'invalid_request', 'the actor_token was not signed by sub_agent_id');
      }
      actor = verified.client;
      actorAssurance = verified.assurance;
      actorWorkload = verified.workload ?? null;
    } else if (input.subAgentId === caller.client.id) {
      actor = caller.client;
    } else {
      if (!(await this.deps.clients.get(input.subAgentId))) {
        return refusal(
          'unknown_sub_agent',
          'unknown_sub_agent',
          `no client ${input.subAgentId} is registered at Errand`,
          {
            sub_agent_id: 'the client id of a registered agent',
          },
        );
      }
      return refusal(
        'actor_required',
        'invalid_request',
        'the sub-agent must take part: send an actor_token it made for this hand-off (RFC 8693 §2.1)',
        {
          actor_token: `a JWT ${input.subAgentId} signed (typ actor+jwt, aud the issuer), or its workload token for the audience <issuer>#actor`,
        },
      );
    }
    return this.guard(async () => {
      const issued = await this.deps.exchange.exchangeOnBehalf({
        client: caller.client,
        actor: actor.id === caller.client.id ? null : actor,
        actorAssurance,
        actorWorkload,
        // The token is the sub-agent's to use: it is not bound to the caller's key.
        dpopJkt: null,
        ...doorOf(caller),
        subject: { taskId: task.id },
        ...target(input),
        tools: null,
        task: null,
        requestId,
      });
      return { ...issued, subAgent: actor };
    });
  }

  /** Ends a task the caller takes part in (and its subtree); every token of them stops working. */
  async endTask(
    caller: Caller,
    input: { taskId: string; state: TerminalState },
    requestId: string,
  ): Promise<Result<Task>> {
    const denied = this.scopeRefusal(caller, 'end_task');
    if (denied) return denied;
    const task = await this.deps.tasks.get(input.taskId);
    // Another user's task is "not found", as every other refusal of a task the caller cannot touch.
    if (task && !speaksFor(caller, task.userId)) return refused(new OAuthError('not_found', 'no such task'));
    return this.guard(() =>
      this.deps.taskService.end({ kind: 'agent', client: caller.client }, input.taskId, input.state, requestId),
    );
  }

  /** The tasks the caller holds, newest first, for the user it speaks for. */
  async listTasks(caller: Caller): Promise<Result<Task[]>> {
    const denied = this.scopeRefusal(caller, 'list_tasks');
    if (denied) return denied;
    const tasks = await this.deps.tasks.listForAgent(caller.client.id);
    return { ok: true, value: tasks.filter((t) => speaksFor(caller, t.userId)) };
  }

  /** A task the caller holds (it is the task's agent, for the user its token speaks for), or null. */
  async heldTask(caller: Caller, taskId: string): Promise<Task | null> {
    const task = await this.deps.tasks.get(taskId);
    return task && task.agentId === caller.client.id && speaksFor(caller, task.userId) ? task : null;
  }

  /** The caller's own exchange under its delegation (a new task, or `task` named again). */
  private exchangeAsCaller(
    caller: Caller,
    delegationId: string,
    input: Target,
    task: TaskDetail | null,
    requestId: string,
  ): Promise<Result<ExchangeResponse>> {
    return this.guard(() =>
      this.deps.exchange.exchangeOnBehalf({
        client: caller.client,
        actor: null,
        actorAssurance: caller.assurance,
        // RFC 9449 §6.1: a caller that proved a key gets a token bound to that key.
        dpopJkt: caller.dpopJkt,
        ...doorOf(caller),
        subject: { delegationId },
        ...target(input),
        tools: null,
        task,
        requestId,
      }),
    );
  }

  private scopeRefusal(caller: Caller, op: AgentOperation): { ok: false; refusal: Refusal } | null {
    const scope = AGENT_OPERATIONS[op];
    if (caller.scopes.includes(scope)) return null;
    return refusal('insufficient_scope', 'insufficient_scope', `this operation needs the scope ${scope}`, { scope });
  }

  private exchangeRefusal(caller: Caller): { ok: false; refusal: Refusal } | null {
    if (canExchange(caller.client)) return null;
    return refusal(
      'client_not_allowed',
      'unauthorized_client',
      'this client may not hold delegations or tasks: it must be a confidential client allowed token exchange',
    );
  }

  /** Runs a service call; its protocol refusals (OAuthError) become typed refusals, bugs propagate. */
  private async guard<T>(body: () => Promise<T>): Promise<Result<T>> {
    try {
      return { ok: true, value: await body() };
    } catch (err) {
      if (err instanceof OAuthError && err.status < 500) return refused(err);
      throw err;
    }
  }
}

/** Whether the caller's token reaches a person's delegations and tasks. */
function speaksFor(caller: Caller, userId: string): boolean {
  return caller.user === null || caller.user.id === userId;
}

function noTask(taskId: string) {
  return refusal('no_task', 'no_task', `no task ${taskId} is held by this agent`, {
    task: 'a task_id of a task you started',
  });
}

/** The audience and scope of an exchange in the forms the service expects (RFC 8707, RFC 6749 §3.3). */
function target(input: Target): { audience: string | null; scope: string[] | null } {
  const [audience] = input.resource === undefined ? [] : canonicalResources(input.resource);
  const scope = input.scope === undefined ? null : parseScope(input.scope);
  if (scope === null && input.scope !== undefined) {
    throw new OAuthError('invalid_scope', 'scope must be space-separated scope tokens');
  }
  return { audience: audience ?? null, scope };
}

/** Where the call came in, for policies (`context.door`, `context.source_address`). */
function doorOf(caller: Caller): { door?: PolicyDoor; address?: string | null } {
  return { ...(caller.door ? { door: caller.door } : {}), address: caller.address ?? null };
}
