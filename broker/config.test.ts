import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  ConfigError,
  editDistance,
  loadConfig,
  maintenanceIntervalMs,
  minPublishAhead,
  unknownSettingWarnings,
} from './config.js';

const problems = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('loadConfig', () => {
  test('defaults start on 127.0.0.1:8787 with an embedded file under ./data', () => {
    const c = loadConfig({});
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8787);
    expect(c.issuer).toBe('http://127.0.0.1:8787');
    expect(c.db.url).toBe('file:./data/errand.db');
    expect(c.masterKey.file).toBe('./data/master.key');
    expect(c.keys.alg).toBe('ES256');
    expect(c.tokens.accessTokenTtl).toBe(300);
    expect(c.tokens.refreshGracePeriod).toBe(10);
  });

  test('each bad value is reported with the variable name and what is wrong', () => {
    expect(problems({ ERRAND_PORT: 'eighty' })).toEqual(['ERRAND_PORT: must be a whole number']);
    expect(problems({ ERRAND_ACCESS_TOKEN_TTL: '5' })).toEqual([
      'ERRAND_ACCESS_TOKEN_TTL: must be at least 30 seconds',
    ]);
    expect(problems({ ERRAND_SIGNING_ALG: 'HS256' })).toEqual(['ERRAND_SIGNING_ALG: must be ES256 or EdDSA']);
    expect(problems({ ERRAND_DCR_ENABLED: 'maybe' })).toEqual(['ERRAND_DCR_ENABLED: must be true or false']);
    expect(problems({ ERRAND_ISSUER: 'https://errand.example/' })).toEqual([
      'ERRAND_ISSUER: must not end with a slash',
    ]);
    expect(problems({ ERRAND_ISSUER: 'http://errand.example' })[0]).toMatch(/^ERRAND_ISSUER: must use https/);
    expect(problems({ ERRAND_KEY_PUBLISH_AHEAD: '100', ERRAND_KEY_ROTATION_PERIOD: '60' })[0]).toMatch(
      /^ERRAND_KEY_PUBLISH_AHEAD/,
    );
  });

  test('the publish-ahead time must cover the JWKS max-age, the clock skew and a maintenance interval', () => {
    // Defaults: 300 s max-age + 30 s skew + 1 s, plus the 30 s in which other processes load a new key.
    expect(loadConfig({}).keys.minPublishAhead).toBe(361);
    expect(problems({ ERRAND_KEY_PUBLISH_AHEAD: '361', ERRAND_KEY_ROTATION_PERIOD: '3600' })).toEqual([]);
    expect(problems({ ERRAND_KEY_PUBLISH_AHEAD: '360', ERRAND_KEY_ROTATION_PERIOD: '3600' })).toEqual([
      'ERRAND_KEY_PUBLISH_AHEAD: must be at least 361 seconds with ERRAND_JWKS_MAX_AGE=300 and ERRAND_CLOCK_SKEW=30, so that verifiers caching the JWKS have the next key before it signs (lower ERRAND_JWKS_MAX_AGE or raise the publish-ahead time)',
    ]);
    // The short settings of the reliability tests: accepted only with an uncached JWKS and a tight skew.
    const short = { ERRAND_KEY_ROTATION_PERIOD: '15', ERRAND_KEY_PUBLISH_AHEAD: '5' };
    expect(problems(short)[0]).toMatch(/^ERRAND_KEY_PUBLISH_AHEAD: must be at least 361 seconds/);
    expect(problems({ ...short, ERRAND_JWKS_MAX_AGE: '5', ERRAND_CLOCK_SKEW: '0' })[0]).toMatch(
      /^ERRAND_KEY_PUBLISH_AHEAD: must be at least 8 seconds/,
    );
    expect(problems({ ...short, ERRAND_JWKS_MAX_AGE: '2', ERRAND_CLOCK_SKEW: '0' })).toEqual([]);
    // An admin "rotate now" waits as long.
    expect(loadConfig({ ERRAND_JWKS_MAX_AGE: '0', ERRAND_CLOCK_SKEW: '0' }).keys.minPublishAhead).toBe(2);
  });

  test('minPublishAhead is the least publish-ahead leaving max-age + skew + 1 s after a maintenance interval', () => {
    for (const [maxAge, skew] of [
      [0, 0],
      [2, 0],
      [5, 5],
      [60, 30],
      [300, 30],
      [86_400, 300],
    ] as const) {
      const ahead = minPublishAhead(maxAge, skew);
      const lead = (a: number) => a - maintenanceIntervalMs(a) / 1000;
      expect(lead(ahead)).toBeGreaterThanOrEqual(maxAge + skew + 1);
      expect(lead(ahead - 1)).toBeLessThan(maxAge + skew + 1);
    }
  });

  test('outbound fetch, metadata document cache and stream caps: defaults, and a per-key cap above its total is refused', () => {
    const c = loadConfig({});
    expect(c.fetch).toMatchObject({ maxPerHost: 4, maxConcurrent: 32 });
    expect(c.registration).toMatchObject({ cimdMinCacheTtl: 60, cimdFailureTtl: 30, cimdCacheTtl: 3600 });
    expect(c.streams).toEqual({ maxPerClient: 10, maxTotal: 1000 });
    expect(loadConfig({ ERRAND_CIMD_CACHE_TTL: '10' }).registration.cimdMinCacheTtl).toBe(10);
    expect(
      problems({
        ERRAND_FETCH_MAX_PER_HOST: '50',
        ERRAND_FETCH_MAX_CONCURRENT: '10',
        ERRAND_STREAM_MAX_PER_CLIENT: '20',
        ERRAND_STREAM_MAX_TOTAL: '5',
      }),
    ).toEqual([
      'ERRAND_FETCH_MAX_PER_HOST: must not exceed ERRAND_FETCH_MAX_CONCURRENT',
      'ERRAND_STREAM_MAX_PER_CLIENT: must not exceed ERRAND_STREAM_MAX_TOTAL',
    ]);
    expect(problems({ ERRAND_FETCH_MAX_PER_HOST: '0' })).toEqual(['ERRAND_FETCH_MAX_PER_HOST: must be at least 1']);
  });

  test('revocation log poll interval: 150 ms by default, 20 ms to 5 s, whole milliseconds', () => {
    expect(loadConfig({}).revocationPush).toEqual({ pollMs: 150 });
    expect(loadConfig({ ERRAND_REVOCATION_POLL_MS: '40' }).revocationPush.pollMs).toBe(40);
    for (const bad of ['10', '6000', '1.5', 'fast']) {
      const [problem] = problems({ ERRAND_REVOCATION_POLL_MS: bad });
      expect(problem).toMatch(/^ERRAND_REVOCATION_POLL_MS: /);
    }
  });

  test('PostgreSQL URLs, pool size and statement timeout: defaults, bounds, whole numbers', () => {
    expect(loadConfig({}).db).toMatchObject({ poolSize: 10, statementTimeoutMs: 10_000 });
    for (const url of [
      'postgres://errand:pw@db:5432/errand',
      'postgresql://errand@db/errand?sslmode=verify-full&sslrootcert=/run/secrets/ca.pem',
    ]) {
      expect(loadConfig({ ERRAND_DB_URL: url }).db.url).toBe(url);
    }
    expect(problems({ ERRAND_DB_URL: 'postgres:db/errand' })[0]).toMatch(/^ERRAND_DB_URL: must be a file:/);
    expect(problems({ ERRAND_DB_URL: 'mysql://db/errand' })[0]).toMatch(/^ERRAND_DB_URL: /);
    const c = loadConfig({ ERRAND_DB_POOL_SIZE: '1', ERRAND_DB_STATEMENT_TIMEOUT_MS: '100' }).db;
    expect(c).toMatchObject({ poolSize: 1, statementTimeoutMs: 100 });
    const top = loadConfig({ ERRAND_DB_POOL_SIZE: '500', ERRAND_DB_STATEMENT_TIMEOUT_MS: '600000' }).db;
    expect(top).toMatchObject({ poolSize: 500, statementTimeoutMs: 600_000 });
    for (const bad of ['0', '501', '2.5', 'many']) {
      expect(problems({ ERRAND_DB_POOL_SIZE: bad })[0]).toMatch(/^ERRAND_DB_POOL_SIZE: /);
    }
    expect(problems({ ERRAND_DB_POOL_SIZE: '0' })).toEqual(['ERRAND_DB_POOL_SIZE: must be at least 1']);
    for (const bad of ['99', '600001', '1.5', 'slow']) {
      expect(problems({ ERRAND_DB_STATEMENT_TIMEOUT_MS: bad })[0]).toMatch(/^ERRAND_DB_STATEMENT_TIMEOUT_MS: /);
    }
    expect(problems({ ERRAND_DB_STATEMENT_TIMEOUT_MS: '600001' })).toEqual([
      'ERRAND_DB_STATEMENT_TIMEOUT_MS: must be at most 600000',
    ]);
    // The misspelt-setting warning knows them.
    expect(unknownSettingWarnings({ ERRAND_DB_POOL_SIZ: '5' })[0]).toContain('did you mean ERRAND_DB_POOL_SIZE?');
  });

  test('request body and shutdown time limits: defaults, bounds, and a clear message for bad values', () => {
    const c = loadConfig({});
    expect(c.http.bodyTimeout).toBe(15);
    expect(c.shutdown.timeout).toBe(20);
    const set = loadConfig({ ERRAND_BODY_TIMEOUT: '2', ERRAND_SHUTDOWN_TIMEOUT: '45' });
    expect([set.http.bodyTimeout, set.shutdown.timeout]).toEqual([2, 45]);
    expect(problems({ ERRAND_BODY_TIMEOUT: '0' })).toEqual(['ERRAND_BODY_TIMEOUT: must be at least 1 seconds']);
    expect(problems({ ERRAND_BODY_TIMEOUT: '301' })).toEqual(['ERRAND_BODY_TIMEOUT: must be at most 300 seconds']);
    expect(problems({ ERRAND_SHUTDOWN_TIMEOUT: '1.5' })).toEqual([
      'ERRAND_SHUTDOWN_TIMEOUT: must be a whole number of seconds',
    ]);
    expect(problems({ ERRAND_SHUTDOWN_TIMEOUT: 'soon' })).toEqual([
      'ERRAND_SHUTDOWN_TIMEOUT: must be a whole number of seconds',
    ]);
    expect(problems({ ERRAND_SHUTDOWN_TIMEOUT: '601' })).toEqual([
      'ERRAND_SHUTDOWN_TIMEOUT: must be at most 600 seconds',
    ]);
  });

  test('several problems are reported together', () => {
    expect(problems({ ERRAND_PORT: '-1', ERRAND_LOG_LEVEL: 'loud' })).toHaveLength(2);
  });

  test('a config file supplies settings and the environment wins over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'errand-cfg-'));
    const file = join(dir, 'errand.json');
    writeFileSync(file, JSON.stringify({ ERRAND_PORT: 9000, ERRAND_ACCESS_TOKEN_TTL: 120 }));
    const c = loadConfig({ ERRAND_CONFIG_FILE: file, ERRAND_ACCESS_TOKEN_TTL: '60' });
    expect(c.port).toBe(9000);
    expect(c.tokens.accessTokenTtl).toBe(60);
    writeFileSync(file, JSON.stringify({ ERRAND_PROT: 1 }));
    expect(problems({ ERRAND_CONFIG_FILE: file })[0]).toMatch(/ERRAND_PROT .*unknown setting/);
    writeFileSync(file, '{not json');
    expect(problems({ ERRAND_CONFIG_FILE: file })[0]).toMatch(/^ERRAND_CONFIG_FILE: cannot read/);
  });

  test('single sign-on is off by default and needs a client id and secret when an issuer is set', () => {
    expect(loadConfig({}).oidc).toBeNull();
    expect(problems({ ERRAND_OIDC_ISSUER: 'https://id.example' })).toEqual([
      'ERRAND_OIDC_CLIENT_ID: is required when ERRAND_OIDC_ISSUER is set',
      'ERRAND_OIDC_CLIENT_SECRET: is required when ERRAND_OIDC_ISSUER is set',
    ]);
    const base = {
      ERRAND_OIDC_ISSUER: 'https://id.example',
      ERRAND_OIDC_CLIENT_ID: 'c',
      ERRAND_OIDC_CLIENT_SECRET: 's',
    };
    expect(loadConfig(base).oidc).toEqual({
      issuer: 'https://id.example',
      clientId: 'c',
      clientSecret: 's',
      scopes: 'openid email profile',
      displayName: 'single sign-on',
      autoCreate: true,
      groupsClaim: 'groups',
    });
    expect(problems({ ...base, ERRAND_OIDC_SCOPES: 'email profile' })).toEqual([
      'ERRAND_OIDC_SCOPES: must contain openid',
    ]);
    expect(problems({ ...base, ERRAND_OIDC_ISSUER: 'http://id.example' })[0]).toMatch(
      /^ERRAND_OIDC_ISSUER: must use https/,
    );
    expect(loadConfig({ ...base, ERRAND_OIDC_ISSUER: 'http://127.0.0.1:9000' }).oidc?.issuer).toBe(
      'http://127.0.0.1:9000',
    );
    expect(problems({ ...base, ERRAND_OIDC_AUTO_CREATE: 'perhaps' })).toEqual([
      'ERRAND_OIDC_AUTO_CREATE: must be true or false',
    ]);
    expect(loadConfig({ ...base, ERRAND_OIDC_GROUPS_CLAIM: 'https://example.com/roles' }).oidc?.groupsClaim).toBe(
      'https://example.com/roles',
    );
    expect(problems({ ...base, ERRAND_OIDC_GROUPS_CLAIM: 'two words' })).toEqual([
      'ERRAND_OIDC_GROUPS_CLAIM: must be a claim name (letters, digits, _ . : / -)',
    ]);
  });
});

