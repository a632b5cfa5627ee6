import { randomUUID } from 'node:crypto';
import { type Message, type Part, Role, TaskState } from '@a2a-js/sdk';
import { AgentEvent, type AgentExecutor, type ExecutionEventBus, type RequestContext } from '@a2a-js/sdk/server';
import { z } from 'zod';
import { OAuthError } from '../broker/core/errors.js';
import type { TerminalState } from '../broker/core/task.js';
import { type AppDeps, delegationLimits } from '../broker/http/app.js';
import type { Form } from '../broker/http/params.js';
import { delegateToSubagent, renewTaskToken } from '../broker/services/agent-tasks.js';
import { readDelegationRequest } from '../broker/services/delegations.js';
import type { Caller } from '../mcp-server/errand/auth.js';
import {
  exchangeTarget,
  ResourceArg,
  ScopeArg,
  type TaskTokenOutput,
  taskTokenOutput,
} from '../mcp-server/errand/task-tokens.js';
import { DelegateToSubagentInputSchema } from '../mcp-server/errand/tools/delegate-to-subagent.js';
import { EndTaskInputSchema } from '../mcp-server/errand/tools/end-task.js';
import { RequestDelegationInputSchema } from '../mcp-server/errand/tools/request-delegation.js';
import { a2aUrl, SKILL_IDS, SKILL_SCOPES, type SkillId } from './card.js';
import { A2A_EXTERNAL_ID, a2aStateOf, callerOf, ERRAND_TASK_KEY, errandTaskIdOf } from './task-bridge.js';

/** What the skills use from the broker: the same services as the token endpoint and the MCP tools. */
export type ExecutorDeps = Pick<
  AppDeps,
  | 'config'
  | 'clock'
  | 'log'
  | 'clients'
  | 'users'
  | 'delegations'
  | 'tasks'
  | 'delegationService'
  | 'taskService'
  | 'exchange'
>;

/** A skill call: a data part (or text holding the same JSON) naming the skill and its arguments. */
const SkillCallSchema = z.object({
  skill: z.string().min(1).max(64),
  arguments: z.record(z.string(), z.unknown()).optional(),
});

const IssueTaskTokenSchema = z.strictObject({
  delegation_id: z.string().min(1).max(100).optional().describe('An active delegation: starts a new task.'),
  task_id: z.string().min(1).max(100).optional().describe('A live task you started: another token for it.'),
  resource: ResourceArg.optional(),
  scope: ScopeArg.optional(),
  ttl: z.number().int().positive().optional().describe('Task lifetime in seconds (capped by Errand).'),
});
// Inside an A2A task that stands for an Errand task, task_id defaults to that task.
const DelegateSchema = DelegateToSubagentInputSchema.partial({ task_id: true });
const EndTaskSchema = EndTaskInputSchema.partial({ task_id: true });

/** A structured "no", as the MCP tools give it: what went wrong, what is missing, how to get it. */
interface Refusal {
  error: string;
  error_description: string;
  missing?: Record<string, unknown>;
  how: string;
}

function howToRecover(err: OAuthError): Pick<Refusal, 'how'> {
  switch (err.code) {
    case 'invalid_target':
      return { how: 'name a resource the delegation covers (the extended card lists them), or request_delegation' };
    case 'invalid_scope':
      return { how: 'ask only for scopes the delegation grants, or request_delegation for more' };
    case 'not_found':
      return { how: 'pass the task_id of a task you take part in' };
    case 'conflict':
      return { how: 'nothing to do: the task has already ended' };
    default:
      return { how: 'check the arguments, the delegation and the task, then send the message again' };
  }
}

const textPart = (text: string): Part => ({
  content: { $case: 'text', value: text },
  mediaType: 'text/plain',
  filename: '',
  metadata: undefined,
});
const dataPart = (data: Record<string, unknown>): Part => ({
  content: { $case: 'data', value: data },
  mediaType: 'application/json',
  filename: '',
  metadata: undefined,
});

/** The first data part, or text part holding a JSON object, of a message. */
function readSkillCall(message: Message): unknown {
  for (const part of message.parts) {
    const content = part.content;
    if (content?.$case === 'data') return content.value;
    if (content?.$case === 'text' && content.value.trim().startsWith('{')) {
      try {
        return JSON.parse(content.value);
      } catch {
        // Plain text that happens to start with a brace: not a call.
      }
    }
  }
  return undefined;
}

/** What one execution publishes: a reply message, a new (Errand) task, or the end of the current one. */
class Turn {
  constructor(
    private readonly rc: RequestContext,
    private readonly bus: ExecutionEventBus,
    private readonly now: () => string,
  ) {}

