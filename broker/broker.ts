import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { PATHS } from '@errand/protocol';
import { AGENT_CARD_MAX_AGE } from '../a2a/card.js';
import { A2aTaskStore } from '../db/stores/a2a-task-store.js';
import { AuditStore } from '../db/stores/audit-store.js';
import { ClientStore } from '../db/stores/client-store.js';
import { DelegationStore } from '../db/stores/delegation-store.js';
import { GrantStore } from '../db/stores/grant-store.js';
import { InitialAccessTokenStore } from '../db/stores/initial-access-token-store.js';
import { LifecycleStore } from '../db/stores/lifecycle-store.js';
import { type LeasedJob, MaintenanceLeaseStore } from '../db/stores/maintenance-lease-store.js';
import { PolicyStore } from '../db/stores/policy-store.js';
import { REVOCATION_CHANNEL, RevocationLogStore } from '../db/stores/revocation-log-store.js';
import { TaskStore } from '../db/stores/task-store.js';
import { TrustedIssuerStore } from '../db/stores/trusted-issuer-store.js';
import { UserStore } from '../db/stores/user-store.js';
import { createApp, createManagementApp } from './app.js';
import { type Config, maintenanceIntervalMs } from './config.js';
import { ClockWatch } from './core/clock-watch.js';
import { ConcurrencyLimit } from './core/concurrency-limit.js';
import { OAuthError } from './core/errors.js';
import { noMetrics } from './core/metrics.js';
import { type Clock, type MonotonicClock, systemClock, systemMonotonic } from './core/ports.js';
import { delegationLimits, type Engine } from './engine.js';
import { authorizationCodeGrant } from './grants/authorization-code.js';
import { cibaGrant } from './grants/ciba.js';
import { clientCredentialsGrant } from './grants/client-credentials.js';
import { GrantRegistry } from './grants/index.js';
import { refreshTokenGrant } from './grants/refresh-token.js';
import { tokenExchangeGrant } from './grants/token-exchange.js';
import { ClientAuthenticator } from './identity/client-auth.js';
import { ClientDirectory } from './identity/client-directory.js';
import { ClientKeys } from './identity/client-keys.js';
import { DpopProofs } from './identity/dpop.js';
import { WorkloadVerifier } from './identity/workload.js';
import type { Logger } from './log.js';
import { type ClientAdmission, policyAdmission } from './services/admission.js';
import { lifecycleDepsOf } from './services/agent-lifecycle.js';
import { maintainLifecycle } from './services/agent-lifecycle-job.js';
import { AgentOps } from './services/agent-ops.js';
import { bootstrapAdmin } from './services/bootstrap-admin.js';
import { ensureBuiltInResources } from './services/built-in-resources.js';
import { DelegationService } from './services/delegations.js';
import { ExchangeService } from './services/exchange-token.js';
import { openInstallation, StartupError } from './services/open-installation.js';
import { PolicyEngine } from './services/policy/policy-engine.js';
import { RateLimiter } from './services/rate-limit.js';
import { ResourceAccess } from './services/resource-access.js';
import { RetentionService } from './services/retention.js';
import { RevocationFeed } from './services/revocation-feed.js';
import { StatusLists, statusListTokenLifetime } from './services/status-lists.js';
import { type RevocationEvent, TaskService } from './services/tasks.js';
import { TokenService } from './services/token-service.js';
import { UserLookup } from './services/user-lookup.js';
import { PrometheusMetrics } from './telemetry/prometheus.js';
import { TokenMinter } from './tokens/access-token.js';
import { ID_TOKEN_TTL } from './tokens/id-token.js';
import { KeyRing } from './tokens/key-ring.js';
import { hashSecret, newId, newSecret } from './tokens/random.js';

export interface Broker {
  app: ReturnType<typeof createApp>;
  /** The management listener's app (`/metrics` alone), when ERRAND_METRICS_PORT is set; null otherwise. */
  managementApp: ReturnType<typeof createManagementApp>;
  deps: Engine;
  /** Subscribes to token revocations caused by ending tasks (after commit). */
  onRevoked(listener: (events: RevocationEvent[]) => void): () => void;
  /**
   * Periodic upkeep: key rotation, task deadlines, expired registrations, retention, grace responses.
   * Held back while the wall clock runs ahead of the monotonic clock (README "Clock skew and clock jumps").
   */
  maintain(): Promise<void>;
  /** A one-time setup link for the first administrator, or null when one exists. */
  bootstrapLink(): Promise<string | null>;
  /**
   * The first step of a graceful stop: revocation push streams end with a reconnect notice and new
   * ones are refused with 503. (A2A streams last only as long as the request that started them
   * and are drained like any other request.)
   */
  endStreams(): void;
  /** Commits the writes already queued, checkpoints the database and closes it. Never rejects. */
  close(): Promise<void>;
}

