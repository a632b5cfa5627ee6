import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import { base64url, type CryptoKey, exportJWK, exportSPKI, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditEvents, clients, delegations, issuedTokens, tasks } from '../../db/schema/index.js';
import { delegateViaCiba, delegationWorld, exchange, TT_ACCESS, TT_JWT, userApi } from './delegation-fixtures.js';
import { clientAssertion, startBroker, type TestAgent, type TestBroker } from './fixtures.js';

/**
 * Property-based hostile input against every public endpoint (issue 8, item 4).
 *
 * Fixed seed, RUNS runs per endpoint. For every response: never a 5xx; errors have the spec's shape;
 * no stack trace, file path or private key material in the body; nothing written for a rejected
 * request; and no log line carries a token, assertion or password that was sent.
 *
 * "Nothing written" counts rows of issued_tokens, clients, delegations, tasks and audit_events.
 * The allowed growth: `exchange.denied` audit rows, written only when the client authenticated
 * (a valid client assertion) and its token exchange was then denied, and `signin.failed` rows for a
 * refused sign-in — the audit trail of a denial, not state. Other rejections write nothing at all.
 */
const SEED = 0x5eed_e44a;
const RUNS = 150;
const ROOT = join(import.meta.dirname, '..', '..');
const NOTES = 'https://notes.example.test/mcp';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const GRANTS = [
  'authorization_code',
  'refresh_token',
  'client_credentials',
  'urn:ietf:params:oauth:grant-type:token-exchange',
  'urn:openid:params:grant-type:ciba',
  'urn:ietf:params:oauth:grant-type:jwt-bearer',
  'password',
  'implicit',
];

let tb: TestBroker;
let world: Awaited<ReturnType<typeof delegationWorld>>;
let agent: TestAgent;
let credential: string;
let taskToken: string;
let taskId: string;
let mcpToken: string;
let a2aToken: string;
let admin: Awaited<ReturnType<typeof userApi>>;
let me: Awaited<ReturnType<typeof userApi>>;
let attackerHits = 0;
let attacker: Server;
let attackerUrl: string;
/** JWT attacks, built once the broker and its keys exist. */
let attacks: string[] = [];

// ---------------------------------------------------------------- JWT attacks

const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
const unsigned = (header: Record<string, unknown>, claims: Record<string, unknown>, sig = '') =>
  `${enc(header)}.${enc(claims)}.${sig}`;

/** Signs exactly what it is given (jose refuses to sign unknown `crit` headers, which is the attack). */
async function rawSign(key: CryptoKey, header: Record<string, unknown>, claims: Record<string, unknown>) {
  const input = `${enc(header)}.${enc(claims)}`;
  const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, new TextEncoder().encode(input));
  return `${input}.${base64url.encode(new Uint8Array(sig))}`;
}

function actBomb(depth: number): Record<string, unknown> {
  let act: Record<string, unknown> = { sub: 'cli_root' };
  for (let i = 0; i < depth; i++) act = { sub: `cli_${i}`, act };
  return act;
}

