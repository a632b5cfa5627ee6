import { sql } from 'drizzle-orm';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { secureHeaders } from 'hono/secure-headers';
import { peerRoutes } from '../../a2a/peer-routes.js';
import { a2aRoutes } from '../../a2a/routes.js';
import { oidcRoutes } from '../../admin-ui/oidc-routes.js';
import { pageRoutes } from '../../admin-ui/pages-routes.js';
import { uiRoutes } from '../../admin-ui/routes.js';
import { loadSession, type SessionOptions } from '../../admin-ui/session.js';
import type { Db } from '../../db/open.js';
import type { AuditStore } from '../../db/stores/audit-store.js';
import type { ClientStore } from '../../db/stores/client-store.js';
import type { DelegationStore } from '../../db/stores/delegation-store.js';
import type { GrantStore } from '../../db/stores/grant-store.js';
import type { TaskStore } from '../../db/stores/task-store.js';
import type { TrustedIssuerStore } from '../../db/stores/trusted-issuer-store.js';
import type { UserStore } from '../../db/stores/user-store.js';
import { errandMcpRoutes } from '../../mcp-server/errand/routes.js';
import type { Config } from '../config.js';
import { OAuthError } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import { PATHS } from '../core/protocol.js';
import type { GrantRegistry } from '../grants/index.js';
import type { ClientAuthenticator } from '../identity/client-auth.js';
import type { ClientDirectory } from '../identity/client-directory.js';
import type { DpopProofs } from '../identity/dpop.js';
import type { Logger } from '../log.js';
import type { DelegationService } from '../services/delegations.js';
import type { ExchangeService } from '../services/exchange-token.js';
import type { StatusLists } from '../services/status-lists.js';
import type { RevocationEvent, TaskService } from '../services/tasks.js';
import type { TokenService } from '../services/token-service.js';
import type { CryptoBox } from '../tokens/crypto-box.js';
import type { KeyRing } from '../tokens/key-ring.js';
import { newId } from '../tokens/random.js';
import { createClientAddress } from './client-address.js';
import { notFound, onError } from './on-error.js';
import { RateLimiter } from './rate-limit.js';
import { adminApiRoutes } from './routes/admin-api.js';
import { authorizeRoutes } from './routes/authorize.js';
import { backchannelRoutes } from './routes/backchannel.js';
import { healthRoutes } from './routes/health.js';
import { metadataRoutes } from './routes/metadata.js';
import { registerRoutes } from './routes/register.js';
import { revocationEventRoutes } from './routes/revocation-events.js';
import { statusListRoutes } from './routes/status-list.js';
import { taskRoutes } from './routes/tasks.js';
import { tokenRoutes } from './routes/token.js';
import { tokenManagementRoutes } from './routes/token-management.js';
import { trustedIssuerRoutes } from './routes/trusted-issuers.js';
import { userApiRoutes } from './routes/user-api.js';
import type { AppEnv } from './types.js';

export interface AppDeps {
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
  delegationService: DelegationService;
  taskService: TaskService;
  statusLists: StatusLists;
  exchange: ExchangeService;
  /** Seals short-lived browser state (the upstream sign-in cookie) with the master key. */
  box: CryptoBox;
  /** Subscribes to token revocations caused by ending tasks (after commit); returns the unsubscribe. */
  onRevoked(listener: (events: RevocationEvent[]) => void): () => void;
  /** Trusted workload issuers (workload identity federation). */
  trustedIssuers: TrustedIssuerStore;
  /** DPoP proofs at the token endpoint (RFC 9449). */
  dpop: DpopProofs;
}

/** Delegation limits from the configuration. */
export function delegationLimits(config: Config) {
  return {
    defaultTtl: config.delegation.defaultTtl,
    maxTtl: config.delegation.maxTtl,
    maxDepth: config.delegation.maxDepth,
    tokenTtl: config.tokens.accessTokenTtl,
    cibaRequestTtl: config.delegation.cibaRequestTtl,
    cibaInterval: config.delegation.cibaInterval,
  };
}

/** Builds the HTTP application; opens nothing and starts nothing by itself. */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const { config } = deps;
  const app = new Hono<AppEnv>();
  const secure = config.issuer.startsWith('https://');
  const clientAddress = createClientAddress(config.http.trustProxy);

  app.use(async function requestContext(c, next) {
    const requestId = newId('req').slice(4);
    c.set('requestId', requestId);
    c.set('log', deps.log.child({ requestId }));
    await next();
    // On the response's own headers: c.header() after the response exists would rebuild it.
    try {
      c.res.headers.set('X-Request-Id', requestId);
    } catch {
      c.header('X-Request-Id', requestId);
    }
  });
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
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
      },
      xFrameOptions: 'DENY',
      strictTransportSecurity: secure ? 'max-age=31536000; includeSubDomains' : false,
      referrerPolicy: 'no-referrer',
    }),
  );
  // Browser-based MCP clients read discovery documents cross-origin and send MCP-Protocol-Version.
  app.use(
    '/.well-known/*',
    cors({ origin: '*', allowMethods: ['GET', 'OPTIONS'], allowHeaders: ['MCP-Protocol-Version', 'Content-Type'] }),
  );
  app.use(PATHS.jwks, cors({ origin: '*', allowMethods: ['GET', 'OPTIONS'] }));

  const session: SessionOptions = { users: deps.users, clock: deps.clock, ttl: config.sessions.ttl, secure };
  app.use(loadSession(session));

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
      ready: async () => {
        await deps.db.q.values(sql`SELECT 1`);
        return deps.keys.signingKey() !== undefined;
      },
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
      delegationService: deps.delegationService,
      limits: delegationLimits(config),
      issuer: config.issuer,
    }),
  );
  app.route(
    '/',
    backchannelRoutes({
      auth: deps.auth,
      users: deps.users,
      clients: deps.clients,
      delegations: deps.delegationService,
      limits: delegationLimits(config),
    }),
  );
  app.route('/', statusListRoutes({ lists: deps.statusLists, ttl: config.statusList.ttl }));
  app.route('/', taskRoutes({ auth: deps.auth, tasks: deps.taskService }));
  app.route(
    '/',
    revocationEventRoutes({
      auth: deps.auth,
      issuer: config.issuer,
      onRevoked: (listener) => deps.onRevoked(listener),
    }),
  );
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
      clock: deps.clock,
      keys: deps.keys,
      rotateDelay: config.keys.jwksMaxAge,
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
      timeoutMs: config.fetch.timeoutMs,
    }),
  );
  // Errand as an A2A agent: its signed Agent Card, <issuer>/a2a and its protected resource metadata.
  app.route('/', a2aRoutes(deps));
  // Errand's own MCP endpoint (<issuer>/mcp) and its protected resource metadata.
  app.route('/', errandMcpRoutes(deps));
  app.route('/', pageRoutes(deps));

  app.notFound(notFound);
  app.onError(onError);
  return app;
}