export { StartupError };

const BOOTSTRAP_TTL = 24 * 3600;

/**
 * The maintenance jobs that end, delete or rewrite rows, each run by one process per period (the
 * maintenance interval, in seconds). Key rotation is not among them: every process reloads its key
 * ring, and creating a key is agreed through the database by itself.
 */
const LEASED_JOBS = (period: number): LeasedJob[] => [
  { job: 'task_deadlines', period },
  { job: 'retention', period },
  { job: 'grace_responses', period },
  { job: 'agent_lifecycle', period },
];

/** Composition root: config → database → stores → services → app. */
export async function buildBroker(
  config: Config,
  opts: {
    log: Logger;
    clock?: Clock;
    monotonic?: MonotonicClock;
    /** Details every audit event of this process carries (the admin CLI says `via: 'cli'` and the OS user). */
    auditOrigin?: Record<string, unknown>;
    /**
     * Registers Errand's own endpoints as resources (default true). The admin CLI does not: a shell
     * without the broker's ERRAND_ISSUER would register them under another URL.
     */
    builtInResources?: boolean;
    /** Node's process metrics (`process_*`, `nodejs_*`) beside Errand's own; default true. */
    processMetrics?: boolean;
    /** Whether a client that registers itself starts admitted (default: none does; README "Quarantine of new registrations and findings"). */
    admission?: ClientAdmission;
  },
): Promise<Broker> {
  const clock = opts.clock ?? systemClock;
  const monotonic = opts.monotonic ?? systemMonotonic;
  const log = opts.log;
  // Metrics are off unless configured: then nothing is counted, and /metrics is not served.
  const prometheus = config.metrics.enabled
    ? new PrometheusMetrics({
        countActive: async () => {
          const now = clock.now();
          const [live, active] = await Promise.all([tasks.countLive(now), delegations.countActive(now)]);
          return { tasks: live, delegations: active };
        },
        processMetrics: opts.processMetrics ?? true,
      })
    : null;
  const metrics = prometheus?.port ?? noMetrics;
  const { db, box } = await openInstallation(config, log, metrics);
  const clients = new ClientStore(db);
  const users = new UserStore(db);
  const grants = new GrantStore(db);
  const audit = new AuditStore(db, opts.auditOrigin ?? null);
  const delegations = new DelegationStore(db);
  const tasks = new TaskStore(db);
  const a2aTasks = new A2aTaskStore(db);
  // Errand's own MCP and A2A endpoints are built-in resources (idempotent; an admin's edits are kept).
  if (opts.builtInResources !== false) await ensureBuiltInResources(clients, config.issuer, clock.now());
  // Revocations reach this process's push subscribers through the log, whichever process committed them.
  const revocationLog = new RevocationLogStore(db);
  const revocationFeed = new RevocationFeed(revocationLog, log, { pollMs: config.revocationPush.pollMs });
  // On PostgreSQL a commit on any node wakes the tail of every node; polling stays as the fallback.
  const stopListening = db.listen
    ? await db
        .listen(REVOCATION_CHANNEL, () => revocationFeed.wake())
        .catch((err: unknown) => {
          log.warn('revocation_feed.listen_failed', { error: String(err) });
          return null;
        })
    : null;

  const keys = new KeyRing({
    db,
    box,
    clock,
    log,
    audit,
    alg: config.keys.alg,
    policy: {
      rotationPeriod: config.keys.rotationPeriod,
      publishAhead: config.keys.publishAhead,
      // Everything Errand signs without a record on the key: access and task tokens, the CIBA ID
      // tokens, Status List Tokens and the cached Agent Card. Delegation credentials are recorded.
      maxTokenTtl: Math.max(
        config.tokens.accessTokenTtl,
        ID_TOKEN_TTL,
        statusListTokenLifetime(config.statusList.ttl),
        AGENT_CARD_MAX_AGE,
      ),
      skew: config.clientAuth.clockSkew,
    },
  });
  await keys.maintain();
  if (config.bootstrapAdmin) await bootstrapFromEnvironment(config.bootstrapAdmin, { db, users, audit, clock, log });

  const minter = new TokenMinter({ keys, issuer: config.issuer, clock, clockSkew: config.clientAuth.clockSkew });
  const taskService = new TaskService({
    db,
    tasks,
    audit,
    clock,
    log,
    revocationLog,
    // Our own commit: read the log now, so same-process delivery does not wait for the next poll.
    onRevoked: () => revocationFeed.wake(),
  });
  const tokens = new TokenService({
    tasks: taskService,
    db,
    grants,
    audit,
    minter,
    box,
    clock,
    clockSkew: config.clientAuth.clockSkew,
    issuer: config.issuer,
    ttl: {
      accessToken: config.tokens.accessTokenTtl,
      refreshToken: config.tokens.refreshTokenTtl,
      refreshTokenIdle: config.tokens.refreshTokenIdleTtl,
      refreshGrace: config.tokens.refreshGracePeriod,
    },
  });
  // Fetches of URLs that callers choose, capped per host and in total; metadata documents and key
  // sets each have their own budget, so that a flood of one cannot starve the other.
  const fetchLimit = () => new ConcurrencyLimit({ perKey: config.fetch.maxPerHost, total: config.fetch.maxConcurrent });
  // The organisation's policies (README "Organisation policies"), loaded before anything decides.
  // A person's groups and role, as policies read them, are reused for as long as a policy change takes to reach every process.
  const policyStore = new PolicyStore(db, { personTtlMs: config.policy.refreshInterval * 1000 });
  const policy = new PolicyEngine({
    db,
    store: policyStore,
    clients,
    audit,
    clock,
    log,
    refreshInterval: config.policy.refreshInterval,
  });
  await policy.refresh();
  policy.start();
  // Self-registered clients start quarantined unless a policy permits `admit` for them (none by default).
  const admission = opts.admission ?? policyAdmission(policy);
  const directory = new ClientDirectory(
    { store: clients, clock, log, fetchLimit: fetchLimit(), metrics, admission, record: { db, audit } },
    {
      cimdEnabled: config.registration.cimdEnabled,
      cimdCacheTtl: config.registration.cimdCacheTtl,
      cimdMinCacheTtl: config.registration.cimdMinCacheTtl,
      cimdFailureTtl: config.registration.cimdFailureTtl,
      cimdMaxBytes: config.registration.cimdMaxBytes,
      timeoutMs: config.fetch.timeoutMs,
      allowPrivate: config.fetch.allowPrivate,
    },
  );
  // One cache of outside keys: agents' jwks_uri and trusted workload issuers' key sets.
  const clientKeys = new ClientKeys({
    clock,
    cacheTtl: config.clientAuth.jwksCacheTtl,
    timeoutMs: config.fetch.timeoutMs,
    allowPrivate: config.fetch.allowPrivate,
    fetchLimit: fetchLimit(),
    metrics,
  });
  const trustedIssuers = new TrustedIssuerStore(db);
  const workload = new WorkloadVerifier({
    issuers: trustedIssuers,
    keys: clientKeys,
    clock,
    clockSkew: config.clientAuth.clockSkew,
    fetch: {
      timeoutMs: config.fetch.timeoutMs,
      allowPrivate: config.fetch.allowPrivate,
      cacheTtl: config.clientAuth.jwksCacheTtl,
    },
    remember: (scope, jti, exp, now) => clients.rememberAssertion(scope, jti, exp, now),
    log,
    metrics,
  });
  const auth = new ClientAuthenticator(
    {
      directory,
      keys: clientKeys,
      clock,
      issuer: config.issuer,
      assertionMaxLifetime: config.clientAuth.assertionMaxLifetime,
      clockSkew: config.clientAuth.clockSkew,
      rememberAssertion: (clientId, jti, exp, now) => clients.rememberAssertion(clientId, jti, exp, now),
      workload,
      recordAssurance: (id, level, issuerId) => clients.recordAssurance(id, level, issuerId),
    },
    log,
  );
  // RFC 9449 at the token endpoint: proof jtis are remembered in the database, like assertion jtis.
  const dpop = new DpopProofs({
    tokenEndpoint: `${config.issuer}${PATHS.token}`,
    nonceRequired: config.dpop.nonceRequired,
    clock,
    clockSkew: config.clientAuth.clockSkew,
    box,
    remember: (key, until, now) => clients.rememberAssertion('dpop', key, until, now),
  });
  const delegationService = new DelegationService({
    db,
    clients,
    users,
    delegations,
    tasks,
    taskService,
    audit,
    minter,
    clock,
    limits: delegationLimits(config),
    policy,
  });
  const statusLists = new StatusLists({ tasks, minter, issuer: config.issuer, ttl: config.statusList.ttl, clock });
  const exchange = new ExchangeService({
    db,
    clients,
    grants,
    delegations,
    tasks,
    audit,
    minter,
    clock,
    tokenTtl: config.tokens.accessTokenTtl,
    taskMaxTtl: config.delegation.taskMaxTtl,
    ruleDelegationTtl: config.delegation.defaultTtl,
    statusRef: (idx) => statusLists.ref(idx),
    metrics,
    policy,
  });
  const userLookup = new UserLookup({
    users,
    limiter: new RateLimiter({ limit: config.delegation.unknownUserLimit, windowMs: 60_000 }),
  });
  const agentOps = new AgentOps({
    issuer: config.issuer,
    clock,
    limits: delegationLimits(config),
    clients,
    delegations,
    tasks,
    delegationService,
    taskService,
    exchange,
    auth,
    users: userLookup,
  });
  // Errand's own endpoints check tokens as introspection does, and DPoP proofs as the token endpoint.
  const access = new ResourceAccess({
    minter,
    grants,
    clients,
    users,
    clock,
    clockSkew: config.clientAuth.clockSkew,
    replay: { remember: (jti, until, now) => clients.rememberAssertion('dpop', jti, until, now) },
  });
  const grantRegistry = new GrantRegistry(
    [
      authorizationCodeGrant({ db, audit, grants, tokens, delegations, delegationService, users, minter, clock }),
      refreshTokenGrant({ tokens }),
      clientCredentialsGrant({ clients, tokens, defaultResource: config.tokens.defaultResource }),
      tokenExchangeGrant({ exchange, auth }),
      cibaGrant({ delegations: delegationService }),
    ],
    metrics,
  );

  const deps: Engine = {
    policy,
    policyStore,
    config,
    clock,
    log,
    db,
    keys,
    clients,
    users,
    grants,
    audit,
    directory,
    auth,
    grantRegistry,
    tokens,
    delegations,
    tasks,
    a2aTasks,
    delegationService,
    taskService,
    statusLists,
    box,
    exchange,
    agentOps,
    access,
    userLookup,
    trustedIssuers,
    dpop,
    initialAccessTokens: new InitialAccessTokenStore(db),
    lifecycle: new LifecycleStore(db),
    clientKeys,
    metrics,
    prometheus,
    admission,
    revocationFeed,
    onRevoked(listener) {
      return revocationFeed.subscribe(listener);
    },
  };
  const stopping = new AbortController();
  const app = createApp(deps, { stopping: stopping.signal });
  const retention = new RetentionService({ db, clock }, config.retention);
  const leases = new MaintenanceLeaseStore(db);
  const maintenancePeriod = Math.max(1, Math.floor(maintenanceIntervalMs(config.keys.publishAhead) / 1000));
  const holder = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const clockWatch = new ClockWatch(
    { skew: config.clientAuth.clockSkew, hold: config.maintenance.clockJumpHold },
    clock.now(),
    monotonic.nowMs(),
  );

  /** Compares the clocks before a pass; says so loudly when they disagree. Returns whether to hold. */
  function checkClock(): boolean {
    const c = clockWatch.check(clock.now(), monotonic.nowMs());
    const figures = {
      drift: Math.round(c.drift),
      wallElapsed: Math.round(c.wallElapsed),
      monotonicElapsed: Math.round(c.monotonicElapsed),
      skew: config.clientAuth.clockSkew,
    };
    if (c.event === 'jumped') {
      log.error('clock.jumped', {
        ...figures,
        direction: c.drift > 0 ? 'forward' : 'backward',
        held: c.hold,
        holdFor: config.maintenance.clockJumpHold,
      });
    } else if (c.event === 'returned') {
      log.warn('clock.returned', figures);
    } else if (c.event === 'accepted') {
      log.warn('clock.jump_accepted', { ...figures, disagreeingFor: Math.round(c.disagreeingFor) });
    } else if (c.hold) {
      log.warn('maintenance.held', { ...figures, disagreeingFor: Math.round(c.disagreeingFor) });
    }
    return c.hold;
  }

  return {
    app,
    managementApp: createManagementApp(deps),
    deps,
    onRevoked: deps.onRevoked,
    async maintain() {
      if (checkClock()) {
        // The wall clock is ahead of the time that passed: everything below would act early (end live
        // tasks, delete keys and rows, prune replay caches) for every process on this database. Tokens
        // still carry their own exp, so holding back only delays bookkeeping. Keys other processes
        // created are still picked up.
        await keys.reload();
        return;
      }
      // Every process keeps its own key ring; the database already agrees on the keys themselves.
      await keys.maintain();
      // The jobs that end, delete or rewrite rows run once per period across every process sharing
      // the database (README "PostgreSQL and several nodes"), on whichever process claims them first.
      const claimed = await leases.claimDue(LEASED_JOBS(maintenancePeriod), clock.now(), holder);
      if (claimed.size === 0) return;
      log.debug('maintenance.claimed', { jobs: [...claimed], holder });
      if (claimed.has('task_deadlines')) {
        const overdue = await taskService.endOverdue();
        if (overdue > 0) log.info('task.deadline_passed', { count: overdue });
      }
      if (claimed.has('retention')) {
        const pruned = await clients.pruneUnused(clock.now());
        if (pruned > 0) log.info('client.pruned', { count: pruned });
        const retained = await retention.prune();
        const deleted = Object.values(retained).reduce((n, v) => n + v, 0);
        if (deleted > 0) log.info('retention.pruned', { ...retained });
      }
      // Successor responses are kept only for the concurrent-refresh grace window.
      if (claimed.has('grace_responses')) await tokens.clearGraceResponses();
      // Owners that lapsed past their grace, campaigns past their deadline, the scheduled campaign.
      if (claimed.has('agent_lifecycle')) await maintainLifecycle(lifecycleDepsOf(deps), config, log);
    },
    async bootstrapLink() {
      if ((await users.countAdmins()) > 0) return null;
      const token = newSecret();
      const now = clock.now();
      await users.addBootstrapToken(hashSecret(token), now, now + BOOTSTRAP_TTL);
      return `${config.issuer}/setup?token=${token}`;
    },
    endStreams() {
      stopping.abort();
    },
    async close() {
      // The tail reads through the database handle: it stops (and its read in flight ends) first.
      await revocationFeed.stop();
      await policy.stop();
      await stopListening?.();
      return db.close();
    },
  };
}

