/**
 * Errand agent SDK: what agent authors import. It speaks only Errand's wire (RFC 8414, RFC 8693,
 * RFC 9449, OpenID CIBA, RFC 7523) and `@errand/protocol`, so it runs in the agent's own process.
 *
 * The agent holds an ephemeral DPoP key pair in memory (new per process, or per task), proves who
 * it is with a workload token from its platform (no secret at Errand) or with its own rotating key,
 * asks users for delegations, and works through DPoP-bound, per-task tokens. See `example.ts` and
 * the README beside this package.
 */

export { actorAudience } from '@errand/protocol';
export { type Delegation, type DelegationAsk, ErrandAgent, type ErrandAgentOptions } from './agent.js';
export {
  type AgentCredential,
  AgentKeys,
  type ClientAuthParams,
  privateKeyJwt,
  workloadIdentity,
} from './credentials.js';
export { DpopKey } from './dpop-key.js';
export type { AgentTask, Handoff } from './task.js';
export { ErrandError } from './wire.js';
