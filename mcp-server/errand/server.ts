import { createMcpHandler, type McpHttpHandler, type McpRequestContext, McpServer } from '@modelcontextprotocol/server';
import { callerOf } from './auth.js';
import type { LegacyCapabilities } from './capabilities.js';
import { openRequestState, stateBinding } from './request-state.js';
import type { ErrandMcpDeps, ToolEnv } from './tool-env.js';
import { registerDelegateToSubagent } from './tools/delegate-to-subagent.js';
import { registerEndTask } from './tools/end-task.js';
import { registerGetTaskToken } from './tools/get-task-token.js';
import { registerListDelegations } from './tools/list-delegations.js';
import { registerListTasks } from './tools/list-tasks.js';
import { registerRequestDelegation } from './tools/request-delegation.js';
import { registerStartTask } from './tools/start-task.js';
import { registerWhoami } from './tools/whoami.js';

export const SERVER_INFO = { name: 'errand', title: 'Errand', version: '0.1.0' } as const;

const INSTRUCTIONS =
  'Errand gives you short-lived, narrowly scoped tokens to act for people. Ask a user for a delegation with ' +
  'request_delegation, start a task under it with start_task (a token for one resource), hand work to another ' +
  'agent with delegate_to_subagent and end the task with end_task when done.';

/**
 * One McpServer for one HTTP request (both eras), built for the verified caller. Nothing is kept on
 * the server between requests: state that must survive a round trip is sealed into `requestState`.
 */
export function buildErrandMcpServer(
  deps: ErrandMcpDeps,
  legacyCapabilities: LegacyCapabilities,
  ctx: McpRequestContext,
): McpServer {
  const verified = callerOf(ctx.authInfo);
  // The route authenticates every request before the SDK sees it; no caller is a wiring bug.
  if (!verified) throw new Error('the Errand MCP server was reached without a verified caller');
  const { caller, requestId } = verified;
  const binding = stateBinding(caller.client.id, caller.subject);
  const server = new McpServer(SERVER_INFO, {
    instructions: INSTRUCTIONS,
    // MRTR §Server Requirements 4: a tampered, foreign or expired state is refused before any tool runs.
    requestState: { verify: (state) => openRequestState(deps.box, binding, state, deps.clock.now()) },
  });
  const env: ToolEnv = {
    deps,
    caller,
    era: ctx.era,
    requestId,
    legacyUrlElicitation: ctx.era === 'legacy' && legacyCapabilities.urlElicitation(caller.jti, deps.clock.now()),
    approvalUrl: deps.agentOps.approvalUrl,
  };
  registerWhoami(server, env);
  registerRequestDelegation(server, env);
  registerListDelegations(server, env);
  registerStartTask(server, env);
  registerGetTaskToken(server, env);
  registerDelegateToSubagent(server, env);
  registerEndTask(server, env);
  registerListTasks(server, env);
  return server;
}

/** The SDK's dual-era handler: 2026-07-28 stateless, and 2025-era requests through the stateless fallback. */
export function createErrandMcpHandler(deps: ErrandMcpDeps, legacyCapabilities: LegacyCapabilities): McpHttpHandler {
  return createMcpHandler((ctx) => buildErrandMcpServer(deps, legacyCapabilities, ctx), {
    legacy: 'stateless',
    onerror: (err) => deps.log.debug('mcp.request_rejected', { reason: err.message }),
  });
}
