import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { canonicalizeResource } from '@errand/protocol';
import { z } from 'zod';
import { NewPasswordSchema, UsernameSchema } from './services/bootstrap-admin.js';

/**
 * The only reader of process.env. Every ERRAND_* variable is validated here; a bad value stops
 * start-up with a message that names the variable. Units are in the names: `…_TTL`/`…_PERIOD`
 * are seconds, `…_MS` milliseconds, `…_BYTES` bytes.
 */

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const seconds = (min: number, max: number) =>
  z.coerce
    .number({ message: 'must be a whole number of seconds' })
    .int({ message: 'must be a whole number of seconds' })
    .min(min, { message: `must be at least ${min} seconds` })
    .max(max, { message: `must be at most ${max} seconds` });
const count = (min: number, max: number) =>
  z.coerce
    .number({ message: 'must be a whole number' })
    .int({ message: 'must be a whole number' })
    .min(min, { message: `must be at least ${min}` })
    .max(max, { message: `must be at most ${max}` });

const DAY = 86_400;

/**
 * How often each broker process runs maintenance (key rotation, reloading keys other processes
 * created): a quarter of the publish-ahead time, between 1 and 30 seconds.
 */
export function maintenanceIntervalMs(publishAhead: number): number {
  return Math.max(1000, Math.min(30_000, (publishAhead * 1000) / 4));
}

/**
 * The least time a new signing key must be announced before it signs. A verifier that honours the
 * JWKS `Cache-Control: max-age` holds a copy at most `jwksMaxAge` old, so the key must be served by
 * every process for longer than that: other processes pick it up at their next maintenance run, a
 * process whose clock is ahead by up to `clockSkew` starts signing with it that much sooner, and
 * one more second covers whole-second clocks.
 */
export function minPublishAhead(jwksMaxAge: number, clockSkew: number): number {
  const lead = jwksMaxAge + clockSkew + 1;
  let ahead = lead + 1;
  while (ahead - maintenanceIntervalMs(ahead) / 1000 < lead) ahead++;
  return ahead;
}

/** An address range of trusted reverse proxies. */
export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/**
 * Which reverse proxies in front of Errand may be believed about the client address: none, the
 * nearest `hops` of them, or those whose addresses fall in `cidrs`.
 */
export type TrustProxy = { kind: 'none' } | { kind: 'hops'; hops: number } | { kind: 'cidrs'; cidrs: Cidr[] };

const MAX_PROXY_HOPS = 16;