describe('ERRAND_POLICY_REFRESH', () => {
  test('seconds between looks for a newly published policy version: 2 by default, 1 to 300', () => {
    expect(loadConfig({}).policy.refreshInterval).toBe(2);
    expect(loadConfig({ ERRAND_POLICY_REFRESH: '30' }).policy.refreshInterval).toBe(30);
    expect(problems({ ERRAND_POLICY_REFRESH: '0' })[0]).toMatch(/^ERRAND_POLICY_REFRESH: /);
    expect(problems({ ERRAND_POLICY_REFRESH: '301' })[0]).toMatch(/^ERRAND_POLICY_REFRESH: /);
    expect(problems({ ERRAND_POLICY_REFRESH: 'soon' })[0]).toMatch(/^ERRAND_POLICY_REFRESH: /);
  });
});

describe('ERRAND_TRUST_PROXY', () => {
  test('off by default; false, no and 0 keep it off', () => {
    expect(loadConfig({}).http.trustProxy).toEqual({ kind: 'none' });
    for (const value of ['false', 'no', '0']) {
      expect(loadConfig({ ERRAND_TRUST_PROXY: value }).http.trustProxy).toEqual({ kind: 'none' });
    }
  });

  test('a number of proxy hops, or a list of proxy addresses and ranges', () => {
    expect(loadConfig({ ERRAND_TRUST_PROXY: '1' }).http.trustProxy).toEqual({ kind: 'hops', hops: 1 });
    expect(loadConfig({ ERRAND_TRUST_PROXY: ' 10.0.0.0/8, 192.0.2.7 ,fd00::/8' }).http.trustProxy).toEqual({
      kind: 'cidrs',
      cidrs: [
        { address: '10.0.0.0', prefix: 8, family: 'ipv4' },
        { address: '192.0.2.7', prefix: 32, family: 'ipv4' },
        { address: 'fd00::', prefix: 8, family: 'ipv6' },
      ],
    });
  });

  test('the former true, and values that are neither, stop start-up with a message naming the setting', () => {
    expect(problems({ ERRAND_TRUST_PROXY: 'true' })[0]).toMatch(
      /^ERRAND_TRUST_PROXY: true no longer says which proxies to trust: set the number of proxies/,
    );
    expect(problems({ ERRAND_TRUST_PROXY: 'yes' })[0]).toMatch(/^ERRAND_TRUST_PROXY: true no longer/);
    expect(problems({ ERRAND_TRUST_PROXY: '17' })).toEqual(['ERRAND_TRUST_PROXY: must be at most 16 proxies']);
    for (const bad of [
      '10.0.0.0/33',
      'fd00::/129',
      '10.0.0.0/8/1',
      'proxy.example',
      '10.0.0.0/x',
      '10.0.0.0/8,',
      'fe80::1%eth0',
    ]) {
      expect(problems({ ERRAND_TRUST_PROXY: bad })[0]).toMatch(
        /^ERRAND_TRUST_PROXY: ".*" is not an IP address or CIDR range/,
      );
    }
  });
});