async function buildAttacks(): Promise<string[]> {
  const now = Math.floor(Date.now() / 1000);
  const jwks = (await (await fetch(`${tb.url}/jwks.json`)).json()) as { keys: (JWK & { kid: string })[] };
  const brokerJwk = jwks.keys[0]!;
  const { privateKey: evil, publicKey: evilPub } = await generateKeyPair('ES256');
  const evilJwk = await exportJWK(evilPub);
  const agentPem = await exportSPKI((await importJWK(agent.publicJwk, 'ES256', { extractable: true })) as CryptoKey);
  const assertionClaims = {
    iss: agent.clientId,
    sub: agent.clientId,
    aud: tb.url,
    jti: `j${now}`,
    iat: now,
    exp: now + 60,
  };
  const taskClaims = {
    iss: tb.url,
    sub: world.user.id,
    aud: NOTES,
    client_id: agent.clientId,
    scope: 'notes:read notes:write notes:delete',
    jti: `t${now}`,
    iat: now,
    exp: now + 600,
    task_id: taskId,
  };
  const hs = (secret: string, claims: Record<string, unknown>, kid: string, typ: string) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid, typ }).sign(new TextEncoder().encode(secret));
  const es = (key: CryptoKey, claims: Record<string, unknown>, header: Record<string, unknown> & { alg?: string }) =>
    rawSign(key, { alg: 'ES256', ...header }, claims);
  const out: string[] = [
    // alg none, every casing
    unsigned({ alg: 'none', typ: 'at+jwt', kid: brokerJwk.kid }, taskClaims),
    unsigned({ alg: 'None', kid: agent.kid }, assertionClaims),
    unsigned({ alg: 'NONE' }, { ...taskClaims, act: { sub: agent.clientId } }, 'AAAA'),
    // HS256 signed with public keys (JSON and PEM) as the HMAC secret
    await hs(JSON.stringify(brokerJwk), taskClaims, brokerJwk.kid, 'at+jwt'),
    await hs(JSON.stringify(agent.publicJwk), assertionClaims, agent.kid, 'client-authentication+jwt'),
    await hs(agentPem, assertionClaims, agent.kid, 'client-authentication+jwt'),
    await hs(brokerJwk.x ?? 'x', taskClaims, brokerJwk.kid, 'at+jwt'),
    // kid path and injection tricks
    await es(evil, taskClaims, { kid: '../../etc/passwd', typ: 'at+jwt' }),
    await es(evil, assertionClaims, { kid: "x' OR 1=1 --" }),
    await es(evil, assertionClaims, { kid: '/dev/random' }),
    await es(evil, assertionClaims, { kid: `${'k'.repeat(2000)}` }),
    await es(evil, assertionClaims, { kid: '\u0000\u202e' }),
    // jku / x5u / jwk header injection (must never be fetched or trusted)
    await es(evil, assertionClaims, { kid: agent.kid, jku: `${attackerUrl}/jwks.json` }),
    await es(evil, taskClaims, { kid: brokerJwk.kid, jku: `${attackerUrl}/jwks.json`, typ: 'at+jwt' }),
    await es(evil, assertionClaims, { kid: agent.kid, x5u: `${attackerUrl}/cert.pem` }),
    await es(evil, taskClaims, { kid: 'evil', x5u: `${attackerUrl}/cert.pem`, typ: 'at+jwt' }),
    await es(evil, assertionClaims, { kid: agent.kid, jwk: evilJwk }),
    await es(evil, taskClaims, { jwk: evilJwk, typ: 'at+jwt' }),
    // huge exp, signed with the agent's real key (a client assertion living for ever)
    await es(agent.privateKey, { ...assertionClaims, jti: `h1${now}`, exp: 1e20 }, { kid: agent.kid }),
    await es(
      agent.privateKey,
      { ...assertionClaims, jti: `h2${now}`, exp: Number.MAX_SAFE_INTEGER },
      { kid: agent.kid },
    ),
    await es(evil, { ...taskClaims, exp: 1e308 }, { kid: brokerJwk.kid, typ: 'at+jwt' }),
    // act bombs: forged task tokens and a validly signed actor token
    await es(evil, { ...taskClaims, act: actBomb(400) }, { kid: brokerJwk.kid, typ: 'at+jwt' }),
    unsigned({ alg: 'ES256', kid: brokerJwk.kid, typ: 'at+jwt' }, { ...taskClaims, act: actBomb(1000) }, 'AAAA'),
    await es(agent.privateKey, { ...assertionClaims, jti: `a${now}`, act: actBomb(300) }, { kid: agent.kid }),
    // crit headers, validly signed by the agent
    await es(
      agent.privateKey,
      { ...assertionClaims, jti: `c1${now}` },
      { kid: agent.kid, crit: ['x-evil'], 'x-evil': 1 },
    ),
    await es(agent.privateKey, { ...assertionClaims, jti: `c2${now}` }, { kid: agent.kid, crit: ['exp'] }),
    await es(agent.privateKey, { ...assertionClaims, jti: `c3${now}` }, { kid: agent.kid, crit: [] }),
    unsigned({ alg: 'ES256', kid: brokerJwk.kid, crit: ['b64'], b64: false }, taskClaims, 'AAAA'),
    // structurally broken
    'a.b.c',
    '..',
    `${enc({ alg: 'ES256' })}.!!!.###`,
    `${enc({ alg: 'ES256' })}.${base64url.encode('not json')}.AAAA`,
    `${enc('string header')}.${enc([1, 2])}.AAAA`,
    `${enc({ alg: 'ES256', kid: { $ne: 1 } })}.${enc({ iss: ['a'], exp: 'soon' })}.AAAA`,
    `${taskToken.split('.').slice(0, 2).join('.')}.${'A'.repeat(86)}`,
  ];
  return out;
}

// ---------------------------------------------------------------- arbitraries

const weird = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  '%',
  '%zz',
  '%00',
  '%ff%fe',
  '\ud800',
  '../../etc/passwd',
  "x' OR 1=1 --",
  '<script>alert(1)</script>',
  '__proto__',
  'constructor',
  '{"a":1}',
  '[]',
  'null',
  '-1',
  '1e308',
  '9007199254740993',
  'javascript:alert(1)',
  'http://169.254.169.254/latest/meta-data',
  'file:///etc/passwd',
  'a'.repeat(3000),
  '\u202e\ufeff',
);
const anyString = fc.oneof(
  weird,
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
);
const jwtAttack = () => fc.constantFrom(...attacks);
const hostileValue = () => fc.oneof({ weight: 3, arbitrary: anyString }, { weight: 2, arbitrary: jwtAttack() });
/** A field value: usually one, sometimes duplicated or repeated with different values. */
const fieldValue = () =>
  fc.oneof(
    { weight: 4, arbitrary: hostileValue() },
    { weight: 1, arbitrary: fc.array(hostileValue(), { minLength: 2, maxLength: 3 }) },
  );