function parseCidr(value: string): Cidr | null {
  const [address = '', prefix, ...rest] = value.split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0 || address.includes('%')) return null;
  const max = version === 4 ? 32 : 128;
  if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) return null;
  const bits = prefix === undefined ? max : Number(prefix);
  if (bits > max) return null;
  return { address, prefix: bits, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * ERRAND_TRUST_PROXY: `false`/`0` (the default), a number of proxy hops, or a comma-separated list of
 * proxy addresses and CIDR ranges. The former `true` trusted whatever the client wrote first, so it is
 * refused with a message saying what to write instead.
 */
const TrustProxySchema = z
  .string()
  .trim()
  .transform((value, ctx): TrustProxy => {
    if (/^(false|no|0)$/i.test(value)) return { kind: 'none' };
    if (/^(true|yes)$/i.test(value)) {
      ctx.addIssue({
        code: 'custom',
        message:
          'true no longer says which proxies to trust: set the number of proxies in front of Errand (e.g. 1) or their addresses (e.g. 10.0.0.0/8)',
      });
      return z.NEVER;
    }
    if (/^\d+$/.test(value)) {
      const hops = Number(value);
      if (hops > MAX_PROXY_HOPS) {
        ctx.addIssue({ code: 'custom', message: `must be at most ${MAX_PROXY_HOPS} proxies` });
        return z.NEVER;
      }
      return { kind: 'hops', hops };
    }
    const cidrs: Cidr[] = [];
    for (const item of value.split(',').map((v) => v.trim())) {
      const cidr = parseCidr(item);
      if (!cidr) {
        ctx.addIssue({
          code: 'custom',
          message: `"${item}" is not an IP address or CIDR range (expected false, a number of proxies, or a list such as 10.0.0.0/8,fd00::/8)`,
        });
        return z.NEVER;
      }
      cidrs.push(cidr);
    }
    return { kind: 'cidrs', cidrs };
  });

export const EnvSchema = z.object({
  ERRAND_CONFIG_FILE: z.string().optional(),
  ERRAND_HOST: z.string().min(1).default('127.0.0.1'),
  ERRAND_PORT: count(0, 65_535).default(8787),
  ERRAND_ISSUER: z
    .url({ message: 'must be an absolute http(s) URL' })
    .refine((v) => /^https?:\/\//.test(v), { message: 'must use http or https' })
    .refine((v) => !v.includes('?') && !v.includes('#'), { message: 'must not contain a query or fragment' })
    .refine((v) => !v.endsWith('/'), { message: 'must not end with a slash' })
    .optional(),
  ERRAND_DATA_DIR: z.string().min(1).default('./data'),
  ERRAND_DB_URL: z
    .string()
    .refine((v) => /^(file:|libsql:|https?:|wss?:|postgres(ql)?:\/\/)/.test(v), {
      message: 'must be a file:, libsql:, http(s):, ws(s): or postgres(ql):// URL',
    })
    .optional(),
  ERRAND_DB_POOL_SIZE: count(1, 500).default(10),
  ERRAND_DB_STATEMENT_TIMEOUT_MS: count(100, 600_000).default(10_000),
  ERRAND_DB_AUTH_TOKEN: z.string().optional(),
  ERRAND_ALLOW_EMPTY_DATABASE: bool.default(false),
  ERRAND_DB_QUICK_CHECK: bool.default(true),
  ERRAND_DB_SYNC_IN_COMMIT: bool.default(false),
  ERRAND_MASTER_KEY: z.string().optional(),
  ERRAND_MASTER_KEY_FILE: z.string().optional(),
  ERRAND_SIGNING_ALG: z.enum(['ES256', 'EdDSA'], { message: 'must be ES256 or EdDSA' }).default('ES256'),
  ERRAND_KEY_ROTATION_PERIOD: seconds(10, 365 * DAY).default(30 * DAY),
  ERRAND_KEY_PUBLISH_AHEAD: seconds(1, 30 * DAY).default(DAY),
  ERRAND_JWKS_MAX_AGE: seconds(0, DAY).default(300),
  ERRAND_ACCESS_TOKEN_TTL: seconds(30, 3600).default(300),
  ERRAND_REFRESH_TOKEN_TTL: seconds(60, 90 * DAY).default(14 * DAY),
  ERRAND_REFRESH_TOKEN_IDLE_TTL: seconds(60, 90 * DAY).default(DAY),
  ERRAND_REFRESH_GRACE_PERIOD: seconds(0, 120).default(10),
  ERRAND_AUTH_CODE_TTL: seconds(10, 600).default(60),
  ERRAND_AUTH_REQUEST_TTL: seconds(60, 3600).default(600),
  ERRAND_DEFAULT_RESOURCE: z
    .string()
    .refine((v) => canonicalizeResource(v) !== null, {
      message: 'must be an absolute http(s) URL without a fragment (a registered resource)',
    })
    .transform((v) => canonicalizeResource(v) as string)
    .optional(),
  ERRAND_ASSERTION_MAX_LIFETIME: seconds(10, 3600).default(300),
  ERRAND_CLOCK_SKEW: seconds(0, 300).default(30),
  ERRAND_CLOCK_JUMP_HOLD: seconds(0, 7 * DAY).default(3600),
  ERRAND_POLICY_REFRESH: seconds(1, 300).default(2),
  ERRAND_TASK_MAX_TTL: seconds(60, 7 * DAY).default(3600),
  ERRAND_DELEGATION_DEFAULT_TTL: seconds(60, 365 * DAY).default(DAY),
  ERRAND_DELEGATION_MAX_TTL: seconds(60, 365 * DAY).default(30 * DAY),
  ERRAND_MAX_DELEGATION_DEPTH: count(0, 8).default(3),
  ERRAND_STATUS_LIST_TTL: seconds(1, 3600).default(5),
  ERRAND_CIBA_REQUEST_TTL: seconds(30, 3600).default(600),
  ERRAND_CIBA_INTERVAL: seconds(1, 60).default(5),
  ERRAND_UNKNOWN_USER_LIMIT: count(1, 10_000).default(10),
  ERRAND_DCR_ENABLED: bool.default(true),
  ERRAND_DCR_RATE_LIMIT: count(1, 10_000).default(20),
  ERRAND_DCR_MAX_CLIENTS: count(1, 10_000_000).default(10_000),
  ERRAND_DCR_UNUSED_TTL: seconds(60, 365 * DAY).default(DAY),
  ERRAND_CIMD_ENABLED: bool.default(true),
  ERRAND_CIMD_CACHE_TTL: seconds(0, DAY).default(3600),
  ERRAND_CIMD_MAX_BYTES: count(512, 65_536).default(5120),
  ERRAND_CIMD_MIN_CACHE_TTL: seconds(0, 3600).default(60),
  ERRAND_CIMD_FAILURE_TTL: seconds(0, 3600).default(30),
  ERRAND_JWKS_CACHE_TTL: seconds(0, DAY).default(300),
  ERRAND_DPOP_NONCE_REQUIRED: bool.default(false),
  ERRAND_FETCH_TIMEOUT_MS: count(100, 60_000).default(5000),
  ERRAND_FETCH_ALLOW_PRIVATE: bool.default(false),
  ERRAND_FETCH_MAX_PER_HOST: count(1, 1000).default(4),
  ERRAND_FETCH_MAX_CONCURRENT: count(1, 10_000).default(32),
  ERRAND_STREAM_MAX_PER_CLIENT: count(1, 10_000).default(10),
  ERRAND_STREAM_MAX_TOTAL: count(1, 1_000_000).default(1000),
  ERRAND_REVOCATION_POLL_MS: count(20, 5000).default(150),
  ERRAND_MAX_BODY_BYTES: count(1024, 10_485_760).default(65_536),
  ERRAND_BODY_TIMEOUT: seconds(1, 300).default(15),
  ERRAND_SHUTDOWN_TIMEOUT: seconds(1, 600).default(20),
  ERRAND_SESSION_TTL: seconds(300, 30 * DAY).default(8 * 3600),
  ERRAND_SIGNIN_MAX_FAILURES: count(1, 1000).default(5),
  ERRAND_SIGNIN_USERNAME_MAX_FAILURES: count(1, 100_000).optional(),
  ERRAND_SIGNIN_LOCKOUT: seconds(1, DAY).default(900),
  ERRAND_TRUST_PROXY: TrustProxySchema.default({ kind: 'none' }),
  ERRAND_UNUSED_AGENT_DAYS: count(1, 3650).default(30),
  ERRAND_OWNER_GRACE_PERIOD: seconds(0, 365 * DAY).default(7 * DAY),
  ERRAND_CERTIFICATION_SCHEDULE_DAYS: count(0, 3650).default(0),
  ERRAND_RETENTION_TOKENS: seconds(300, 365 * DAY).default(DAY),
  ERRAND_RETENTION_TASKS: seconds(300, 3650 * DAY).default(7 * DAY),
  ERRAND_RETENTION_AUDIT: seconds(0, 36_500 * DAY).default(365 * DAY),
  ERRAND_OIDC_ISSUER: z
    .url({ message: 'must be an absolute http(s) URL' })
    .refine((v) => /^https?:\/\//.test(v), { message: 'must use http or https' })
    .refine((v) => !v.includes('?') && !v.includes('#'), { message: 'must not contain a query or fragment' })
    .optional(),
  ERRAND_OIDC_CLIENT_ID: z.string().min(1).optional(),
  ERRAND_OIDC_CLIENT_SECRET: z.string().min(1).optional(),
  ERRAND_OIDC_SCOPES: z
    .string()
    .trim()
    .refine((v) => v.split(/\s+/).includes('openid'), { message: 'must contain openid' })
    .default('openid email profile'),
  ERRAND_OIDC_DISPLAY_NAME: z
    .string()
    .trim()
    .min(1, { message: 'must not be empty' })
    .max(64, { message: 'must be at most 64 characters' })
    .default('single sign-on'),
  ERRAND_OIDC_AUTO_CREATE: bool.default(true),
  ERRAND_OIDC_GROUPS_CLAIM: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9_.:/-]{1,128}$/, { message: 'must be a claim name (letters, digits, _ . : / -)' })
    .default('groups'),
  ERRAND_LOG_LEVEL: z
    .enum(['debug', 'info', 'warn', 'error'], { message: 'must be debug, info, warn or error' })
    .default('info'),
  ERRAND_ACCESS_LOG: bool.default(true),
  ERRAND_BOOTSTRAP_ADMIN_USERNAME: UsernameSchema.optional(),
  ERRAND_BOOTSTRAP_ADMIN_PASSWORD: NewPasswordSchema.optional(),
  ERRAND_METRICS_TOKEN: z
    .string()
    .min(32, { message: 'must be at least 32 characters (e.g. openssl rand -hex 32)' })
    .max(512, { message: 'must be at most 512 characters' })
    .regex(/^[A-Za-z0-9._~+/=-]+$/, { message: 'must be a bearer token: letters, digits and -._~+/= only' })
    .optional(),
  ERRAND_METRICS_PORT: count(0, 65_535).optional(),
  ERRAND_METRICS_HOST: z.string().min(1).optional(),
});

export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  host: string;
  port: number;
  issuer: string;
  dataDir: string;
  /**
   * `allowEmpty`: set up an empty database even when the data directory holds files of an earlier
   * installation (a deliberate reset). `quickCheck`: run `PRAGMA quick_check` at start.
   */
  db: {
    url: string;
    authToken?: string;
    allowEmpty: boolean;
    quickCheck: boolean;
    /** PostgreSQL: reading connections per node (the writer has one more). */
    poolSize: number;
    /** PostgreSQL: `statement_timeout` of every connection, in milliseconds. */
    statementTimeoutMs: number;
    /** Embedded file: sync and checkpoint inside COMMIT instead of off the event loop. */
    syncInCommit: boolean;
  };
  masterKey: { value?: string; file: string };
  keys: {
    alg: 'ES256' | 'EdDSA';
    rotationPeriod: number;
    publishAhead: number;
    jwksMaxAge: number;
    /** Least announcement time of a new key (`minPublishAhead`); also the delay of an admin "rotate now". */
    minPublishAhead: number;
  };
  tokens: {
    accessTokenTtl: number;
    refreshTokenTtl: number;
    refreshTokenIdleTtl: number;
    refreshGracePeriod: number;
    authCodeTtl: number;
    authRequestTtl: number;
    /** RFC 8707 §2: the resource of an authorization request that names none and asks no scope. */
    defaultResource: string | null;
  };
  clientAuth: { assertionMaxLifetime: number; clockSkew: number; jwksCacheTtl: number };
  /** RFC 9449 at the token endpoint: whether every proof must carry a server nonce. */
  dpop: { nonceRequired: boolean };
  delegation: {
    defaultTtl: number;
    maxTtl: number;
    maxDepth: number;
    taskMaxTtl: number;
    cibaRequestTtl: number;
    cibaInterval: number;
    /** `unknown_user_id` answers per client per minute before its user lookups are refused. */
    unknownUserLimit: number;
  };
  statusList: { ttl: number };
  registration: {
    dcrEnabled: boolean;
    dcrRateLimitPerMinute: number;
    dcrMaxClients: number;
    dcrUnusedTtl: number;
    cimdEnabled: boolean;
    cimdCacheTtl: number;
    cimdMaxBytes: number;
    /** Least time a fetched metadata document is kept, whatever its Cache-Control says. */
    cimdMinCacheTtl: number;
    /** How long a failed metadata document fetch is remembered (and answered without fetching). */
    cimdFailureTtl: number;
  };
  /** Outbound fetches of URLs others choose: limits per host and in total, beyond which they fail fast. */
  fetch: { timeoutMs: number; allowPrivate: boolean; maxPerHost: number; maxConcurrent: number };
  /** Long-lived streams (revocation push channel, A2A streams): open at once per client and in total. */
  streams: { maxPerClient: number; maxTotal: number };
  /**
   * `pollMs`: how often, while a push stream is open, this process reads the revocation log for
   * revocations other processes on the database committed (its own are read at once).
   */
  revocationPush: { pollMs: number };
  /** `bodyTimeout`: seconds a client has, once its request headers are in, to send the whole body (408 after). */
  http: { maxBodyBytes: number; bodyTimeout: number; trustProxy: TrustProxy };
  /** Graceful stop on SIGTERM/SIGINT: the most seconds it may take before the process gives up and exits 1. */
  shutdown: { timeout: number };
  /** Web sessions and sign-in lock-out (failures per username and address, per username, lock seconds). */
  sessions: { ttl: number; maxFailures: number; usernameMaxFailures: number; lockout: number };
  ui: { unusedAgentDays: number };
  /**
   * Agent lifecycle (README "Agent lifecycle: owners, certification and right-sizing"): seconds an
   * agent whose owner lapsed keeps working before it is suspended; days between scheduled
   * certification campaigns (0 = none).
   */
  lifecycle: { ownerGracePeriod: number; certificationScheduleDays: number };
  /** What maintenance deletes: seconds past expiry/use (tokens), past the end (tasks), past `at` (audit; 0 = never). */
  retention: { tokens: number; tasks: number; audit: number };
  /** Longest time a forward jump of the wall clock holds back time-based upkeep (README "Clock skew and clock jumps"). */
  maintenance: { clockJumpHold: number };
  /** Organisation policies: how often a process looks for a version another process published (README "Organisation policies"). */
  policy: { refreshInterval: number };
  /** Sign-in federated to an upstream OpenID Connect provider; null when ERRAND_OIDC_ISSUER is unset. */
  oidc: {
    issuer: string;
    clientId: string;
    clientSecret: string;
    scopes: string;
    displayName: string;
    autoCreate: boolean;
    /** The ID token (or UserInfo) claim whose groups are copied for policies at each sign-in. */
    groupsClaim: string;
  } | null;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** One `http.request` line per request at info level (README "Logs"). */
  accessLog: boolean;
  /** The first administrator, created at start when no administrator exists (README "Admin CLI"). */
  bootstrapAdmin: { username: string; password: string } | null;
  /**
   * `GET /metrics` (README "Metrics and traces"): off unless a token or a management listener is
   * configured. With `token`, the main listener serves it to that bearer token (and the management
   * listener asks for it too); `listener` is a second HTTP listener that serves only `/metrics`.
   */
  metrics: { enabled: boolean; token: string | null; listener: { host: string; port: number } | null };
  /** OpenTelemetry traces over OTLP/HTTP, when the standard OTEL_* variables ask for them; null otherwise. */
  tracing: TracingSettings | null;
}