describe('sign-in lock-out settings', () => {
  test('the per-username limit defaults to ten times the per-address one and may not be lower', () => {
    expect(loadConfig({}).sessions).toMatchObject({ maxFailures: 5, usernameMaxFailures: 50, lockout: 900 });
    expect(loadConfig({ ERRAND_SIGNIN_MAX_FAILURES: '3' }).sessions.usernameMaxFailures).toBe(30);
    expect(problems({ ERRAND_SIGNIN_MAX_FAILURES: '5', ERRAND_SIGNIN_USERNAME_MAX_FAILURES: '4' })).toEqual([
      'ERRAND_SIGNIN_USERNAME_MAX_FAILURES: must be at least ERRAND_SIGNIN_MAX_FAILURES',
    ]);
  });
});

describe('clock jump hold', () => {
  test('defaults to an hour; 0 turns the hold off; beyond a week or not whole seconds is refused', () => {
    expect(loadConfig({}).maintenance.clockJumpHold).toBe(3600);
    expect(loadConfig({ ERRAND_CLOCK_JUMP_HOLD: '0' }).maintenance.clockJumpHold).toBe(0);
    expect(loadConfig({ ERRAND_CLOCK_JUMP_HOLD: '604800' }).maintenance.clockJumpHold).toBe(604800);
    expect(problems({ ERRAND_CLOCK_JUMP_HOLD: '604801' })).toEqual([
      'ERRAND_CLOCK_JUMP_HOLD: must be at most 604800 seconds',
    ]);
    expect(problems({ ERRAND_CLOCK_JUMP_HOLD: '-1' })).toEqual(['ERRAND_CLOCK_JUMP_HOLD: must be at least 0 seconds']);
    expect(problems({ ERRAND_CLOCK_JUMP_HOLD: '1h' })).toEqual([
      'ERRAND_CLOCK_JUMP_HOLD: must be a whole number of seconds',
    ]);
  });
});