type Fields = Record<string, string | string[]>;

function fields(known: string[], fixed: Record<string, fc.Arbitrary<string | string[]>> = {}) {
  return fc
    .tuple(
      fc.record(
        Object.fromEntries(known.map((k) => [k, fieldValue()])) as Record<string, fc.Arbitrary<string | string[]>>,
        { requiredKeys: [] },
      ),
      fc.dictionary(anyString, fieldValue(), { maxKeys: 2 }),
      fc.record(fixed, { requiredKeys: [] }),
    )
    .map(([a, b, c]) => ({ ...b, ...a, ...c }) as Fields);
}

/** How the body goes on the wire: the declared type and the encoding often disagree on purpose. */
type Encoding =
  | 'form'
  | 'json'
  | 'form-as-json'
  | 'no-type'
  | 'text'
  | 'multipart'
  | 'bad-utf8'
  | 'bad-percent'
  | 'huge';
const encoding = fc.constantFrom<Encoding>(
  'form',
  'form',
  'form',
  'json',
  'form-as-json',
  'no-type',
  'text',
  'multipart',
  'bad-utf8',
  'bad-percent',
  'huge',
);

function encodeBody(f: Fields, e: Encoding): { body: NonNullable<RequestInit['body']>; type?: string } {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) for (const one of Array.isArray(v) ? v : [v]) form.append(k, one);
  switch (e) {
    case 'form':
      return { body: form.toString(), type: 'application/x-www-form-urlencoded' };
    case 'json':
      return { body: JSON.stringify(f), type: 'application/json' };
    case 'form-as-json':
      return { body: form.toString(), type: 'application/json' };
    case 'no-type':
      return { body: new Blob([form.toString()]) };
    case 'text':
      return { body: form.toString(), type: 'text/plain' };
    case 'multipart':
      return {
        body: `--x\r\ncontent-disposition: form-data; name="a"\r\n\r\n1\r\n--x--`,
        type: 'multipart/form-data; boundary=x',
      };
    case 'bad-utf8':
      return {
        body: new Blob([new Uint8Array([0x67, 0x3d, 0xff, 0xfe, 0xc3, 0x28, 0x26, 0x61, 0x3d, 0xed, 0xa0, 0x80])]),
        type: 'application/x-www-form-urlencoded; charset=utf-16',
      };
    case 'bad-percent':
      return { body: `${form.toString()}&%zz=%&a=%E0%A4%A&%00=%ff`, type: 'application/x-www-form-urlencoded' };
    case 'huge':
      return { body: `${form.toString()}&pad=${'x'.repeat(70_000)}`, type: 'application/x-www-form-urlencoded' };
  }
}

// ---------------------------------------------------------------- checks

type Kind = 'oauth' | 'jsonrpc' | 'html' | 'any';
interface Sent {
  secrets: string[];
  authenticated: boolean;
}

function jwtsIn(v: unknown): string[] {
  // Split first: an unanchored JWT regex backtracks quadratically over 70 kB base64 runs (the act bombs).
  return (JSON.stringify(v) ?? '').split(/[^A-Za-z0-9_.-]+/).filter((t) => /^[\w-]+\.[\w-]+\.[\w-]{20,}$/.test(t));
}

async function counts() {
  const q = tb.broker.deps.db.q;
  const [t, c, d, k, a] = await Promise.all([
    q.$count(issuedTokens),
    q.$count(clients),
    q.$count(delegations),
    q.$count(tasks),
    q.select({ type: auditEvents.type }).from(auditEvents),
  ]);
  const denied = a.filter((e) => e.type === 'exchange.denied').length;
  const signinFailed = a.filter((e) => e.type === 'signin.failed').length;
  const other = a.length - denied - signinFailed;
  return { tokens: t, clients: c, delegations: d, tasks: k, audit: other, denied, signinFailed };
}

const STACK = /\n\s+at |\bat \/|\bat file:|\.(?:ts|tsx|js|mjs):\d+|node_modules|file:\/\//;
const KEY_MATERIAL = /PRIVATE KEY|"d"\s*:\s*"|"(?:secret|password_?hash|secret_?hash)"\s*:/i;

