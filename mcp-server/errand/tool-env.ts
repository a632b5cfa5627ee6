import type { AppDeps } from '../../broker/http/app.js';
import type { Caller } from './auth.js';

/** What the tools use from the broker: services and the stores they read. */
export type ErrandMcpDeps = Pick<
  AppDeps,
  | 'config'
  | 'clock'
  | 'log'
  | 'db'
  | 'box'
  | 'clients'
  | 'users'
  | 'delegations'
  | 'tasks'
  | 'delegationService'
  | 'taskService'
  | 'exchange'
>;

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