/**
 * ERRAND_BOOTSTRAP_ADMIN_USERNAME/PASSWORD: the first administrator, created at start when none
 * exists (for containers, where nobody opens a setup link); ignored with a log line otherwise.
 * The password is never logged.
 */
async function bootstrapFromEnvironment(
  account: { username: string; password: string },
  deps: Parameters<typeof bootstrapAdmin>[0] & { log: Logger },
): Promise<void> {
  const skipped = () =>
    deps.log.info('bootstrap_admin.ignored', {
      username: account.username,
      message: 'an administrator exists; ERRAND_BOOTSTRAP_ADMIN_* is used only on an installation without one',
    });
  if ((await deps.users.countAdmins()) > 0) return skipped();
  if (await deps.users.findByUsername(account.username)) {
    throw new StartupError(
      `ERRAND_BOOTSTRAP_ADMIN_USERNAME: the account ${account.username} exists and is not an administrator; choose another username`,
    );
  }
  try {
    const admin = await bootstrapAdmin(deps, account, { source: 'environment', requestId: newId('req').slice(4) });
    deps.log.info('user.bootstrapped', { userId: admin.id, username: admin.username, source: 'environment' });
  } catch (err) {
    // Another process on the same database created the first administrator a moment earlier.
    if (err instanceof OAuthError && err.code === 'conflict') return skipped();
    throw err;
  }
}