async function check(
  res: Response,
  kind: Kind,
  sent: Sent,
  before: Awaited<ReturnType<typeof counts>>,
  logFrom: number,
) {
  const type = res.headers.get('content-type') ?? '';
  let text = '';
  if (type.includes('event-stream')) await res.body?.cancel();
  else text = await res.text();
  const ctx = `${res.status} ${res.url} ${text.slice(0, 300)}`;
  expect(res.status, ctx).toBeLessThan(500);
  expect(text, ctx).not.toMatch(STACK);
  expect(text, ctx).not.toContain(ROOT);
  expect(text, ctx).not.toMatch(KEY_MATERIAL);
  for (const s of sent.secrets) {
    const sig = s.split('.')[2];
    if (sig && sig.length > 20) expect(text, ctx).not.toContain(sig);
  }
  // An empty 413/431 comes from Node's HTTP parser (URL or headers too large), before any route runs.
  if (res.status >= 400 && !(text === '' && (res.status === 413 || res.status === 431))) {
    // JSON-RPC endpoints answer HTTP-level refusals (no or bad token, wrong method, too large) with the OAuth shape.
    if (kind === 'oauth' || (kind === 'jsonrpc' && !text.includes('"jsonrpc"'))) {
      if (kind === 'jsonrpc' && res.status === 401)
        expect(res.headers.get('www-authenticate'), ctx).toMatch(/^(Bearer|DPoP) /);
      if (text) {
        expect(type, ctx).toMatch(/application\/json/);
        const body = JSON.parse(text) as { error: unknown; error_description: unknown };
        expect(typeof body.error, ctx).toBe('string');
        expect(typeof body.error_description, ctx).toBe('string');
      }
    } else if (kind === 'jsonrpc') {
      expect(type, ctx).toMatch(/application\/json/);
      const body = JSON.parse(text) as { jsonrpc: string; error: { code: unknown; message: unknown } };
      expect(body.jsonrpc, ctx).toBe('2.0');
      expect(typeof body.error.code, ctx).toBe('number');
      expect(typeof body.error.message, ctx).toBe('string');
    } else if (kind === 'html') {
      if (type.includes('json')) {
        const body = JSON.parse(text) as { error: unknown };
        expect(typeof body.error, ctx).toBe('string');
      } else expect(type, ctx).toMatch(/text\/html/);
    }
  } else if (kind === 'jsonrpc' && type.includes('json') && text) {
    const body = JSON.parse(text) as Record<string, unknown> | Record<string, unknown>[];
    for (const one of Array.isArray(body) ? body : [body]) expect(one.jsonrpc, ctx).toBe('2.0');
  }
  // Rejected requests write nothing.
  if (res.status >= 400) {
    const after = await counts();
    const { denied: d0, signinFailed: s0, ...rest0 } = before;
    const { denied: d1, signinFailed: s1, ...rest1 } = after;
    expect(rest1, ctx).toEqual(rest0);
    if (!sent.authenticated) expect(d1, ctx).toBe(d0);
    // A refused sign-in is audited (README "Logs"); nothing else writes a sign-in event.
    const path = new URL(res.url).pathname;
    if (path !== '/api/session' && path !== '/signin') expect(s1, ctx).toBe(s0);
    else expect(s1 - s0, ctx).toBeLessThanOrEqual(1);
  }
  // No log line carries a secret we sent or a stack trace.
  const logs = tb.logs.slice(logFrom).join('\n');
  expect(logs).not.toMatch(/\n\s+at |\.(?:ts|js):\d+:\d+/);
  for (const s of sent.secrets) {
    const sig = s.split('.')[2];
    expect(logs).not.toContain(s);
    if (sig && sig.length > 20) expect(logs).not.toContain(sig);
  }
}

interface Req {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: NonNullable<RequestInit['body']>;
  type?: string;
  kind: Kind;
  authenticated?: boolean;
  secrets?: string[];
  huge?: boolean;
}

async function send(r: Req) {
  const before = await counts();
  const logFrom = tb.logs.length;
  const headers = new Headers(r.headers);
  if (r.type) headers.set('content-type', r.type);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 5000);
  try {
    let res: Response;
    try {
      res = await fetch(`${tb.url}${r.path}`, {
        method: r.method,
        headers,
        redirect: 'manual',
        signal: ac.signal,
        ...(r.body === undefined || r.method === 'GET' || r.method === 'HEAD' ? {} : { body: r.body }),
      });
    } catch (err) {
      // An oversized body may be cut off by the server (413 then close) before the client finished sending.
      const code = (err as { cause?: { code?: string } }).cause?.code;
      const size = typeof r.body === 'string' ? r.body.length : 0;
      if ((r.huge || size > 60_000) && (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET')) return;
      throw new Error(`fetch failed: ${code} (${size} bytes)`);
    }
    await check(res, r.kind, { secrets: r.secrets ?? [], authenticated: r.authenticated ?? false }, before, logFrom);
  } finally {
    clearTimeout(timer);
  }
}

const params = {
  seed: SEED,
  numRuns: RUNS,
  endOnFailure: true,
  // Counterexamples carry act bombs of tens of kilobytes: report the cause and a short prefix only.
  // biome-ignore lint/suspicious/noExplicitAny: one reporter for properties of every arity
  reporter: (out: fc.RunDetails<any>) => {
    if (!out.failed) return;
    const example = JSON.stringify(out.counterexample)?.slice(0, 1500);
    throw new Error(
      `property failed (seed ${out.seed}, path ${out.counterexamplePath}): ${String(out.errorInstance).slice(0, 3000)}\ncounterexample: ${example}`,
    );
  },
};

/** Client authentication variants: none, garbage, attacks, or a fresh valid assertion (authenticated). */
type Auth =
  | { kind: 'none' }
  | { kind: 'assertion'; value: string }
  | { kind: 'valid' }
  | { kind: 'basic'; value: string }
  | { kind: 'id'; value: string };
const auth = () =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant<Auth>({ kind: 'none' }) },
    { weight: 4, arbitrary: jwtAttack().map((value): Auth => ({ kind: 'assertion', value })) },
    { weight: 1, arbitrary: anyString.map((value): Auth => ({ kind: 'assertion', value })) },
    { weight: 3, arbitrary: fc.constant<Auth>({ kind: 'valid' }) },
    { weight: 1, arbitrary: anyString.map((value): Auth => ({ kind: 'basic', value })) },
    { weight: 1, arbitrary: fc.constantFrom('cli_nope', '../x', '').map((value): Auth => ({ kind: 'id', value })) },
  );