export interface TracingSettings {
  /** `service.name` of the spans: OTEL_SERVICE_NAME, `errand` by default. */
  serviceName: string;
}

const OTEL_PROTOCOLS = ['http/json', 'http/protobuf'];

/**
 * Whether the standard OpenTelemetry variables ask for traces: `OTEL_TRACES_EXPORTER=otlp`, or an
 * OTLP endpoint with no exporter named; never with `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
 * Errand ships the OTLP/HTTP exporter only (it sends JSON, which every OTLP/HTTP receiver accepts).
 */
function tracingSettings(env: Record<string, string | undefined>, problems: string[]): TracingSettings | null {
  const value = (name: string) => env[name]?.trim() || undefined;
  if (value('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return null;
  const exporters = (value('OTEL_TRACES_EXPORTER') ?? '')
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter(Boolean);
  const unsupported = exporters.filter((e) => e !== 'otlp' && e !== 'none');
  if (unsupported.length > 0) {
    problems.push(`OTEL_TRACES_EXPORTER: "${unsupported[0]!.slice(0, 32)}" is not supported; use otlp (or none)`);
    return null;
  }
  const endpointName = value('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')
    ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'
    : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  const endpoint = value(endpointName);
  const on = exporters.includes('otlp') || (exporters.length === 0 && endpoint !== undefined);
  if (!on) return null;
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const protocol = value(name);
    if (protocol !== undefined && !OTEL_PROTOCOLS.includes(protocol)) {
      problems.push(`${name}: "${protocol.slice(0, 32)}" is not supported; Errand exports OTLP over HTTP (http/json)`);
    }
  }
  if (endpoint !== undefined && !/^https?:\/\/[^\s]+$/.test(endpoint)) {
    problems.push(`${endpointName}: must be an http(s) URL`);
  }
  return { serviceName: value('OTEL_SERVICE_NAME') ?? 'errand' };
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Reads the optional JSON config file: an object of ERRAND_* keys; the environment wins over it. */
function readConfigFile(path: string): Record<string, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError([`ERRAND_CONFIG_FILE: cannot read ${path} as JSON (${(err as Error).message})`]);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError([`ERRAND_CONFIG_FILE: ${path} must hold a JSON object of ERRAND_* settings`]);
  }
  const out: Record<string, string> = {};
  const known = new Set(Object.keys(EnvSchema.shape));
  const problems: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (!known.has(k) || k === 'ERRAND_CONFIG_FILE') problems.push(`${k} (in ${path}): unknown setting`);
    else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else problems.push(`${k} (in ${path}): must be a string, number or boolean`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}

/**
 * Edits (insert, delete, substitute, swap two neighbours) between `a` and `b`, stopping early once
 * it exceeds `max` (the optimal-string-alignment form of the Damerau-Levenshtein distance).
 */
export function editDistance(a: string, b: string, max = Number.POSITIVE_INFINITY): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      row.push(d);
      best = Math.min(best, d);
    }
    if (best > max) return max + 1;
    prev2 = prev;
    prev = row;
  }
  return prev[b.length]!;
}