  private message(parts: Part[], taskId: string): Message {
    return {
      messageId: randomUUID(),
      contextId: this.rc.contextId,
      taskId,
      role: Role.ROLE_AGENT,
      parts,
      metadata: undefined,
      extensions: [],
      referenceTaskIds: [],
    };
  }

  reply(text: string, data: Record<string, unknown>): void {
    const taskId = this.rc.task ? this.rc.taskId : '';
    this.bus.publish(AgentEvent.message(this.message([textPart(text), dataPart(data)], taskId)));
  }

  refuse(r: Refusal): void {
    this.reply(`${r.error_description}: ${r.how}.`, { ...r });
  }

  /** This A2A task is the Errand task: working while the task lives, its token as an artifact. */
  startTask(errandTaskId: string, token: TaskTokenOutput): void {
    const { rc } = this;
    this.bus.publish(
      AgentEvent.task({
        id: rc.taskId,
        contextId: rc.contextId,
        status: {
          state: TaskState.TASK_STATE_WORKING,
          message: this.message(
            [textPart(`Task ${errandTaskId} started; cancel this A2A task to end it and revoke its tokens.`)],
            rc.taskId,
          ),
          timestamp: this.now(),
        },
        artifacts: [
          {
            artifactId: 'task-token',
            name: 'task-token',
            description: `An access token for ${errandTaskId}`,
            parts: [dataPart(token)],
            metadata: undefined,
            extensions: [],
          },
        ],
        history: [],
        metadata: { [ERRAND_TASK_KEY]: errandTaskId },
      }),
    );
  }

  /** The current A2A task moves to the state its Errand task ended in. */
  endCurrent(state: TerminalState, text: string, data: Record<string, unknown>): void {
    const { rc } = this;
    this.bus.publish(AgentEvent.task(rc.task!));
    this.bus.publish(
      AgentEvent.statusUpdate({
        taskId: rc.taskId,
        contextId: rc.contextId,
        status: {
          state: a2aStateOf(state),
          message: this.message([textPart(text), dataPart(data)], rc.taskId),
          timestamp: this.now(),
        },
        metadata: undefined,
      }),
    );
  }
}

function toForm(args: z.infer<typeof RequestDelegationInputSchema>): Form {
  const form: Form = { resource: args.resources, scope: args.scopes.join(' ') };
  if (args.max_depth !== undefined) form.max_depth = String(args.max_depth);
  if (args.max_token_ttl !== undefined) form.max_token_ttl = String(args.max_token_ttl);
  if (args.expires_in !== undefined) form.delegation_expires_in = String(args.expires_in);
  if (args.sub_agents !== undefined) form.sub_agents = args.sub_agents.join(' ');
  return form;
}

interface SkillEnv {
  turn: Turn;
  rc: RequestContext;
  caller: Caller;
  requestId: string;
}

/**
 * Errand's skills (A2A §4.4.5) over its services: the same operations as the MCP tools, with the
 * same rules. A skill's "no" is a reply message `{error, error_description, missing?, how}`; an
 * unexpected failure is logged and answered with a fixed description, never thrown to the SDK
 * (which would put the error message in a FAILED task).
 */
export class ErrandAgentExecutor implements AgentExecutor {
  private readonly running = new Map<string, string>();

  constructor(private readonly deps: ExecutorDeps) {}

  async execute(rc: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const { caller, requestId } = callerOf(rc.context);
    const turn = new Turn(rc, bus, () => new Date(this.deps.clock.now() * 1000).toISOString());
    this.running.set(rc.taskId, rc.contextId);
    try {
      await this.dispatch({ turn, rc, caller, requestId });
    } catch (err) {
      if (err instanceof OAuthError) {
        turn.refuse({ error: err.code, error_description: err.message, ...howToRecover(err) });
      } else {
        this.deps.log.error('a2a.skill_failed', { err, requestId });
        turn.refuse({
          error: 'server_error',
          error_description: 'an internal error occurred; it has been logged',
          how: 'try again later',
        });
      }
    } finally {
      this.running.delete(rc.taskId);
    }
  }

  /** Reached only while an execution is still publishing; the bridge ends the Errand task. */
  async cancelTask(taskId: string, bus: ExecutionEventBus): Promise<void> {
    bus.publish(
      AgentEvent.statusUpdate({
        taskId,
        contextId: this.running.get(taskId) ?? '',
        status: {
          state: TaskState.TASK_STATE_CANCELED,
          message: undefined,
          timestamp: new Date(this.deps.clock.now() * 1000).toISOString(),
        },
        metadata: undefined,
      }),
    );
  }

