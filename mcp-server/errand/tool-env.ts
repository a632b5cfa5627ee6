import type { Engine } from '../../broker/engine.js';
import type { Caller } from '../../broker/services/resource-access.js';

/** What the tools use from the engine: the agent operations, and what sealing request state needs. */
export type ErrandMcpDeps = Pick<Engine, 'config' | 'clock' | 'log' | 'box' | 'agentOps'>;

/** One request's view for the tools (a new server, and so a new env, serves each request). */
export interface ToolEnv {
  deps: ErrandMcpDeps;
  caller: Caller;
  era: 'legacy' | 'modern';
  requestId: string;
  /** Legacy era only: whether the client declared URL elicitation at `initialize`. */
  legacyUrlElicitation: boolean;
  /** Where a user approves pending requests; carries no token, user id or other PII. */
  approvalUrl: string;
}