async function applyAuth(a: Auth, f: Fields, headers: Record<string, string>): Promise<boolean> {
  switch (a.kind) {
    case 'none':
      return false;
    case 'assertion':
      f.client_assertion_type = ASSERTION_TYPE;
      f.client_assertion = a.value;
      return false;
    case 'valid':
      f.client_assertion_type = ASSERTION_TYPE;
      f.client_assertion = await clientAssertion(agent, tb.url);
      return true;
    case 'basic':
      headers.authorization = `Basic ${Buffer.from(`${a.value}:${a.value}`).toString('base64')}`;
      return false;
    case 'id':
      f.client_id = a.value;
      return false;
  }
}

function secretsOf(f: Fields, headers: Record<string, string> = {}): string[] {
  return [...jwtsIn(f), ...jwtsIn(headers)];
}

/** A form endpoint taking client authentication. */
function formProperty(
  path: string | fc.Arbitrary<string>,
  known: string[],
  fixed: Record<string, fc.Arbitrary<string | string[]>> = {},
) {
  const pathArb = typeof path === 'string' ? fc.constant(path) : path;
  return fc.asyncProperty(pathArb, fields(known, fixed), auth(), encoding, async (p, f, a, e) => {
    const headers: Record<string, string> = {};
    const authenticated = await applyAuth(a, f, headers);
    const { body, type } = encodeBody(f, e);
    await send({
      method: 'POST',
      path: p,
      headers,
      body,
      ...(type ? { type } : {}),
      kind: 'oauth',
      authenticated,
      secrets: secretsOf(f, headers),
      huge: e === 'huge',
    });
  });
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const segment = () =>
  fc.oneof(
    anyString.map((s) => encodeURIComponent(s.replace(LONE_SURROGATE, '\ufffd'))),
    fc.constantFrom(
      '..%2F..%2Fetc%2Fpasswd',
      '%00',
      '%zz',
      '-1',
      '99999999999999999999',
      '1e3',
      'x'.repeat(500),
      "x'%20OR%201=1",
    ),
  );

// ---------------------------------------------------------------- setup

beforeAll(async () => {
  attacker = createServer((_req, res) => {
    attackerHits += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}');
  });
  await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r));
  const addr = attacker.address();
  attackerUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

  tb = await startBroker({
    ERRAND_MAX_BODY_BYTES: '65536',
    ERRAND_DCR_RATE_LIMIT: '1000',
    ERRAND_FETCH_ALLOW_PRIVATE: 'true',
  });
  world = await delegationWorld(tb, {
    agents: 2,
    resources: { [NOTES]: ['notes:read', 'notes:write', 'notes:delete'] },
  });
  agent = world.agents[0]!;
  ({ credential } = await delegateViaCiba(tb, world.as, agent, world.user, {
    scope: 'openid notes:read notes:write',
    resource: NOTES,
    max_depth: '2',
  }));
  const task = await exchange(tb, world.as, agent, { subject_token: credential, subject_token_type: TT_JWT });
  taskToken = task.access_token;
  taskId = task.task_id;
  const token = async (resource: string) => {
    const res = await oauth.clientCredentialsGrantRequest(
      world.as,
      { client_id: agent.clientId },
      oauth.PrivateKeyJwt({ key: agent.privateKey, kid: agent.kid }),
      new URLSearchParams({ resource, scope: 'errand:delegate errand:tasks' }),
      { [oauth.allowInsecureRequests]: true },
    );
    return ((await res.json()) as { access_token: string }).access_token;
  };
  mcpToken = await token(`${tb.url}/mcp`);
  a2aToken = await token(`${tb.url}/a2a`);
  const adminUser = { username: world.api.admin.username, password: world.api.admin.password };
  admin = await userApi(tb, adminUser);
  me = await userApi(tb, world.user);
  attacks = await buildAttacks();
}, 60_000);

afterAll(async () => {
  await tb?.close();
  await new Promise<void>((r) => attacker?.close(() => r()));
});