describe('database start-up checks', () => {
  test('quick_check runs and an empty database beside an earlier installation is refused, unless set otherwise', () => {
    expect(loadConfig({}).db).toMatchObject({ allowEmpty: false, quickCheck: true });
    expect(loadConfig({ ERRAND_ALLOW_EMPTY_DATABASE: 'true', ERRAND_DB_QUICK_CHECK: 'false' }).db).toMatchObject({
      allowEmpty: true,
      quickCheck: false,
    });
    expect(problems({ ERRAND_ALLOW_EMPTY_DATABASE: 'reset', ERRAND_DB_QUICK_CHECK: 'skip' })).toEqual([
      'ERRAND_ALLOW_EMPTY_DATABASE: must be true or false',
      'ERRAND_DB_QUICK_CHECK: must be true or false',
    ]);
  });

  test('the embedded file syncs after COMMIT off the event loop unless ERRAND_DB_SYNC_IN_COMMIT says otherwise', () => {
    expect(loadConfig({}).db.syncInCommit).toBe(false);
    expect(loadConfig({ ERRAND_DB_SYNC_IN_COMMIT: 'true' }).db.syncInCommit).toBe(true);
    expect(problems({ ERRAND_DB_SYNC_IN_COMMIT: 'full' })).toEqual(['ERRAND_DB_SYNC_IN_COMMIT: must be true or false']);
  });
});

