import type { Db } from '../db/open.js';
import type { A2aTaskStore } from '../db/stores/a2a-task-store.js';
import type { AuditStore } from '../db/stores/audit-store.js';
import type { ClientStore } from '../db/stores/client-store.js';
import type { DelegationStore } from '../db/stores/delegation-store.js';
import type { GrantStore } from '../db/stores/grant-store.js';
import type { InitialAccessTokenStore } from '../db/stores/initial-access-token-store.js';
import type { LifecycleStore } from '../db/stores/lifecycle-store.js';
import type { PolicyStore } from '../db/stores/policy-store.js';
import type { TaskStore } from '../db/stores/task-store.js';
import type { TrustedIssuerStore } from '../db/stores/trusted-issuer-store.js';
import type { UserStore } from '../db/stores/user-store.js';
import type { Config } from './config.js';
import type { Metrics } from './core/metrics.js';
import type { Clock } from './core/ports.js';
import type { GrantRegistry } from './grants/index.js';
import type { ClientAuthenticator } from './identity/client-auth.js';
import type { ClientDirectory } from './identity/client-directory.js';
import type { ClientKeys } from './identity/client-keys.js';
import type { DpopProofs } from './identity/dpop.js';
import type { Logger } from './log.js';
import type { ClientAdmission } from './services/admission.js';
import type { AgentOps } from './services/agent-ops.js';
import type { DelegationLimits, DelegationService } from './services/delegations.js';
import type { ExchangeService } from './services/exchange-token.js';
import type { PolicyEngine } from './services/policy/policy-engine.js';
import type { ResourceAccess } from './services/resource-access.js';
import type { RevocationFeed } from './services/revocation-feed.js';
import type { StatusLists } from './services/status-lists.js';
import type { RevocationEvent, TaskService } from './services/tasks.js';
import type { TokenService } from './services/token-service.js';
import type { UserLookup } from './services/user-lookup.js';
import type { PrometheusMetrics } from './telemetry/prometheus.js';
import type { CryptoBox } from './tokens/crypto-box.js';
import type { KeyRing } from './tokens/key-ring.js';

/**
 * Everything the doors (token endpoint, web UI, MCP, A2A) may use: the services that decide and the
 * stores they read. Each door takes the narrow `Pick` it needs; none imports another door or the
 * composition root, which alone builds this (`broker.ts`).
 */
export interface Engine {
  /** The organisation's policies, asked after the delegation rules at every decision (README "Organisation policies"). */
  policy: PolicyEngine;
  /** Saved policy versions and people's groups. */
  policyStore: PolicyStore;
  config: Config;
  clock: Clock;
  log: Logger;
  db: Db;
  keys: KeyRing;
  clients: ClientStore;
  users: UserStore;
  grants: GrantStore;
  audit: AuditStore;
  directory: ClientDirectory;
  auth: ClientAuthenticator;
  grantRegistry: GrantRegistry;
  tokens: TokenService;
  delegations: DelegationStore;
  tasks: TaskStore;
  /** The A2A door's tasks (the protocol's view of Errand tasks), shared by every process. */
  a2aTasks: A2aTaskStore;
  delegationService: DelegationService;
  taskService: TaskService;
  statusLists: StatusLists;
  exchange: ExchangeService;
  /** What agents do through the MCP tools and A2A skills: one service with every rule. */
  agentOps: AgentOps;
  /** The resource-server checks of Errand's own protected endpoints (`/mcp`, `/a2a`). */
  access: ResourceAccess;
  /** Looks up the person an agent names, with a per-client allowance of unknown names. */
  userLookup: UserLookup;
  /** Seals short-lived browser state (the upstream sign-in cookie) with the master key. */
  box: CryptoBox;
  /** Every revocation committed on the database (by any process), handed to this process's push subscribers once. */
  revocationFeed: RevocationFeed;
  /**
   * Subscribes to token revocations caused by ending tasks, on this process or another on the same
   * database (after commit, read from the revocation log); returns the unsubscribe.
   */
  onRevoked(listener: (events: RevocationEvent[]) => void): () => void;
  /** Trusted workload issuers (workload identity federation). */
  trustedIssuers: TrustedIssuerStore;
  /** DPoP proofs at the token endpoint (RFC 9449). */
  dpop: DpopProofs;
  /** Initial access tokens for agents that register themselves (RFC 7591 §3). */
  initialAccessTokens: InitialAccessTokenStore;
  /** Agent lifecycle rows and certification campaigns (README "Agent lifecycle: owners, certification and right-sizing"). */
  lifecycle: LifecycleStore;
  /** Outside key sets (client `jwks_uri`), fetched under the SSRF rules and cached. */
  clientKeys: ClientKeys;
  /** The counters services move (a no-op when metrics are off). */
  metrics: Metrics;
  /** Whether a client that registers itself starts admitted (README "Quarantine of new registrations and findings"). */
  admission: ClientAdmission;
  /** The Prometheus registry behind `metrics` and `/metrics`; null when metrics are off (README "Metrics and traces"). */
  prometheus: PrometheusMetrics | null;
}

/** Delegation limits from the configuration. */
export function delegationLimits(config: Config): DelegationLimits {
  return {
    defaultTtl: config.delegation.defaultTtl,
    maxTtl: config.delegation.maxTtl,
    maxDepth: config.delegation.maxDepth,
    tokenTtl: config.tokens.accessTokenTtl,
    cibaRequestTtl: config.delegation.cibaRequestTtl,
    cibaInterval: config.delegation.cibaInterval,
  };
}