// ---------------------------------------------------------------- properties

describe(`hostile input (fast-check seed ${SEED}, ${RUNS} runs per endpoint)`, () => {
  test('POST /token, every grant type', async () => {
    await fc.assert(
      formProperty(
        '/token',
        [
          'code',
          'code_verifier',
          'redirect_uri',
          'refresh_token',
          'scope',
          'resource',
          'audience',
          'subject_token',
          'subject_token_type',
          'actor_token',
          'actor_token_type',
          'requested_token_type',
          'authorization_details',
          'auth_req_id',
          'assertion',
        ],
        {
          grant_type: fc.oneof(
            fc.constantFrom(...GRANTS),
            fc.array(fc.constantFrom(...GRANTS), { minLength: 2, maxLength: 2 }),
            anyString,
          ),
          subject_token_type: fc.constantFrom(TT_JWT, TT_ACCESS, 'urn:x', ''),
          subject_token: fc.oneof(jwtAttack(), fc.constant(credential), fc.constant(taskToken)),
          actor_token: jwtAttack(),
          actor_token_type: fc.constant(TT_JWT),
        },
      ),
      { ...params, numRuns: RUNS * 2 },
    );
  }, 60_000);

  test('GET /authorize and POST /authorize/consent (browser pages)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fields([
          'response_type',
          'client_id',
          'redirect_uri',
          'code_challenge',
          'code_challenge_method',
          'resource',
          'scope',
          'state',
          'request',
          'request_uri',
        ]),
        fc.boolean(),
        fc.constantFrom(undefined, me),
        async (f, consent, session) => {
          const q = new URLSearchParams();
          for (const [k, v] of Object.entries(f)) for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
          const before = await counts();
          const logFrom = tb.logs.length;
          const url = consent ? `${tb.url}/authorize/consent` : `${tb.url}/authorize?${q}`;
          const init: RequestInit = consent
            ? { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: q.toString() }
            : {};
          const res = session
            ? await session.browser.fetch(url, init)
            : await fetch(url, { ...init, redirect: 'manual' });
          await check(res, 'html', { secrets: secretsOf(f), authenticated: false }, before, logFrom);
        },
      ),
      params,
    );
  }, 60_000);

  test('POST /register', async () => {
    await fc.assert(
      fc.asyncProperty(
        fields(
          [
            'redirect_uris',
            'client_name',
            'grant_types',
            'token_endpoint_auth_method',
            'jwks',
            'jwks_uri',
            'scope',
            'software_statement',
          ],
          {
            jwks_uri: fc.constant('https://attacker.invalid/jwks.json'),
            logo_uri: fc.constant('https://attacker.invalid/logo.png'),
          },
        ),
        encoding,
        fc.oneof(fc.constant(''), fc.json({ maxDepth: 4 }), fc.constant(`${'['.repeat(5000)}${']'.repeat(5000)}`)),
        async (f, e, raw) => {
          const { body, type } = raw && e === 'json' ? { body: raw, type: 'application/json' } : encodeBody(f, e);
          const before = await counts();
          const logFrom = tb.logs.length;
          const res = await fetch(`${tb.url}/register`, {
            method: 'POST',
            body,
            headers: type ? { 'content-type': type } : {},
          });
          // A request that happens to be a valid registration is not a rejection; everything else writes nothing.
          await check(res, 'oauth', { secrets: secretsOf(f), authenticated: false }, before, logFrom);
        },
      ),
      params,
    );
  }, 60_000);

  test('POST /revoke and /introspect', async () => {
    const tokenField = {
      token: fc.oneof(jwtAttack(), anyString),
      token_type_hint: fc.oneof(fc.constantFrom('access_token', 'refresh_token'), anyString),
    };
    await fc.assert(
      formProperty(fc.constantFrom('/revoke', '/introspect'), ['token', 'token_type_hint'], tokenField),
      params,
    );
  }, 60_000);

  test('POST /bc-authorize', async () => {
    await fc.assert(
      formProperty(
        '/bc-authorize',
        [
          'login_hint',
          'login_hint_token',
          'id_token_hint',
          'scope',
          'resource',
          'binding_message',
          'requested_expiry',
          'authorization_details',
          'max_depth',
          'request',
        ],
        {
          login_hint_token: jwtAttack(),
          id_token_hint: jwtAttack(),
        },
      ),
      params,
    );
  }, 60_000);

  test('POST /tasks/{id}/end (hostile ids with any auth; the real task only without valid auth)', async () => {
    const prop = fc.asyncProperty(
      fc.oneof(segment(), fc.constant(taskId)),
      fields(['state', 'reason']),
      auth(),
      encoding,
      async (id, f, a, e) => {
        const headers: Record<string, string> = {};
        if (id === taskId && a.kind === 'valid') return;
        const authenticated = await applyAuth(a, f, headers);
        const { body, type } = encodeBody(f, e);
        await send({
          method: 'POST',
          path: `/tasks/${id}/end`,
          headers,
          body,
          ...(type ? { type } : {}),
          kind: 'oauth',
          authenticated,
          secrets: secretsOf(f, headers),
          huge: e === 'huge',
        });
      },
    );
    await fc.assert(prop, params);
    expect((await fetch(`${tb.url}/statuslists/0`)).status).toBe(200);
  }, 60_000);

  for (const endpoint of ['/mcp', '/a2a'] as const) {
    test(`POST ${endpoint} (JSON-RPC)`, async () => {
      const bearer = () =>
        fc.oneof(
          fc.constant(undefined),
          jwtAttack().map((t) => `Bearer ${t}`),
          jwtAttack().map((t) => `DPoP ${t}`),
          anyString.map((t) => `Bearer ${encodeURIComponent(t).slice(0, 200)}`),
          fc.constant(`Bearer ${endpoint === '/mcp' ? mcpToken : a2aToken}`),
          fc.constant(`Bearer ${endpoint === '/mcp' ? a2aToken : mcpToken}`),
          fc.constant(`Bearer ${taskToken}`),
        );
      const methods = fc.constantFrom(
        'initialize',
        'tools/list',
        'tools/call',
        'resources/read',
        'prompts/get',
        'ping',
        'SendMessage',
        'message/send',
        'GetTask',
        'tasks/get',
        'CancelTask',
        'tasks/cancel',
        'SendStreamingMessage',
        '__proto__',
        'rpc.discover',
      );
      const tools = fc.constantFrom(
        'whoami',
        'request_delegation',
        'list_delegations',
        'start_task',
        'get_task_token',
        'delegate_to_subagent',
        'end_task',
        'list_tasks',
        'nope',
      );
      const message = fc.record(
        {
          jsonrpc: fc.oneof(fc.constant('2.0'), fc.constantFrom('1.0', '', 2)),
          id: fc.oneof(fc.integer(), anyString, fc.constant(null), fc.constant({ a: 1 })),
          method: fc.oneof(methods, anyString),
          params: fc.oneof(
            fc.record({
              name: tools,
              arguments: fc.dictionary(
                fc.constantFrom(
                  'task_id',
                  'delegation_id',
                  'resource',
                  'scope',
                  'user',
                  'resources',
                  'scopes',
                  'sub_agent_id',
                  'ttl',
                  'state',
                ),
                fc.oneof(hostileValue(), fc.json({ maxDepth: 2 })),
              ),
            }),
            fc.record({
              message: fc.record({
                role: fc.constantFrom('user', 'agent'),
                messageId: anyString,
                parts: fc.array(fc.record({ kind: fc.constant('text'), text: anyString }), { maxLength: 2 }),
                metadata: fc.json({ maxDepth: 2 }),
              }),
            }),
            fc.json({ maxDepth: 3 }).map((s) => JSON.parse(s) as unknown),
          ),
        },
        { requiredKeys: ['method'] },
      );
      const body = fc.oneof(
        { weight: 4, arbitrary: message.map((m) => JSON.stringify(m)) },
        { weight: 1, arbitrary: fc.array(message, { maxLength: 3 }).map((m) => JSON.stringify(m)) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            '',
            '{',
            '[]',
            'null',
            '{"jsonrpc":"2.0","method":"tools/call","params":' + '{"a":'.repeat(3000) + '1' + '}'.repeat(3000) + '}',
            `{"jsonrpc":"2.0","id":1,"method":"ping","pad":"${'x'.repeat(70_000)}"}`,
          ),
        },
      );
      await fc.assert(
        fc.asyncProperty(
          bearer(),
          body,
          fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded'),
          fc.constantFrom('POST', 'POST', 'GET', 'DELETE'),
          fc.constantFrom('2025-11-25', '2026-07-28', 'bogus', ''),
          async (b, text, type, method, version) => {
            const headers: Record<string, string> = {
              accept: 'application/json, text/event-stream',
              'mcp-protocol-version': version,
              'a2a-version': version === 'bogus' ? '99' : '1.0',
            };
            if (b) headers.authorization = b;
            const valid = b === `Bearer ${mcpToken}` || b === `Bearer ${a2aToken}`;
            await send({
              method,
              path: endpoint,
              headers,
              body: text,
              type,
              kind: 'jsonrpc',
              authenticated: valid,
              secrets: [...jwtsIn(text), ...(b ? jwtsIn(b) : [])],
              huge: text.length > 60_000,
            });
          },
        ),
        params,
      );
    }, 60_000);
  }

  test('GET /statuslists/{n}, /jwks.json and the well-known documents', async () => {
    const paths = fc.oneof(
      segment().map((s) => `/statuslists/${s}`),
      fc.constantFrom(
        '/.well-known/oauth-authorization-server',
        '/.well-known/oauth-protected-resource/mcp',
        '/.well-known/oauth-protected-resource/a2a',
        '/.well-known/agent-card.json',
        '/.well-known/openid-configuration',
        '/jwks.json',
        '/statuslists/0',
      ),
      segment().map((s) => `/.well-known/${s}`),
      segment().map((s) => `/.well-known/oauth-authorization-server/${s}`),
    );
    await fc.assert(
      fc.asyncProperty(
        paths,
        fields([]),
        fc.constantFrom('GET', 'HEAD', 'POST', 'OPTIONS', 'PUT'),
        async (p, f, method) => {
          const q = new URLSearchParams();
          for (const [k, v] of Object.entries(f)) for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
          await send({
            method,
            path: `${p}?${q}`,
            headers: { accept: '*/*', origin: 'https://evil.example' },
            kind: 'oauth',
            secrets: [],
          });
        },
      ),
      params,
    );
  }, 60_000);

  test('POST /events/revocations (never a stream for a rejected caller)', async () => {
    await fc.assert(
      formProperty('/events/revocations', ['audience', 'last_event_id'], { audience: anyString }),
      params,
    );
  }, 60_000);

  test('/api/session, /api/admin/* and /api/me/*, with and without a session', async () => {
    const adminPaths = fc.oneof(
      fc.constantFrom(
        '/api/admin/clients',
        '/api/admin/resources',
        '/api/admin/trusted-issuers',
        '/api/admin/users',
        '/api/admin/keys',
        '/api/admin/keys/rotate',
        '/api/admin/audit',
        '/api/admin/peers',
        '/api/me',
        '/api/me/delegations',
        '/api/me/tasks',
        '/api/me/audit',
        '/api/session',
      ),
      fc
        .tuple(
          fc.constantFrom(
            '/api/admin/clients',
            '/api/admin/trusted-issuers',
            '/api/admin/tasks',
            '/api/admin/delegations',
            '/api/admin/peers',
            '/api/me/delegations',
            '/api/me/tasks',
          ),
          segment(),
          fc.constantFrom('', '/end', '/revoke', '/approve', '/deny', '/refresh'),
        )
        .map(([a, b, c]) => `${a}/${b}${c}`),
    );
    const who = fc.constantFrom<'none' | 'admin' | 'user' | 'no-csrf' | 'bad-cookie'>(
      'none',
      'admin',
      'user',
      'no-csrf',
      'bad-cookie',
    );
    await fc.assert(
      fc.asyncProperty(
        adminPaths,
        who,
        fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE'),
        fields([
          'kind',
          'name',
          'url',
          'scopes',
          'username',
          'password',
          'role',
          'status',
          'issuer',
          'jwks_uri',
          'card_url',
          'type',
          'limit',
          'from',
        ]),
        fc.constantFrom<Encoding>('json', 'json', 'form', 'bad-utf8', 'huge', 'text'),
        async (path, w, method, f, e) => {
          // Never let the suite sign itself out or end its own fixtures: those paths only without a session.
          if (w !== 'none' && (path === '/api/session' || path.includes(taskId))) w = 'none';
          if (path === '/api/admin/keys/rotate') w = w === 'admin' ? 'no-csrf' : w;
          // A URL an administrator registers may be fetched (a feature): keep those off the recording server.
          if (f.card_url !== undefined) f.card_url = 'not a url';
          if (f.jwks_uri !== undefined) f.jwks_uri = 'https://attacker.invalid/x';
          const { body, type } = encodeBody(f, e);
          const s = w === 'admin' || w === 'no-csrf' ? admin : w === 'user' ? me : undefined;
          const headers: Record<string, string> = { 'content-type': type ?? 'application/json' };
          if (s && w !== 'no-csrf') headers['x-csrf-token'] = s.csrf;
          if (w === 'bad-cookie') headers.cookie = `errand_session=${"x' OR 1=1"}; __Host-errand=../../etc`;
          const before = await counts();
          const logFrom = tb.logs.length;
          const init: RequestInit = { method, headers, ...(method === 'GET' ? {} : { body }) };
          const res = s
            ? await s.browser.fetch(`${tb.url}${path}`, init)
            : await fetch(`${tb.url}${path}`, { ...init, redirect: 'manual' });
          await check(
            res,
            'oauth',
            {
              secrets: [
                ...secretsOf(f),
                ...(typeof f.password === 'string' && f.password.length > 8 ? [f.password] : []),
              ],
              authenticated: false,
            },
            before,
            logFrom,
          );
        },
      ),
      { ...params, numRuns: RUNS * 2 },
    );
  }, 60_000);

  test('no URL from a token header (jku, x5u, jwk) or registration was ever fetched; the fixtures still work', async () => {
    expect(attackerHits).toBe(0);
    const res = await fetch(`${tb.url}/api/me`, { headers: { cookie: '' } });
    expect(res.status).toBe(401);
    expect((await me.call('GET', '/api/me')).status).toBe(200);
    expect((await admin.call('GET', '/api/admin/keys')).status).toBe(200);
  });
});