describe('ERRAND_DEFAULT_RESOURCE', () => {
  test('unset by default; kept in canonical form (RFC 8707 resource comparison)', () => {
    expect(loadConfig({}).tokens.defaultResource).toBeNull();
    expect(loadConfig({ ERRAND_DEFAULT_RESOURCE: 'HTTPS://Notes.Example.com:443/' }).tokens.defaultResource).toBe(
      'https://notes.example.com',
    );
  });

  test('anything but an absolute http(s) URL without a fragment stops start-up, naming the setting', () => {
    for (const bad of ['notes', 'ftp://notes.example.com/', 'https://notes.example.com/#x']) {
      expect(problems({ ERRAND_DEFAULT_RESOURCE: bad })).toEqual([
        'ERRAND_DEFAULT_RESOURCE: must be an absolute http(s) URL without a fragment (a registered resource)',
      ]);
    }
  });
});

describe('unknown ERRAND_ variables', () => {
  test('edit distance counts insertions, deletions, substitutions and swapped neighbours', () => {
    expect(editDistance('ERRAND_PORT', 'ERRAND_PORT')).toBe(0);
    expect(editDistance('ERRAND_ACESS_TOKEN_TTL', 'ERRAND_ACCESS_TOKEN_TTL')).toBe(1);
    expect(editDistance('ERRAND_PROT', 'ERRAND_PORT')).toBe(1);
    expect(editDistance('ERRAND_HOTS', 'ERRAND_HOST')).toBe(1);
    expect(editDistance('ERRAND_PORTS', 'ERRAND_HOST')).toBe(3);
    expect(editDistance('ERRAND_X', 'ERRAND_ACCESS_TOKEN_TTL', 2)).toBe(3);
  });

  test('a misspelt setting names the nearest known one; an unknown one is warned about; other variables are not', () => {
    const warnings = unknownSettingWarnings({
      ERRAND_ACESS_TOKEN_TTL: '600',
      ERRAND_PROT: '9000',
      errand_port: '1',
      ERRAND_WIDGETS: 'on',
      ERRAND_PORT: '8080',
      HOME: '/root',
      MY_ERRAND_PORT: '1',
    });
    expect(warnings).toEqual([
      'ERRAND_ACESS_TOKEN_TTL is not a known setting; did you mean ERRAND_ACCESS_TOKEN_TTL?',
      'ERRAND_PROT is not a known setting; did you mean ERRAND_PORT?',
      "ERRAND_WIDGETS is not a known setting and is ignored (the settings are listed in the README's Configuration section)",
    ]);
    expect(unknownSettingWarnings({ ERRAND_PORT: '1', PATH: '/bin' })).toEqual([]);
  });
});

