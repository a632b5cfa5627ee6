import { PATHS } from '@errand/protocol';
import { trace } from '@opentelemetry/api';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { secureHeaders } from 'hono/secure-headers';
import { a2aRoutes } from '../a2a/routes.js';
import { authorizeRoutes } from '../admin-ui/authorize-routes.js';
import type { SignInEvent } from '../admin-ui/check-credentials.js';
import { oidcRoutes } from '../admin-ui/oidc-routes.js';
import { pageRoutes } from '../admin-ui/pages-routes.js';
import { uiRoutes } from '../admin-ui/routes.js';
import { errandMcpRoutes } from '../mcp-server/errand/routes.js';
import { OAuthError } from './core/errors.js';
import { delegationLimits, type Engine } from './engine.js';
import { createClientAddress } from './http/client-address.js';
import { pageCsp } from './http/csp.js';
import { adminTokenAuth } from './http/middleware/admin-token.js';
import { bodyDeadline } from './http/middleware/body-deadline.js';
import { observeRequests, requestRoute } from './http/middleware/observe.js';
import { notFound, onError } from './http/on-error.js';
import { adminApiRoutes } from './http/routes/admin-api.js';
import { adminDiscoveryRoutes } from './http/routes/admin-discovery.js';
import { authzenRoutes } from './http/routes/authzen.js';
import { backchannelRoutes } from './http/routes/backchannel.js';
import { healthRoutes } from './http/routes/health.js';
import { initialAccessTokenRoutes } from './http/routes/initial-access-tokens.js';
import { intakeApiRoutes } from './http/routes/intake-api.js';
import { lifecycleApiRoutes } from './http/routes/lifecycle-api.js';
import { metadataRoutes } from './http/routes/metadata.js';
import { metricsRoutes } from './http/routes/metrics.js';
import { peerRoutes } from './http/routes/peers.js';
import { peopleApiRoutes } from './http/routes/people-api.js';
import { policyApiRoutes } from './http/routes/policy-api.js';
import { registerRoutes } from './http/routes/register.js';
import { revocationEventRoutes } from './http/routes/revocation-events.js';
import { statusListRoutes } from './http/routes/status-list.js';
import { taskRoutes } from './http/routes/tasks.js';
import { tokenRoutes } from './http/routes/token.js';
import { tokenManagementRoutes } from './http/routes/token-management.js';
import { trustedIssuerRoutes } from './http/routes/trusted-issuers.js';
import { userApiRoutes } from './http/routes/user-api.js';
import { userinfoRoutes } from './http/routes/userinfo.js';
import { loadSession, type SessionOptions } from './http/session.js';
import { createStreamLimit } from './http/stream-limit.js';
import type { AppEnv } from './http/types.js';
import { AuthzenService } from './services/policy/authzen.js';
import { RateLimiter } from './services/rate-limit.js';
import { ReadinessProbe } from './services/readiness.js';
import { newId } from './tokens/random.js';

export interface AppOptions {
  /** Aborted when the process starts to stop: long-lived streams end and new ones are refused. */
  stopping?: AbortSignal;
}

