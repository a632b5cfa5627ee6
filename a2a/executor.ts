import { randomUUID } from 'node:crypto';
import { type Message, type Part, Role, TaskState } from '@a2a-js/sdk';
import { AgentEvent, type AgentExecutor, type ExecutionEventBus, type RequestContext } from '@a2a-js/sdk/server';
import { isToolAllowed } from '@errand/protocol';
import { z } from 'zod';
import type { TerminalState } from '../broker/core/task.js';
import type { Engine } from '../broker/engine.js';
import { storageRefusal } from '../broker/http/on-error.js';
import {
  DelegateToSubagentArgs,
  delegationAskOf,
  EndTaskArgs,
  RequestDelegationArgs,
  ResourceArg,
  ScopeArg,
  type TaskTokenOutput,
  taskTokenOutput,
} from '../broker/services/agent-args.js';
import type { RefusalCode, Result } from '../broker/services/agent-refusals.js';
import { a2aUrl } from '../broker/services/built-in-resources.js';
import type { Caller } from '../broker/services/resource-access.js';
import { SKILL_IDS, SKILL_SCOPES, type SkillId } from './card.js';
import { A2A_EXTERNAL_ID, a2aStateOf, callerOf, ERRAND_TASK_KEY, errandTaskIdOf } from './task-bridge.js';

/** What the skills use from the engine: the same agent operations as the MCP tools. */
export type ExecutorDeps = Pick<Engine, 'config' | 'clock' | 'log' | 'agentOps'>;

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
const DelegateSchema = DelegateToSubagentArgs.partial({ task_id: true });
const EndTaskSchema = EndTaskArgs.partial({ task_id: true });

/** A structured "no", as the MCP tools give it: what went wrong, what is missing, how to get it. */
interface Refusal {
  error: string;
  error_description: string;
  missing?: Record<string, unknown>;
  how: string;
}

/** What the agent can do about a refusal, worded for the skills. */
const HOW: Record<Exclude<RefusalCode, 'refused'>, string> = {
  insufficient_scope: 'get an access token for this endpoint with the scope named in missing',
  client_not_allowed: 'use a confidential agent registered for token exchange (ask an administrator)',
  user_required: 'send request_delegation again with user set to their username',
  other_user: 'omit user: the request goes to the user the access token speaks for',
  unknown_user: 'check the username with the person and send again',
  too_many_unknown: 'wait, then send again with a username you have checked with the person',
  no_delegation: 'use request_delegation for this resource and scope, have the user approve it, then send again',
  approval_pending: 'ask the user to approve the request at the approval URL, then send again',
  delegation_inactive: 'use request_delegation for a new delegation',
  no_task: 'start a task with issue_task_token under an active delegation',
  not_root_task: 'ask the agent that handed you the sub-task for a new token',
  unknown_sub_agent: 'ask an administrator to register the sub-agent, then send again with its client id',
  actor_required: "have the sub-agent sign an actor token and send it as actor_token (see the README's Actor tokens)",
  actor_mismatch: 'send the actor token of the agent named in sub_agent_id',
};

/** Guidance for a plain protocol refusal, by its OAuth error code. */
function howToRecover(error: string): string {
  switch (error) {
    case 'invalid_target':
      return 'name a resource the delegation covers (the extended card lists them), or request_delegation';
    case 'invalid_scope':
      return 'ask only for scopes the delegation grants, or request_delegation for more';
    case 'not_found':
      return 'pass the task_id of a task you take part in';
    case 'conflict':
      return 'nothing to do: the task has already ended';
    default:
      return 'check the arguments, the delegation and the task, then send the message again';
  }
}