/** How many edits a name may be from a known setting to be offered as "did you mean". */
const MAX_SUGGESTION_EDITS = 2;

/**
 * Warnings for ERRAND_* variables in the environment that no part of the broker reads, usually a
 * misspelling that would otherwise leave the default in force without a word. Each names the
 * nearest known setting when one is at most two edits away. Other variables are not looked at.
 */
export function unknownSettingWarnings(env: Record<string, string | undefined>): string[] {
  const known = Object.keys(EnvSchema.shape);
  const warnings: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('ERRAND_') || known.includes(name)) continue;
    let nearest: string | null = null;
    let distance = MAX_SUGGESTION_EDITS + 1;
    for (const candidate of known) {
      const d = editDistance(name.toUpperCase(), candidate, MAX_SUGGESTION_EDITS);
      if (d < distance) {
        distance = d;
        nearest = candidate;
      }
    }
    warnings.push(
      nearest
        ? `${name} is not a known setting; did you mean ${nearest}?`
        : `${name} is not a known setting and is ignored (the settings are listed in the README's Configuration section)`,
    );
  }
  return warnings;
}

/** Validates the environment (and the optional config file) into a typed configuration. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const fromEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('ERRAND_') && v !== undefined && v !== '') fromEnv[k] = v;
  const fileValues = fromEnv.ERRAND_CONFIG_FILE ? readConfigFile(fromEnv.ERRAND_CONFIG_FILE) : {};
  const merged = { ...fileValues, ...fromEnv };

  const parsed = EnvSchema.safeParse(merged);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${String(i.path[0] ?? '')}: ${i.message}`));
  }
  const e = parsed.data;
  const problems: string[] = [];
  if (e.ERRAND_KEY_PUBLISH_AHEAD >= e.ERRAND_KEY_ROTATION_PERIOD) {
    problems.push('ERRAND_KEY_PUBLISH_AHEAD: must be shorter than ERRAND_KEY_ROTATION_PERIOD');
  }
  const leastAhead = minPublishAhead(e.ERRAND_JWKS_MAX_AGE, e.ERRAND_CLOCK_SKEW);
  if (e.ERRAND_KEY_PUBLISH_AHEAD < leastAhead) {
    problems.push(
      `ERRAND_KEY_PUBLISH_AHEAD: must be at least ${leastAhead} seconds with ERRAND_JWKS_MAX_AGE=${e.ERRAND_JWKS_MAX_AGE} and ERRAND_CLOCK_SKEW=${e.ERRAND_CLOCK_SKEW}, so that verifiers caching the JWKS have the next key before it signs (lower ERRAND_JWKS_MAX_AGE or raise the publish-ahead time)`,
    );
  }
  if (e.ERRAND_DELEGATION_DEFAULT_TTL > e.ERRAND_DELEGATION_MAX_TTL) {
    problems.push('ERRAND_DELEGATION_DEFAULT_TTL: must not exceed ERRAND_DELEGATION_MAX_TTL');
  }
  if (e.ERRAND_FETCH_MAX_PER_HOST > e.ERRAND_FETCH_MAX_CONCURRENT) {
    problems.push('ERRAND_FETCH_MAX_PER_HOST: must not exceed ERRAND_FETCH_MAX_CONCURRENT');
  }
  if (e.ERRAND_STREAM_MAX_PER_CLIENT > e.ERRAND_STREAM_MAX_TOTAL) {
    problems.push('ERRAND_STREAM_MAX_PER_CLIENT: must not exceed ERRAND_STREAM_MAX_TOTAL');
  }
  if (e.ERRAND_REFRESH_TOKEN_IDLE_TTL > e.ERRAND_REFRESH_TOKEN_TTL) {
    problems.push('ERRAND_REFRESH_TOKEN_IDLE_TTL: must not exceed ERRAND_REFRESH_TOKEN_TTL');
  }
  const usernameMaxFailures = e.ERRAND_SIGNIN_USERNAME_MAX_FAILURES ?? 10 * e.ERRAND_SIGNIN_MAX_FAILURES;
  if (usernameMaxFailures < e.ERRAND_SIGNIN_MAX_FAILURES) {
    problems.push('ERRAND_SIGNIN_USERNAME_MAX_FAILURES: must be at least ERRAND_SIGNIN_MAX_FAILURES');
  }
  const issuer =
    e.ERRAND_ISSUER ?? `http://${e.ERRAND_HOST.includes(':') ? `[${e.ERRAND_HOST}]` : e.ERRAND_HOST}:${e.ERRAND_PORT}`;
  if (issuer.startsWith('http://') && !isLoopbackIssuer(issuer)) {
    problems.push('ERRAND_ISSUER: must use https unless the broker runs on a loopback address');
  }
  if (e.ERRAND_OIDC_ISSUER) {
    if (!e.ERRAND_OIDC_CLIENT_ID) problems.push('ERRAND_OIDC_CLIENT_ID: is required when ERRAND_OIDC_ISSUER is set');
    if (!e.ERRAND_OIDC_CLIENT_SECRET) {
      problems.push('ERRAND_OIDC_CLIENT_SECRET: is required when ERRAND_OIDC_ISSUER is set');
    }
    if (e.ERRAND_OIDC_ISSUER.startsWith('http://') && !isLoopbackIssuer(e.ERRAND_OIDC_ISSUER)) {
      problems.push('ERRAND_OIDC_ISSUER: must use https unless the provider runs on a loopback address');
    }
  }
  if (!e.ERRAND_BOOTSTRAP_ADMIN_USERNAME !== !e.ERRAND_BOOTSTRAP_ADMIN_PASSWORD) {
    problems.push(
      e.ERRAND_BOOTSTRAP_ADMIN_USERNAME
        ? 'ERRAND_BOOTSTRAP_ADMIN_PASSWORD: is required when ERRAND_BOOTSTRAP_ADMIN_USERNAME is set'
        : 'ERRAND_BOOTSTRAP_ADMIN_USERNAME: is required when ERRAND_BOOTSTRAP_ADMIN_PASSWORD is set',
    );
  }
  if (e.ERRAND_METRICS_HOST !== undefined && e.ERRAND_METRICS_PORT === undefined) {
    problems.push('ERRAND_METRICS_HOST: applies only with ERRAND_METRICS_PORT (the management listener)');
  }
  if (e.ERRAND_METRICS_PORT !== undefined && e.ERRAND_METRICS_PORT !== 0 && e.ERRAND_METRICS_PORT === e.ERRAND_PORT) {
    problems.push('ERRAND_METRICS_PORT: must differ from ERRAND_PORT');
  }
  const tracing = tracingSettings(env, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  const dataDir = e.ERRAND_DATA_DIR.replace(/\/+$/, '');
  return {
    host: e.ERRAND_HOST,
    port: e.ERRAND_PORT,
    issuer,
    dataDir,
    db: {
      url: e.ERRAND_DB_URL ?? `file:${dataDir}/errand.db`,
      ...(e.ERRAND_DB_AUTH_TOKEN ? { authToken: e.ERRAND_DB_AUTH_TOKEN } : {}),
      allowEmpty: e.ERRAND_ALLOW_EMPTY_DATABASE,
      quickCheck: e.ERRAND_DB_QUICK_CHECK,
      poolSize: e.ERRAND_DB_POOL_SIZE,
      statementTimeoutMs: e.ERRAND_DB_STATEMENT_TIMEOUT_MS,
      syncInCommit: e.ERRAND_DB_SYNC_IN_COMMIT,
    },
    masterKey: {
      ...(e.ERRAND_MASTER_KEY ? { value: e.ERRAND_MASTER_KEY } : {}),
      file: e.ERRAND_MASTER_KEY_FILE ?? `${dataDir}/master.key`,
    },
    keys: {
      alg: e.ERRAND_SIGNING_ALG,
      rotationPeriod: e.ERRAND_KEY_ROTATION_PERIOD,
      publishAhead: e.ERRAND_KEY_PUBLISH_AHEAD,
      jwksMaxAge: e.ERRAND_JWKS_MAX_AGE,
      minPublishAhead: leastAhead,
    },
    tokens: {
      accessTokenTtl: e.ERRAND_ACCESS_TOKEN_TTL,
      refreshTokenTtl: e.ERRAND_REFRESH_TOKEN_TTL,
      refreshTokenIdleTtl: e.ERRAND_REFRESH_TOKEN_IDLE_TTL,
      refreshGracePeriod: e.ERRAND_REFRESH_GRACE_PERIOD,
      authCodeTtl: e.ERRAND_AUTH_CODE_TTL,
      authRequestTtl: e.ERRAND_AUTH_REQUEST_TTL,
      defaultResource: e.ERRAND_DEFAULT_RESOURCE ?? null,
    },
    clientAuth: {
      assertionMaxLifetime: e.ERRAND_ASSERTION_MAX_LIFETIME,
      clockSkew: e.ERRAND_CLOCK_SKEW,
      jwksCacheTtl: e.ERRAND_JWKS_CACHE_TTL,
    },
    dpop: { nonceRequired: e.ERRAND_DPOP_NONCE_REQUIRED },
    delegation: {
      defaultTtl: e.ERRAND_DELEGATION_DEFAULT_TTL,
      maxTtl: e.ERRAND_DELEGATION_MAX_TTL,
      maxDepth: e.ERRAND_MAX_DELEGATION_DEPTH,
      taskMaxTtl: e.ERRAND_TASK_MAX_TTL,
      cibaRequestTtl: e.ERRAND_CIBA_REQUEST_TTL,
      cibaInterval: e.ERRAND_CIBA_INTERVAL,
      unknownUserLimit: e.ERRAND_UNKNOWN_USER_LIMIT,
    },
    statusList: { ttl: e.ERRAND_STATUS_LIST_TTL },
    registration: {
      dcrEnabled: e.ERRAND_DCR_ENABLED,
      dcrRateLimitPerMinute: e.ERRAND_DCR_RATE_LIMIT,
      dcrMaxClients: e.ERRAND_DCR_MAX_CLIENTS,
      dcrUnusedTtl: e.ERRAND_DCR_UNUSED_TTL,
      cimdEnabled: e.ERRAND_CIMD_ENABLED,
      cimdCacheTtl: e.ERRAND_CIMD_CACHE_TTL,
      cimdMaxBytes: e.ERRAND_CIMD_MAX_BYTES,
      // The floor never exceeds the ceiling: an explicit ERRAND_CIMD_CACHE_TTL below it wins.
      cimdMinCacheTtl: Math.min(e.ERRAND_CIMD_MIN_CACHE_TTL, e.ERRAND_CIMD_CACHE_TTL),
      cimdFailureTtl: e.ERRAND_CIMD_FAILURE_TTL,
    },
    fetch: {
      timeoutMs: e.ERRAND_FETCH_TIMEOUT_MS,
      allowPrivate: e.ERRAND_FETCH_ALLOW_PRIVATE,
      maxPerHost: e.ERRAND_FETCH_MAX_PER_HOST,
      maxConcurrent: e.ERRAND_FETCH_MAX_CONCURRENT,
    },
    streams: { maxPerClient: e.ERRAND_STREAM_MAX_PER_CLIENT, maxTotal: e.ERRAND_STREAM_MAX_TOTAL },
    revocationPush: { pollMs: e.ERRAND_REVOCATION_POLL_MS },
    http: {
      maxBodyBytes: e.ERRAND_MAX_BODY_BYTES,
      bodyTimeout: e.ERRAND_BODY_TIMEOUT,
      trustProxy: e.ERRAND_TRUST_PROXY,
    },
    shutdown: { timeout: e.ERRAND_SHUTDOWN_TIMEOUT },
    sessions: {
      ttl: e.ERRAND_SESSION_TTL,
      maxFailures: e.ERRAND_SIGNIN_MAX_FAILURES,
      usernameMaxFailures,
      lockout: e.ERRAND_SIGNIN_LOCKOUT,
    },
    ui: { unusedAgentDays: e.ERRAND_UNUSED_AGENT_DAYS },
    lifecycle: {
      ownerGracePeriod: e.ERRAND_OWNER_GRACE_PERIOD,
      certificationScheduleDays: e.ERRAND_CERTIFICATION_SCHEDULE_DAYS,
    },
    retention: {
      tokens: e.ERRAND_RETENTION_TOKENS,
      tasks: e.ERRAND_RETENTION_TASKS,
      audit: e.ERRAND_RETENTION_AUDIT,
    },
    maintenance: { clockJumpHold: e.ERRAND_CLOCK_JUMP_HOLD },
    policy: { refreshInterval: e.ERRAND_POLICY_REFRESH },
    oidc:
      e.ERRAND_OIDC_ISSUER && e.ERRAND_OIDC_CLIENT_ID && e.ERRAND_OIDC_CLIENT_SECRET
        ? {
            issuer: e.ERRAND_OIDC_ISSUER,
            clientId: e.ERRAND_OIDC_CLIENT_ID,
            clientSecret: e.ERRAND_OIDC_CLIENT_SECRET,
            scopes: e.ERRAND_OIDC_SCOPES.split(/\s+/).join(' '),
            displayName: e.ERRAND_OIDC_DISPLAY_NAME,
            autoCreate: e.ERRAND_OIDC_AUTO_CREATE,
            groupsClaim: e.ERRAND_OIDC_GROUPS_CLAIM,
          }
        : null,
    logLevel: e.ERRAND_LOG_LEVEL,
    accessLog: e.ERRAND_ACCESS_LOG,
    bootstrapAdmin:
      e.ERRAND_BOOTSTRAP_ADMIN_USERNAME && e.ERRAND_BOOTSTRAP_ADMIN_PASSWORD
        ? { username: e.ERRAND_BOOTSTRAP_ADMIN_USERNAME, password: e.ERRAND_BOOTSTRAP_ADMIN_PASSWORD }
        : null,
    metrics: {
      enabled: e.ERRAND_METRICS_TOKEN !== undefined || e.ERRAND_METRICS_PORT !== undefined,
      token: e.ERRAND_METRICS_TOKEN ?? null,
      listener:
        e.ERRAND_METRICS_PORT === undefined
          ? null
          : { host: e.ERRAND_METRICS_HOST ?? '127.0.0.1', port: e.ERRAND_METRICS_PORT },
    },
    tracing,
  };
}

function isLoopbackIssuer(issuer: string): boolean {
  const host = new URL(issuer).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