  private async dispatch(env: SkillEnv): Promise<void> {
    const { turn, caller } = env;
    const call = SkillCallSchema.safeParse(readSkillCall(env.rc.userMessage));
    if (!call.success) {
      return turn.refuse({
        error: 'invalid_request',
        error_description: 'the message names no skill',
        missing: { skill: SKILL_IDS },
        how: 'send a data part {"skill": "<id>", "arguments": {…}} with a skill from the agent card',
      });
    }
    const skill = call.data.skill;
    if (!(SKILL_IDS as string[]).includes(skill)) {
      return turn.refuse({
        error: 'unknown_skill',
        error_description: `Errand has no skill "${skill}"`,
        missing: { skill: SKILL_IDS },
        how: 'name a skill from the agent card',
      });
    }
    const scope = SKILL_SCOPES[skill as SkillId];
    if (!caller.scopes.includes(scope)) {
      return turn.refuse({
        error: 'insufficient_scope',
        error_description: `the skill ${skill} needs the scope ${scope}`,
        missing: { scope },
        how: `get an access token for ${a2aUrl(this.deps.config.issuer)} with the scope ${scope}`,
      });
    }
    const args = call.data.arguments ?? {};
    switch (skill as SkillId) {
      case 'request_delegation':
        return this.requestDelegation(env, parseArgs(RequestDelegationInputSchema, args));
      case 'issue_task_token':
        return this.issueTaskToken(env, parseArgs(IssueTaskTokenSchema, args));
      case 'delegate_to_subagent':
        return this.delegateToSubagent(env, parseArgs(DelegateSchema, args));
      case 'end_task':
        return this.endTask(env, parseArgs(EndTaskSchema, args));
    }
  }

  private async requestDelegation(env: SkillEnv, args: z.infer<typeof RequestDelegationInputSchema>) {
    const { deps } = this;
    const { turn, caller } = env;
    let userId: string;
    if (caller.user) {
      if (args.user !== undefined && args.user !== caller.user.username) {
        return turn.refuse({
          error: 'invalid_request',
          error_description: 'the access token speaks for another user',
          how: 'omit user: the request goes to the user the access token speaks for',
        });
      }
      userId = caller.user.id;
    } else {
      const user = args.user === undefined ? null : await deps.users.findByUsername(args.user);
      if (!user || user.disabledAt !== null) {
        return turn.refuse({
          error: args.user === undefined ? 'invalid_request' : 'unknown_user_id',
          error_description:
            args.user === undefined
              ? 'user is required: the access token does not speak for a user'
              : 'user does not name a known user',
          missing: { user: 'the Errand username of the person to ask' },
          how: 'send request_delegation again with user set to their username',
        });
      }
      userId = user.id;
    }
    const limits = delegationLimits(deps.config);
    const asked = await readDelegationRequest({ clients: deps.clients, limits }, toForm(args), caller.agent);
    const { delegation } = await deps.delegationService.request({
      client: caller.agent,
      userId,
      asked,
      source: 'ciba',
      bindingMessage: args.binding_message ?? null,
      requestedExpiry: null,
      requestId: env.requestId,
    });
    deps.log.info('delegation.requested', { clientId: caller.agent.id, delegationId: delegation.id, via: 'a2a' });
    const approvalUrl = `${deps.config.issuer}/my/requests`;
    turn.reply(`Ask the user to review and approve the request at ${approvalUrl}.`, {
      delegation_id: delegation.id,
      status: delegation.status,
      approval_url: approvalUrl,
      message: 'Once approved, use issue_task_token with this delegation_id.',
    });
  }