/** The engine's refusal, worded for A2A. */
function worded(result: Extract<Result<unknown>, { ok: false }>): Refusal {
  const r = result.refusal;
  return {
    error: r.error,
    error_description: r.description,
    ...(r.missing ? { missing: r.missing } : {}),
    how: r.code === 'refused' ? howToRecover(r.error) : HOW[r.code],
  };
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
      const refused = storageRefusal(err);
      if (err instanceof ArgumentError) {
        turn.refuse({ error: 'invalid_request', error_description: err.message, how: howToRecover('invalid_request') });
      } else if (refused?.code === 'invalid_request') {
        turn.refuse({ error: refused.code, error_description: refused.message, how: howToRecover('invalid_request') });
      } else {
        this.deps.log.error('a2a.skill_failed', { err, requestId });
        const unavailable = refused;
        turn.refuse(
          unavailable
            ? {
                error: unavailable.code,
                error_description: unavailable.message,
                how: `try again in ${unavailable.headers['Retry-After']} seconds`,
              }
            : {
                error: 'server_error',
                error_description: 'an internal error occurred; it has been logged',
                how: 'try again later',
              },
        );
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
    // RFC 9396 grants at this endpoint name skills as the actions a token may use.
    if (!isToolAllowed(caller.tools, skill)) {
      return turn.refuse({
        error: 'insufficient_scope',
        error_description: `the access token does not grant the skill ${skill} (authorization_details)`,
        missing: { authorization_details: { type: 'mcp_tool', actions: [skill] } },
        how: 'get an access token whose authorization_details include this skill',
      });
    }
    const args = call.data.arguments ?? {};
    switch (skill as SkillId) {
      case 'request_delegation':
        return this.requestDelegation(env, parseArgs(RequestDelegationArgs, args));
      case 'issue_task_token':
        return this.issueTaskToken(env, parseArgs(IssueTaskTokenSchema, args));
      case 'delegate_to_subagent':
        return this.delegateToSubagent(env, parseArgs(DelegateSchema, args));
      case 'end_task':
        return this.endTask(env, parseArgs(EndTaskSchema, args));
    }
  }

  private async requestDelegation(env: SkillEnv, args: RequestDelegationArgs) {
    const { deps } = this;
    const { turn, caller } = env;
    const asked = await deps.agentOps.requestDelegation(
      caller,
      { user: args.user, ask: delegationAskOf(args), bindingMessage: args.binding_message ?? null },
      env.requestId,
    );
    if (!asked.ok) return turn.refuse(worded(asked));
    const { delegation, created } = asked.value;
    if (created) {
      deps.log.info('delegation.requested', { clientId: caller.client.id, delegationId: delegation.id, via: 'a2a' });
    }
    const approvalUrl = deps.agentOps.approvalUrl;
    turn.reply(`Ask the user to review and approve the request at ${approvalUrl}.`, {
      delegation_id: delegation.id,
      status: delegation.status,
      approval_url: approvalUrl,
      message: 'Once approved, use issue_task_token with this delegation_id.',
    });
  }

  private async issueTaskToken(env: SkillEnv, args: z.infer<typeof IssueTaskTokenSchema>) {
    const { agentOps } = this.deps;
    const { turn, caller, rc } = env;
    const existing = args.task_id ?? errandTaskIdOf(rc.task);
    if (existing) {
      const renewed = await agentOps.renewTaskToken(
        caller,
        { taskId: existing, resource: args.resource, scope: args.scope },
        env.requestId,
      );
      if (!renewed.ok) return turn.refuse(worded(renewed));
      return turn.reply(`A new access token for task ${renewed.value.task_id}.`, taskTokenOutput(renewed.value));
    }
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
    // The Errand task records this A2A task's id; cancelling the A2A task ends it (task-bridge.ts).
    const started = await agentOps.startTask(
      caller,
      {
        delegationId: args.delegation_id,
        resource: args.resource,
        scope: args.scope,
        ttl: args.ttl,
        externalIds: { [A2A_EXTERNAL_ID]: rc.taskId },
      },
      env.requestId,
    );
    if (!started.ok) return turn.refuse(worded(started));
    turn.startTask(started.value.task_id, taskTokenOutput(started.value));
  }

  private async delegateToSubagent(env: SkillEnv, args: z.infer<typeof DelegateSchema>) {
    const { turn, caller } = env;
    const taskId = args.task_id ?? errandTaskIdOf(env.rc.task);
    if (!taskId) return turn.refuse(noTaskId());
    const handed = await this.deps.agentOps.delegateToSubagent(
      caller,
      {
        taskId,
        subAgentId: args.sub_agent_id,
        actorToken: args.actor_token,
        resource: args.resource,
        scope: args.scope,
      },
      env.requestId,
    );
    if (!handed.ok) return turn.refuse(worded(handed));
    const { subAgent, ...issued } = handed.value;
    turn.reply(`A token for ${subAgent.name} under a sub-task of ${taskId}; hand it to that agent.`, {
      ...taskTokenOutput(issued),
      sub_agent_id: subAgent.id,
    });
  }

  private async endTask(env: SkillEnv, args: z.infer<typeof EndTaskSchema>) {
    const { turn, caller, rc } = env;
    const taskId = args.task_id ?? errandTaskIdOf(rc.task);
    if (!taskId) return turn.refuse(noTaskId());
    const ended = await this.deps.agentOps.endTask(caller, { taskId, state: args.state }, env.requestId);
    if (!ended.ok) return turn.refuse(worded(ended));
    const task = ended.value;
    const out = { task_id: task.id, state: task.state, ended_at: task.endedAt, end_reason: task.endReason };
    const text = `Task ${task.id} ended (${task.state}); its tokens and those of its sub-tasks are revoked.`;
    if (rc.task && errandTaskIdOf(rc.task) === task.id) return turn.endCurrent(args.state, text, out);
    turn.reply(text, out);
  }
}

function noTaskId(): Refusal {
  return {
    error: 'no_task',
    error_description: 'task_id is required',
    missing: { task: 'a task_id from issue_task_token' },
    how: 'start a task with issue_task_token under an active delegation',
  };
}

/** Skill arguments that do not match the skill's schema. */
class ArgumentError extends Error {}

/** Skill arguments through their schema; the first issue becomes an `invalid_request` refusal. */
function parseArgs<S extends z.ZodType>(schema: S, args: unknown): z.output<S> {
  const result = schema.safeParse(args);
  if (result.success) return result.data;
  const [issue] = result.error.issues;
  const field = issue?.path.map(String).join('.') ?? '';
  throw new ArgumentError(field ? `arguments.${field}: ${issue?.message}` : String(issue?.message));
}