describe('ERRAND_ACCESS_LOG', () => {
  test('on by default; false turns it off; anything else is refused naming the setting', () => {
    expect(loadConfig({}).accessLog).toBe(true);
    expect(loadConfig({ ERRAND_ACCESS_LOG: 'false' }).accessLog).toBe(false);
    expect(() => loadConfig({ ERRAND_ACCESS_LOG: 'sometimes' })).toThrow('ERRAND_ACCESS_LOG: must be true or false');
  });
});

describe('ERRAND_BOOTSTRAP_ADMIN_*', () => {
  test('unset by default; a username and a password of 12 characters or more together', () => {
    expect(loadConfig({}).bootstrapAdmin).toBeNull();
    expect(
      loadConfig({ ERRAND_BOOTSTRAP_ADMIN_USERNAME: 'root', ERRAND_BOOTSTRAP_ADMIN_PASSWORD: 'twelve chars' })
        .bootstrapAdmin,
    ).toEqual({ username: 'root', password: 'twelve chars' });
  });

  test('one without the other, a short password or a bad username stop start-up, never quoting the password', () => {
    expect(problems({ ERRAND_BOOTSTRAP_ADMIN_USERNAME: 'root' })).toEqual([
      'ERRAND_BOOTSTRAP_ADMIN_PASSWORD: is required when ERRAND_BOOTSTRAP_ADMIN_USERNAME is set',
    ]);
    expect(problems({ ERRAND_BOOTSTRAP_ADMIN_PASSWORD: 'a long enough password' })).toEqual([
      'ERRAND_BOOTSTRAP_ADMIN_USERNAME: is required when ERRAND_BOOTSTRAP_ADMIN_PASSWORD is set',
    ]);
    const short = problems({ ERRAND_BOOTSTRAP_ADMIN_USERNAME: 'root', ERRAND_BOOTSTRAP_ADMIN_PASSWORD: 'short-pw-99' });
    expect(short).toEqual(['ERRAND_BOOTSTRAP_ADMIN_PASSWORD: must have at least 12 characters']);
    expect(short.join(' ')).not.toContain('short-pw-99');
    expect(
      problems({
        ERRAND_BOOTSTRAP_ADMIN_USERNAME: 'root admin',
        ERRAND_BOOTSTRAP_ADMIN_PASSWORD: 'a long enough password',
      }),
    ).toEqual(['ERRAND_BOOTSTRAP_ADMIN_USERNAME: may use letters, digits and . _ @ - (up to 64)']);
  });

  test('the misspelt-setting warning knows them (the admin CLI reads the same settings)', () => {
    expect(
      unknownSettingWarnings({ ERRAND_BOOTSTRAP_ADMIN_USERNAME: 'root', ERRAND_BOOTSTRAP_ADMIN_PASSWORD: 'x' }),
    ).toEqual([]);
    expect(unknownSettingWarnings({ ERRAND_BOOTSTRAP_ADMIN_USERNAM: 'root' })).toEqual([
      'ERRAND_BOOTSTRAP_ADMIN_USERNAM is not a known setting; did you mean ERRAND_BOOTSTRAP_ADMIN_USERNAME?',
    ]);
  });
});