/** Builds the HTTP application; opens nothing and starts nothing by itself. */
export function createApp(deps: Engine, opts: AppOptions = {}): Hono<AppEnv> {
  const { config } = deps;
  const app = new Hono<AppEnv>();
  const secure = config.issuer.startsWith('https://');
  const clientAddress = createClientAddress(config.http.trustProxy);
  const exactClientAddress = createClientAddress(config.http.trustProxy, { exact: true });

  /** Sign-in successes and failures go to the audit log with the source address (README "Logs"). */
  const recordSignIn = (e: SignInEvent) =>
    deps.db.write((tx) =>
      deps.audit.append(
        {
          type: e.result === 'allowed' ? 'signin.succeeded' : 'signin.failed',
          result: e.result,
          userId: e.userId,
          reason: e.reason,
          requestId: e.requestId,
          details: { address: e.address, method: e.method },
        },
        deps.clock.now(),
        tx,
      ),
    );

  // Metrics and the server span come first, so that they cover everything the request does.
  if (deps.prometheus || config.tracing) {
    app.use(observeRequests({ metrics: deps.prometheus, tracing: config.tracing !== null }));
  }
  app.use(async function requestContext(c, next) {
    const requestId = newId('req').slice(4);
    const started = performance.now();
    c.set('requestId', requestId);
    c.set('address', exactClientAddress(c));
    // With traces on, every line of the request names its trace, to go from a log line to the trace.
    const span = trace.getActiveSpan();
    const log = deps.log.child(
      span?.isRecording() ? { requestId, traceId: span.spanContext().traceId } : { requestId },
    );
    c.set('log', log);
    await next();
    if (config.accessLog) {
      const user = c.get('user');
      const clientId = c.get('clientId');
      log[c.get('routine') ? 'debug' : 'info']('http.request', {
        method: c.req.method,
        route: requestRoute(c),
        status: c.res.status,
        ms: Math.round((performance.now() - started) * 10) / 10,
        ...(clientId ? { clientId } : {}),
        ...(user ? { userId: user.id } : {}),
      });
    }
    // On the response's own headers: c.header() after the response exists would rebuild it. A route
    // that echoes the caller's own identifier (AuthZEN Transport, Request Identification) keeps it.
    if (!c.res.headers.has('X-Request-Id')) {
      try {
        c.res.headers.set('X-Request-Id', requestId);
      } catch {
        c.header('X-Request-Id', requestId);
      }
    }
  });
  // Before the body limit, which reads a streamed body whole before anything else runs.
  app.use(bodyDeadline(config.http.bodyTimeout));
  const tooLarge = () => {
    throw new OAuthError('invalid_request', `the request body exceeds ${config.http.maxBodyBytes} bytes`, {
      status: 413,
    });
  };
  const streamedLimit = bodyLimit({ maxSize: config.http.maxBodyBytes, onError: tooLarge });
  app.use(async function limitBody(c, next) {
    // A declared length is checked from the header alone; a streamed body is counted as it arrives.
    const length = c.req.header('content-length');
    if (c.req.header('transfer-encoding') === undefined) {
      if (length === undefined) return next();
      if (!/^\d+$/.test(length) || Number(length) > config.http.maxBodyBytes) return tooLarge();
      return next();
    }
    return streamedLimit(c, next);
  });
  app.use(
    secureHeaders({
      xFrameOptions: 'DENY',
      strictTransportSecurity: secure ? 'max-age=31536000; includeSubDomains' : false,
      referrerPolicy: 'no-referrer',
    }),
  );
  app.use(pageCsp());
  // Browser-based MCP clients read discovery documents cross-origin and send MCP-Protocol-Version.
  app.use(
    '/.well-known/*',
    cors({ origin: '*', allowMethods: ['GET', 'OPTIONS'], allowHeaders: ['MCP-Protocol-Version', 'Content-Type'] }),
  );
  app.use(PATHS.jwks, cors({ origin: '*', allowMethods: ['GET', 'OPTIONS'] }));

  const readiness = new ReadinessProbe({
    db: deps.db,
    clock: deps.clock,
    log: deps.log,
    hasSigningKey: () => deps.keys.signingKey() !== undefined,
  });
  const session: SessionOptions = { users: deps.users, clock: deps.clock, ttl: config.sessions.ttl, secure };
  app.use(loadSession(session));
  // Admin service clients' errand:admin tokens, checked before any admin route (README "Admin API").
  app.use(`${PATHS.adminApi}/*`, adminTokenAuth({ access: deps.access, issuer: config.issuer }));

  app.route(
    '/',
    metadataRoutes({
      issuer: config.issuer,
      keys: deps.keys,
      grantTypes: () => deps.grantRegistry.types,
      scopes: () => deps.clients.allScopes(),
      dcrEnabled: config.registration.dcrEnabled,
      cimdEnabled: config.registration.cimdEnabled,
      jwksMaxAge: config.keys.jwksMaxAge,
    }),
  );
  app.route(
    '/',
    healthRoutes({
      ready: () => readiness.check(),
    }),
  );
  app.route(
    '/',
    tokenRoutes({
      grants: deps.grantRegistry,
      auth: deps.auth,
      dpop: deps.dpop,
      touch: (client) => deps.clients.touch(client, deps.clock.now()),
    }),
  );
  app.route('/', tokenManagementRoutes({ tokens: deps.tokens, auth: deps.auth }));
  // OpenID AuthZEN Authorization API 1.0: resource servers ask for policy decisions.
  app.route(
    '/',
    authzenRoutes({
      authzen: new AuthzenService({
        db: deps.db,
        policy: deps.policy,
        clients: deps.clients,
        audit: deps.audit,
        clock: deps.clock,
      }),
      auth: deps.auth,
      issuer: config.issuer,
    }),
  );
  app.route('/', userinfoRoutes({ issuer: config.issuer, access: deps.access }));
  if (config.registration.dcrEnabled) {
    app.route(
      '/',
      registerRoutes({
        db: deps.db,
        clients: deps.clients,
        audit: deps.audit,
        clock: deps.clock,
        maxClients: config.registration.dcrMaxClients,
        unusedTtl: config.registration.dcrUnusedTtl,
        initialAccessTokens: deps.initialAccessTokens,
        keys: deps.clientKeys,
        admission: deps.admission,
        limiter: new RateLimiter({ limit: config.registration.dcrRateLimitPerMinute, windowMs: 60_000 }),
        clientAddress,
      }),
    );
  }
  app.route(
    '/',
    authorizeRoutes({
      db: deps.db,
      directory: deps.directory,
      clients: deps.clients,
      grants: deps.grants,
      audit: deps.audit,
      clock: deps.clock,
      requestTtl: config.tokens.authRequestTtl,
      codeTtl: config.tokens.authCodeTtl,
      defaultResource: config.tokens.defaultResource,
      delegationService: deps.delegationService,
      limits: delegationLimits(config),
      issuer: config.issuer,
      users: deps.users,
    }),
  );
  app.route(
    '/',
    backchannelRoutes({
      auth: deps.auth,
      users: deps.userLookup,
      clients: deps.clients,
      delegations: deps.delegationService,
      limits: delegationLimits(config),
    }),
  );
  app.route('/', statusListRoutes({ lists: deps.statusLists, ttl: config.statusList.ttl }));
  app.route('/', taskRoutes({ auth: deps.auth, tasks: deps.taskService }));
  // One budget of long-lived streams per client, shared by the revocation push channel and A2A.
  const streams = createStreamLimit(config.streams);
  app.route(
    '/',
    revocationEventRoutes({
      auth: deps.auth,
      issuer: config.issuer,
      onRevoked: (listener) => deps.onRevoked(listener),
      streams,
      stopping: opts.stopping ?? new AbortController().signal,
      metrics: deps.metrics,
    }),
  );
  app.route('/', adminDiscoveryRoutes({ issuer: config.issuer }));
  // GET /metrics on the main listener only with a token (README "Metrics and traces").
  if (deps.prometheus && config.metrics.token) {
    app.route('/', metricsRoutes({ metrics: deps.prometheus, token: config.metrics.token }));
  }
  app.route(
    '/',
    userApiRoutes({
      delegations: deps.delegations,
      delegationService: deps.delegationService,
      tasks: deps.tasks,
      taskService: deps.taskService,
      audit: deps.audit,
    }),
  );
  app.route(
    '/',
    adminApiRoutes({
      db: deps.db,
      clients: deps.clients,
      users: deps.users,
      audit: deps.audit,
      grants: deps.grants,
      taskService: deps.taskService,
      delegationService: deps.delegationService,
      delegations: deps.delegations,
      tasks: deps.tasks,
      trustedIssuers: deps.trustedIssuers,
      lifecycle: deps.lifecycle,
      accessTokenTtl: config.tokens.accessTokenTtl,
      issuer: config.issuer,
      clock: deps.clock,
      keys: deps.keys,
      rotateDelay: config.keys.minPublishAhead,
    }),
  );
  app.route(
    '/',
    peopleApiRoutes({
      db: deps.db,
      users: deps.users,
      delegations: deps.delegations,
      grants: deps.grants,
      taskService: deps.taskService,
      audit: deps.audit,
      clock: deps.clock,
      guesses: { maxFailures: config.sessions.maxFailures, lockout: config.sessions.lockout },
    }),
  );
  // Organisation policies, the effective-access explorer and people's groups (README "Organisation policies").
  app.route(
    '/',
    policyApiRoutes({
      db: deps.db,
      policy: deps.policy,
      policyStore: deps.policyStore,
      audit: deps.audit,
      clock: deps.clock,
      clients: deps.clients,
      delegations: deps.delegations,
      users: deps.users,
    }),
  );
  // Admitting quarantined clients, and the findings list (README "Quarantine of new registrations and findings").
  app.route('/', intakeApiRoutes({ db: deps.db, clients: deps.clients, audit: deps.audit, clock: deps.clock }));
  app.route(
    '/',
    initialAccessTokenRoutes({
      db: deps.db,
      initialAccessTokens: deps.initialAccessTokens,
      audit: deps.audit,
      clock: deps.clock,
    }),
  );
  // Trusted workload issuers: the admin API for workload identity federation.
  app.route(
    '/',
    trustedIssuerRoutes({
      db: deps.db,
      trustedIssuers: deps.trustedIssuers,
      clients: deps.clients,
      audit: deps.audit,
      clock: deps.clock,
      issuer: config.issuer,
    }),
  );
  // Agent lifecycle: certification campaigns, usage and right-sizing (README "Agent lifecycle").
  app.route('/', lifecycleApiRoutes(deps));
  // A2A peers: the admin API for registering agents from their Agent Card (a2a/peer-routes.ts).
  app.route('/', peerRoutes(deps));
  app.route(
    '/',
    uiRoutes({
      users: deps.users,
      clock: deps.clock,
      session,
      signinLimiter: new RateLimiter({ limit: 30, windowMs: 60_000 }),
      clientAddress,
      signin: config.sessions,
      issuer: config.issuer,
      log: deps.log,
      recordSignIn,
      federationName: config.oidc?.displayName ?? null,
    }),
  );
  app.route(
    '/',
    oidcRoutes({
      oidc: config.oidc,
      issuer: config.issuer,
      users: deps.users,
      clock: deps.clock,
      log: deps.log,
      box: deps.box,
      session,
      recordSignIn,
      timeoutMs: config.fetch.timeoutMs,
      groups: { db: deps.db, policyStore: deps.policyStore, audit: deps.audit, clock: deps.clock },
    }),
  );
  // Errand as an A2A agent: its signed Agent Card, <issuer>/a2a and its protected resource metadata.
  app.route('/', a2aRoutes(deps, { streams }));
  // Errand's own MCP endpoint (<issuer>/mcp) and its protected resource metadata.
  app.route('/', errandMcpRoutes(deps));
  app.route('/', pageRoutes(deps));

  app.notFound(notFound);
  app.onError(onError);
  return app;
}

/**
 * The management listener's application (ERRAND_METRICS_PORT): `GET /metrics` alone, with the
 * token when one is set. Null when metrics are off or no management listener is configured.
 */
export function createManagementApp(deps: Pick<Engine, 'config' | 'log' | 'prometheus'>): Hono<AppEnv> | null {
  const { config, prometheus } = deps;
  if (!prometheus || !config.metrics.listener) return null;
  const app = new Hono<AppEnv>();
  app.use(async function requestContext(c, next) {
    const requestId = newId('req').slice(4);
    c.set('requestId', requestId);
    c.set('log', deps.log.child({ requestId }));
    await next();
  });
  app.route('/', metricsRoutes({ metrics: prometheus, token: config.metrics.token }));
  app.notFound(notFound);
  app.onError(onError);
  return app;
}