  private async issueTaskToken(env: SkillEnv, args: z.infer<typeof IssueTaskTokenSchema>) {
    const { deps } = this;
    const { turn, caller, rc } = env;
    const target = exchangeTarget(args.resource, args.scope);
    const existing = args.task_id ?? errandTaskIdOf(rc.task);
    if (existing) {
      const renewed = await renewTaskToken(deps, {
        agent: caller.agent,
        taskId: existing,
        audience: target.audience,
        scope: target.scope,
        requestId: env.requestId,
      });
      if (!renewed) return turn.refuse(noTask(existing));
      return turn.reply(`A new access token for task ${renewed.taskId}.`, taskTokenOutput(renewed.issued));
    }

    const missing = { delegation: { resource: args.resource ?? null, scope: args.scope ?? null } };
    if (!args.delegation_id || !args.resource) {
      return turn.refuse({
        error: 'invalid_request',
        error_description: 'a new task needs delegation_id and resource',
        missing: {
          ...(args.delegation_id ? {} : { delegation_id: 'an active delegation (request_delegation)' }),
          ...(args.resource ? {} : { resource: 'the resource URL the token is for' }),
        },
        how: 'name an active delegation (request_delegation gets one) and the resource the token is for',
      });
    }
    // Guidance only: the exchange decides, with the same rules as the token endpoint.
    const d = await deps.delegations.get(args.delegation_id);
    if (!d || d.agentId !== caller.agent.id) {
      return turn.refuse({
        error: 'no_delegation',
        error_description: `no delegation ${args.delegation_id} is held by this agent`,
        missing,
        how: 'use request_delegation for this resource and scope, have the user approve it, then send again',
      });
    }
    if (d.status !== 'active') {
      const pending = d.status === 'pending';
      return turn.refuse({
        error: pending ? 'approval_pending' : `delegation_${d.status}`,
        error_description: pending ? 'the user has not approved the delegation yet' : `the delegation is ${d.status}`,
        missing: pending ? { approval: `${deps.config.issuer}/my/requests` } : missing,
        how: pending
          ? 'ask the user to approve the request at the approval URL, then send again'
          : 'use request_delegation for a new delegation',
      });
    }
    // The Errand task records this A2A task's id; cancelling the A2A task ends it (task-bridge.ts).
    const issued = await deps.exchange.exchangeOnBehalf({
      client: caller.agent,
      actor: null,
      subject: { delegationId: d.id },
      audience: target.audience,
      scope: target.scope,
      tools: null,
      task: { taskId: null, ttl: args.ttl ?? null, externalIds: { [A2A_EXTERNAL_ID]: rc.taskId } },
      requestId: env.requestId,
    });
    turn.startTask(issued.task_id, taskTokenOutput(issued));
  }

  private async delegateToSubagent(env: SkillEnv, args: z.infer<typeof DelegateSchema>) {
    const { deps } = this;
    const { turn, caller } = env;
    const taskId = args.task_id ?? errandTaskIdOf(env.rc.task);
    if (!taskId) return turn.refuse(noTask(null));
    const target = exchangeTarget(args.resource, args.scope);
    const result = await delegateToSubagent(deps, {
      agent: caller.agent,
      taskId,
      subAgentId: args.sub_agent_id,
      audience: target.audience,
      scope: target.scope,
      requestId: env.requestId,
    });
    if (!result.ok && result.reason === 'no_task') return turn.refuse(noTask(taskId));
    if (!result.ok) {
      return turn.refuse({
        error: 'unknown_sub_agent',
        error_description: `no client ${args.sub_agent_id} is registered at Errand`,
        missing: { sub_agent_id: 'the client id of a registered agent' },
        how: 'ask an administrator to register the sub-agent, then send again with its client id',
      });
    }
    const { issued, subAgent } = result;
    turn.reply(`A token for ${subAgent.name} under a sub-task of ${taskId}; hand it to that agent.`, {
      ...taskTokenOutput(issued),
      sub_agent_id: subAgent.id,
    });
  }

  private async endTask(env: SkillEnv, args: z.infer<typeof EndTaskSchema>) {
    const { turn, caller, rc } = env;
    const taskId = args.task_id ?? errandTaskIdOf(rc.task);
    if (!taskId) return turn.refuse(noTask(null));
    const task = await this.deps.taskService.end(
      { kind: 'agent', clientId: caller.agent.id },
      taskId,
      args.state,
      env.requestId,
    );
    const out = { task_id: task.id, state: task.state, ended_at: task.endedAt, end_reason: task.endReason };
    const text = `Task ${task.id} ended (${task.state}); its tokens and those of its sub-tasks are revoked.`;
    if (rc.task && errandTaskIdOf(rc.task) === task.id) return turn.endCurrent(args.state, text, out);
    turn.reply(text, out);
  }
}

function noTask(taskId: string | null): Refusal {
  return {
    error: 'no_task',
    error_description: taskId ? `no task ${taskId} is held by this agent` : 'task_id is required',
    missing: { task: 'a task_id from issue_task_token' },
    how: 'start a task with issue_task_token under an active delegation',
  };
}

/** Skill arguments through their schema; the first issue becomes an `invalid_request` refusal. */
function parseArgs<S extends z.ZodType>(schema: S, args: unknown): z.output<S> {
  const result = schema.safeParse(args);
  if (result.success) return result.data;
  const [issue] = result.error.issues;
  const field = issue?.path.map(String).join('.') ?? '';
  throw new OAuthError('invalid_request', field ? `arguments.${field}: ${issue?.message}` : String(issue?.message));
}