describe('metrics settings', () => {
  const token = 'a'.repeat(40);

  test('off by default; a token turns /metrics on, a port adds a management listener on 127.0.0.1', () => {
    expect(loadConfig({}).metrics).toEqual({ enabled: false, token: null, listener: null });
    expect(loadConfig({ ERRAND_METRICS_TOKEN: token }).metrics).toEqual({ enabled: true, token, listener: null });
    expect(loadConfig({ ERRAND_METRICS_PORT: '9464' }).metrics).toEqual({
      enabled: true,
      token: null,
      listener: { host: '127.0.0.1', port: 9464 },
    });
    expect(
      loadConfig({ ERRAND_METRICS_PORT: '9464', ERRAND_METRICS_HOST: '0.0.0.0', ERRAND_METRICS_TOKEN: token }).metrics,
    ).toEqual({ enabled: true, token, listener: { host: '0.0.0.0', port: 9464 } });
  });

  test('a short or malformed token, a bad port, a host without a port, the main port: refused, naming the setting', () => {
    expect(problems({ ERRAND_METRICS_TOKEN: 'secret' })).toEqual([
      'ERRAND_METRICS_TOKEN: must be at least 32 characters (e.g. openssl rand -hex 32)',
    ]);
    expect(problems({ ERRAND_METRICS_TOKEN: `${token} x` })).toEqual([
      'ERRAND_METRICS_TOKEN: must be a bearer token: letters, digits and -._~+/= only',
    ]);
    expect(problems({ ERRAND_METRICS_PORT: '70000' })).toEqual(['ERRAND_METRICS_PORT: must be at most 65535']);
    expect(problems({ ERRAND_METRICS_HOST: '0.0.0.0' })).toEqual([
      'ERRAND_METRICS_HOST: applies only with ERRAND_METRICS_PORT (the management listener)',
    ]);
    expect(problems({ ERRAND_PORT: '9000', ERRAND_METRICS_PORT: '9000' })).toEqual([
      'ERRAND_METRICS_PORT: must differ from ERRAND_PORT',
    ]);
    expect(unknownSettingWarnings({ ERRAND_METRICS_TOKN: token })).toEqual([
      'ERRAND_METRICS_TOKN is not a known setting; did you mean ERRAND_METRICS_TOKEN?',
    ]);
  });
});

