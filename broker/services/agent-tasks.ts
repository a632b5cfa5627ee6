import type { ClientStore } from '../../db/stores/client-store.js';
import type { TaskStore } from '../../db/stores/task-store.js';
import type { Client } from '../core/client.js';
import type { ExchangeResponse, ExchangeService } from './exchange-token.js';

/**
 * A new token for a task the agent holds (an expired one replaced, or another resource of the same
 * delegation), for an already-authenticated agent; null when the agent holds no such task.
 */
export async function renewTaskToken(
  deps: { tasks: TaskStore; exchange: ExchangeService },
  input: { agent: Client; taskId: string; audience: string | null; scope: string[] | null; requestId: string },
): Promise<{ taskId: string; issued: ExchangeResponse } | null> {
  const task = await deps.tasks.get(input.taskId);
  if (!task || task.agentId !== input.agent.id) return null;
  const issued = await deps.exchange.exchangeOnBehalf({
    client: input.agent,
    actor: null,
    subject: { delegationId: task.delegationId },
    audience: input.audience,
    scope: input.scope,
    tools: null,
    task: { taskId: task.id, ttl: null, externalIds: {} },
    requestId: input.requestId,
  });
  return { taskId: task.id, issued };
}

/**
 * Hands part of a task to a sub-agent for an already-authenticated agent (Errand's MCP tools and
 * A2A skills): the task must be one the agent holds and the sub-agent must be registered; the rest
 * is the token exchange's own rules. Each door words the refusals its own way.
 */
export async function delegateToSubagent(
  deps: { tasks: TaskStore; clients: ClientStore; exchange: ExchangeService },
  input: {
    agent: Client;
    taskId: string;
    subAgentId: string;
    audience: string | null;
    scope: string[] | null;
    requestId: string;
  },
): Promise<
  { ok: true; issued: ExchangeResponse; subAgent: Client } | { ok: false; reason: 'no_task' | 'unknown_sub_agent' }
> {
  const task = await deps.tasks.get(input.taskId);
  if (!task || task.agentId !== input.agent.id) return { ok: false, reason: 'no_task' };
  const subAgent = await deps.clients.get(input.subAgentId);
  if (!subAgent) return { ok: false, reason: 'unknown_sub_agent' };
  const issued = await deps.exchange.exchangeOnBehalf({
    client: input.agent,
    actor: subAgent,
    subject: { taskId: task.id },
    audience: input.audience,
    scope: input.scope,
    tools: null,
    task: null,
    requestId: input.requestId,
  });
  return { ok: true, issued, subAgent };
}