describe('tracing settings (standard OTEL_* variables)', () => {
  const endpoint = 'http://127.0.0.1:4318';

  test('off unless an OTLP endpoint or OTEL_TRACES_EXPORTER=otlp asks for traces', () => {
    expect(loadConfig({}).tracing).toBeNull();
    expect(loadConfig({ OTEL_SERVICE_NAME: 'x' }).tracing).toBeNull();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }).tracing).toEqual({ serviceName: 'errand' });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${endpoint}/v1/traces` }).tracing).not.toBeNull();
    expect(loadConfig({ OTEL_TRACES_EXPORTER: 'otlp' }).tracing).toEqual({ serviceName: 'errand' });
    expect(loadConfig({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SERVICE_NAME: 'errand-eu' }).tracing).toEqual({
      serviceName: 'errand-eu',
    });
  });

  test('OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none win over an endpoint', () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: 'true' }).tracing).toBeNull();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_EXPORTER: 'none' }).tracing).toBeNull();
  });

  test('an exporter or protocol Errand does not ship, or an endpoint that is no URL, stops start-up', () => {
    expect(problems({ OTEL_TRACES_EXPORTER: 'zipkin' })).toEqual([
      'OTEL_TRACES_EXPORTER: "zipkin" is not supported; use otlp (or none)',
    ]);
    expect(problems({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toEqual([
      'OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported; Errand exports OTLP over HTTP (http/json)',
    ]);
    expect(problems({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' })).toEqual(
      [],
    );
    expect(problems({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toEqual([
      'OTEL_EXPORTER_OTLP_ENDPOINT: must be an http(s) URL',
    ]);
  });
});

describe('agent lifecycle settings', () => {
  test('owner grace period defaults to 7 days and the certification schedule to off; bad values are refused', () => {
    const config = loadConfig({});
    expect(config.lifecycle).toEqual({ ownerGracePeriod: 7 * 86_400, certificationScheduleDays: 0 });
    expect(loadConfig({ ERRAND_OWNER_GRACE_PERIOD: '0' }).lifecycle.ownerGracePeriod).toBe(0);
    expect(loadConfig({ ERRAND_CERTIFICATION_SCHEDULE_DAYS: '90' }).lifecycle.certificationScheduleDays).toBe(90);
    expect(problems({ ERRAND_OWNER_GRACE_PERIOD: '7d' })).toEqual([
      'ERRAND_OWNER_GRACE_PERIOD: must be a whole number of seconds',
    ]);
    expect(problems({ ERRAND_OWNER_GRACE_PERIOD: '-1' })).toEqual([
      'ERRAND_OWNER_GRACE_PERIOD: must be at least 0 seconds',
    ]);
    expect(problems({ ERRAND_CERTIFICATION_SCHEDULE_DAYS: '3651' })).toHaveLength(1);
  });
});
