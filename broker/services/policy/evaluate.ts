import type { EntityJson } from '@cedar-policy/cedar-wasm/nodejs';
import { DELEGATED_ACTIONS, ENTITY, type PolicyAction } from './schema.js';

/**
 * Cedar's evaluation semantics, in process, for the policies Errand compiles (Cedar's own parser and
 * validator produce the policy's JSON form, which is compiled here into closures once). Per request
 * it costs microseconds where a call into Cedar's WebAssembly build costs hundreds, because the
 * request need not be serialised, parsed and checked on every decision (README "Organisation
 * policies"). What it implements is the language as the schema allows it: entity and record
 * attributes, `has`, `like`, `is`, `in` over the entities' parents, sets, Long arithmetic and
 * comparison with overflow checks, `if`, and the `ipaddr` extension. A policy using anything else
 * (other extensions, tags) makes its whole set decided by Cedar itself. A property test holds the
 * two to the same decisions and the same deciding policies.
 */

/** A policy uses something this evaluator does not implement: Cedar decides its set instead. */
export class Unsupported extends Error {}

/** An evaluation error: Cedar skips the policy (it neither permits nor forbids). */
export class PolicyEvalError extends Error {}

export class EntityRef {
  constructor(
    readonly type: string,
    readonly id: string,
  ) {}
  get key(): string {
    return `${this.type}\u0000${this.id}`;
  }
}

export class CedarSet {
  constructor(readonly items: Value[]) {}
}

export class CedarRecord {
  constructor(readonly attrs: Map<string, Value>) {}
}

export class IpAddr {
  constructor(
    readonly v6: boolean,
    /** The address as an integer. */
    readonly addr: bigint,
    readonly prefix: number,
  ) {}
  get width(): number {
    return this.v6 ? 128 : 32;
  }
  /** The first address of the range. */
  network(prefix = this.prefix): bigint {
    const host = BigInt(this.width - prefix);
    return (this.addr >> host) << host;
  }
}

export type Value = boolean | number | string | EntityRef | CedarSet | CedarRecord | IpAddr;

interface StoredEntity {
  attrs: Map<string, Value>;
  ancestors: Set<string>;
}

/** One request: its variables and the entities it brings. */
export interface Env {
  principal: EntityRef;
  action: EntityRef;
  resource: EntityRef;
  context: CedarRecord;
  entities: Map<string, StoredEntity>;
}

type Expr = (env: Env) => Value;

const I64_MAX = 2n ** 63n - 1n;
const I64_MIN = -(2n ** 63n);

function parseIp(text: string): IpAddr {
  const [addr, prefixText, extra] = text.split('/');
  if (addr === undefined || extra !== undefined) throw new PolicyEvalError(`invalid IP address: ${text}`);
  const v6 = addr.includes(':');
  const width = v6 ? 128 : 32;
  let value: bigint;
  if (!v6) {
    const parts = addr.split('.');
    if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255)) {
      throw new PolicyEvalError(`invalid IP address: ${text}`);
    }
    value = parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n);
  } else {
    value = parseIpv6(addr, text);
  }
  let prefix = width;
  if (prefixText !== undefined) {
    if (!/^(0|[1-9]\d{0,2})$/.test(prefixText) || Number(prefixText) > width) {
      throw new PolicyEvalError(`invalid IP prefix: ${text}`);
    }
    prefix = Number(prefixText);
  }
  return new IpAddr(v6, value, prefix);
}

function parseIpv6(addr: string, text: string): bigint {
  // Only the plain hexadecimal forms (no embedded IPv4, no zone): anything else is refused, as
  // Cedar may read it differently.
  if (!/^[0-9a-fA-F:]+$/.test(addr)) throw new Unsupported(`IPv6 form ${text}`);
  const halves = addr.split('::');
  if (halves.length > 2) throw new PolicyEvalError(`invalid IP address: ${text}`);
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0] ?? '');
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || (halves.length === 2 && missing < 1)) {
    throw new PolicyEvalError(`invalid IP address: ${text}`);
  }
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  if (all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) throw new PolicyEvalError(`invalid IP address: ${text}`);
  return all.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

/** A JSON value (entity data, context, a policy literal) as a Cedar value. */
export function fromJson(v: unknown): Value {
  if (typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Unsupported('a non-integer number');
    return v;
  }
  if (Array.isArray(v)) return new CedarSet(v.map(fromJson));
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('__entity' in o) {
      const e = o.__entity as { type: string; id: string };
      return new EntityRef(e.type, e.id);
    }
    if ('__extn' in o) {
      const x = o.__extn as { fn: string; arg?: unknown };
      if (x.fn === 'ip' && typeof x.arg === 'string') return parseIp(x.arg);
      throw new Unsupported(`the extension ${x.fn}`);
    }
    return new CedarRecord(new Map(Object.entries(o).map(([k, x]) => [k, fromJson(x)])));
  }
  throw new Unsupported('a null value');
}

const typeName = (v: Value): string =>
  typeof v === 'boolean'
    ? 'Bool'
    : typeof v === 'number'
      ? 'Long'
      : typeof v === 'string'
        ? 'String'
        : v instanceof EntityRef
          ? 'Entity'
          : v instanceof CedarSet
            ? 'Set'
            : v instanceof CedarRecord
              ? 'Record'
              : 'ipaddr';

function bool(v: Value): boolean {
  if (typeof v !== 'boolean') throw new PolicyEvalError(`expected Bool, got ${typeName(v)}`);
  return v;
}
function long(v: Value): number {
  if (typeof v !== 'number') throw new PolicyEvalError(`expected Long, got ${typeName(v)}`);
  return v;
}
function str(v: Value): string {
  if (typeof v !== 'string') throw new PolicyEvalError(`expected String, got ${typeName(v)}`);
  return v;
}
function entity(v: Value): EntityRef {
  if (!(v instanceof EntityRef)) throw new PolicyEvalError(`expected Entity, got ${typeName(v)}`);
  return v;
}
function set(v: Value): CedarSet {
  if (!(v instanceof CedarSet)) throw new PolicyEvalError(`expected Set, got ${typeName(v)}`);
  return v;
}
function ip(v: Value): IpAddr {
  if (!(v instanceof IpAddr)) throw new PolicyEvalError(`expected ipaddr, got ${typeName(v)}`);
  return v;
}

/** Cedar's `==`: structural, never an error; values of different types are unequal. */
export function equal(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (a instanceof EntityRef) return b instanceof EntityRef && a.type === b.type && a.id === b.id;
  if (a instanceof CedarSet) {
    if (!(b instanceof CedarSet)) return false;
    return (
      a.items.every((x) => b.items.some((y) => equal(x, y))) && b.items.every((y) => a.items.some((x) => equal(x, y)))
    );
  }
  if (a instanceof CedarRecord) {
    if (!(b instanceof CedarRecord) || a.attrs.size !== b.attrs.size) return false;
    for (const [k, v] of a.attrs) {
      const w = b.attrs.get(k);
      if (w === undefined || !equal(v, w)) return false;
    }
    return true;
  }
  if (a instanceof IpAddr) return b instanceof IpAddr && a.v6 === b.v6 && a.addr === b.addr && a.prefix === b.prefix;
  return false;
}

function checked(n: bigint): number {
  if (n > I64_MAX || n < I64_MIN) throw new PolicyEvalError('integer overflow');
  // Beyond 2^53 a JS number would round: refuse rather than answer differently from Cedar.
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new PolicyEvalError('integer outside the exactly representable range');
  }
  return Number(n);
}

/** `a in b`: the same entity, or b among a's ancestors. */
function entityIn(env: Env, a: EntityRef, b: EntityRef): boolean {
  if (a.type === b.type && a.id === b.id) return true;
  return env.entities.get(a.key)?.ancestors.has(b.key) ?? false;
}

function attribute(env: Env, v: Value, attr: string): Value {
  if (v instanceof CedarRecord) {
    const x = v.attrs.get(attr);
    if (x === undefined) throw new PolicyEvalError(`record has no attribute ${attr}`);
    return x;
  }
  if (v instanceof EntityRef) {
    const stored = env.entities.get(v.key);
    if (!stored) throw new PolicyEvalError(`entity ${v.type}::"${v.id}" does not exist`);
    const x = stored.attrs.get(attr);
    if (x === undefined) throw new PolicyEvalError(`entity has no attribute ${attr}`);
    return x;
  }
  throw new PolicyEvalError(`expected an entity or a record, got ${typeName(v)}`);
}

function hasAttribute(env: Env, v: Value, attr: string): boolean {
  if (v instanceof CedarRecord) return v.attrs.has(attr);
  if (v instanceof EntityRef) return env.entities.get(v.key)?.attrs.has(attr) ?? false;
  throw new PolicyEvalError(`expected an entity or a record, got ${typeName(v)}`);
}

function likeMatcher(pattern: unknown[]): (s: string) => boolean {
  const source = pattern
    .map((p) => {
      if (p === 'Wildcard') return '[\\s\\S]*';
      const literal = (p as { Literal?: unknown }).Literal;
      if (typeof literal !== 'string') throw new Unsupported('a like pattern element');
      return literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  const re = new RegExp(`^${source}$`, 'u');
  return (s) => re.test(s);
}

type Node = Record<string, unknown>;

const binary = (n: Node, op: string) => {
  const b = n[op] as { left: unknown; right: unknown };
  return [compile(b.left), compile(b.right)] as const;
};

/** Compiles one expression of Cedar's JSON policy form. */
function compile(node: unknown): Expr {
  const n = node as Node;
  const [op] = Object.keys(n);
  switch (op) {
    case 'Value': {
      const v = fromJson(n.Value);
      return () => v;
    }
    case 'Var': {
      const name = n.Var as 'principal' | 'action' | 'resource' | 'context';
      return (env) => env[name];
    }
    case '!': {
      const a = compile((n['!'] as Node).arg);
      return (env) => !bool(a(env));
    }
    case 'neg': {
      const a = compile((n.neg as Node).arg);
      return (env) => checked(-BigInt(long(a(env))));
    }
    case '==': {
      const [l, r] = binary(n, op);
      return (env) => equal(l(env), r(env));
    }
    case '!=': {
      const [l, r] = binary(n, op);
      return (env) => !equal(l(env), r(env));
    }
    case '<':
    case '<=':
    case '>':
    case '>=': {
      const [l, r] = binary(n, op);
      const cmp = {
        '<': (a: number, b: number) => a < b,
        '<=': (a: number, b: number) => a <= b,
        '>': (a: number, b: number) => a > b,
        '>=': (a: number, b: number) => a >= b,
      }[op];
      return (env) => cmp(long(l(env)), long(r(env)));
    }
    case '+':
    case '-':
    case '*': {
      const [l, r] = binary(n, op);
      const f = {
        '+': (a: bigint, b: bigint) => a + b,
        '-': (a: bigint, b: bigint) => a - b,
        '*': (a: bigint, b: bigint) => a * b,
      }[op];
      return (env) => {
        const a = long(l(env));
        return checked(f(BigInt(a), BigInt(long(r(env)))));
      };
    }
    case '&&': {
      const [l, r] = binary(n, op);
      return (env) => bool(l(env)) && bool(r(env));
    }
    case '||': {
      const [l, r] = binary(n, op);
      return (env) => bool(l(env)) || bool(r(env));
    }
    case 'in': {
      const [l, r] = binary(n, op);
      return (env) => {
        const a = entity(l(env));
        const b = r(env);
        if (b instanceof CedarSet) return b.items.map(entity).some((x) => entityIn(env, a, x));
        return entityIn(env, a, entity(b));
      };
    }
    case 'contains': {
      const [l, r] = binary(n, op);
      return (env) => {
        const s = set(l(env));
        const x = r(env);
        return s.items.some((y) => equal(x, y));
      };
    }
    case 'containsAll':
    case 'containsAny': {
      const [l, r] = binary(n, op);
      return (env) => {
        const a = set(l(env));
        const b = set(r(env));
        const inA = (y: Value) => a.items.some((x) => equal(x, y));
        return op === 'containsAll' ? b.items.every(inA) : b.items.some(inA);
      };
    }
    case 'isEmpty': {
      const a = compile((n.isEmpty as Node).arg);
      return (env) => set(a(env)).items.length === 0;
    }
    case '.': {
      const d = n['.'] as { left: unknown; attr: string };
      const l = compile(d.left);
      return (env) => attribute(env, l(env), d.attr);
    }
    case 'has': {
      const d = n.has as { left: unknown; attr: string | string[] };
      const l = compile(d.left);
      const path = Array.isArray(d.attr) ? d.attr : [d.attr];
      return (env) => {
        let v = l(env);
        for (let i = 0; i < path.length; i++) {
          const attr = path[i] as string;
          if (!hasAttribute(env, v, attr)) return false;
          if (i < path.length - 1) v = attribute(env, v, attr);
        }
        return true;
      };
    }
    case 'like': {
      const d = n.like as { left: unknown; pattern: unknown[] };
      const l = compile(d.left);
      const matches = likeMatcher(d.pattern);
      return (env) => matches(str(l(env)));
    }
    case 'is': {
      const d = n.is as { left: unknown; entity_type: string; in?: unknown };
      const l = compile(d.left);
      const within = d.in === undefined ? null : compile(d.in);
      return (env) => {
        const a = entity(l(env));
        if (a.type !== d.entity_type) return false;
        if (!within) return true;
        const b = within(env);
        if (b instanceof CedarSet) return b.items.map(entity).some((x) => entityIn(env, a, x));
        return entityIn(env, a, entity(b));
      };
    }
    case 'if-then-else': {
      const d = n['if-then-else'] as { if: unknown; then: unknown; else: unknown };
      const c = compile(d.if);
      const t = compile(d.then);
      const e = compile(d.else);
      return (env) => (bool(c(env)) ? t(env) : e(env));
    }
    case 'Set': {
      const items = (n.Set as unknown[]).map(compile);
      return (env) => new CedarSet(items.map((f) => f(env)));
    }
    case 'Record': {
      const fields = Object.entries(n.Record as Node).map(([k, v]) => [k, compile(v)] as const);
      return (env) => new CedarRecord(new Map(fields.map(([k, f]) => [k, f(env)])));
    }
    case 'ip': {
      const [a] = (n.ip as unknown[]).map(compile);
      if (!a) throw new Unsupported('ip() without an argument');
      return (env) => parseIp(str(a(env)));
    }
    case 'isIpv4':
    case 'isIpv6':
    case 'isLoopback':
    case 'isMulticast': {
      const [a] = (n[op] as unknown[]).map(compile);
      if (!a) throw new Unsupported(`${op}() without a receiver`);
      return (env) => {
        const x = ip(a(env));
        if (op === 'isIpv4') return !x.v6;
        if (op === 'isIpv6') return x.v6;
        const range =
          op === 'isLoopback'
            ? x.v6
              ? parseIp('::1/128')
              : parseIp('127.0.0.0/8')
            : x.v6
              ? parseIp('ff00::/8')
              : parseIp('224.0.0.0/4');
        return inRange(x, range);
      };
    }
    case 'isInRange': {
      const [a, b] = (n.isInRange as unknown[]).map(compile);
      if (!a || !b) throw new Unsupported('isInRange() arguments');
      return (env) => inRange(ip(a(env)), ip(b(env)));
    }
    default:
      throw new Unsupported(`the operator ${op}`);
  }
}

/** Whether every address of `a`'s range is in `b`'s range (different versions: never). */
function inRange(a: IpAddr, b: IpAddr): boolean {
  if (a.v6 !== b.v6 || a.prefix < b.prefix) return false;
  return a.network(b.prefix) === b.network();
}

type ScopeJson = {
  op: string;
  entity?: unknown;
  entities?: unknown[];
  entity_type?: string;
  in?: { entity?: unknown };
};

const uidOf = (j: unknown): EntityRef => {
  const v = j as { __entity?: { type: string; id: string }; type?: string; id?: string };
  const u = v.__entity ?? v;
  if (typeof u.type !== 'string' || typeof u.id !== 'string') throw new Unsupported('a scope without an entity');
  return new EntityRef(u.type, u.id);
};

function compileScope(s: ScopeJson, variable: 'principal' | 'action' | 'resource'): (env: Env) => boolean {
  switch (s.op) {
    case 'All':
      return () => true;
    case '==': {
      if (!('entity' in s)) throw new Unsupported('a template slot');
      const e = uidOf(s.entity);
      return (env) => equal(env[variable], e);
    }
    case 'in': {
      if (s.entities) {
        const list = s.entities.map(uidOf);
        return (env) => list.some((e) => entityIn(env, env[variable], e));
      }
      if (!('entity' in s)) throw new Unsupported('a template slot');
      const e = uidOf(s.entity);
      return (env) => entityIn(env, env[variable], e);
    }
    case 'is': {
      const within = s.in?.entity === undefined ? null : uidOf(s.in.entity);
      const type = s.entity_type as string;
      return (env) => env[variable].type === type && (!within || entityIn(env, env[variable], within));
    }
    default:
      throw new Unsupported(`the scope ${s.op}`);
  }
}

/** A compiled policy: whether it is satisfied for a request (throws PolicyEvalError when it errs). */
export type CompiledCondition = (env: Env) => boolean;

/** Compiles a policy's scope and conditions (Cedar's JSON form). Throws Unsupported when it cannot. */
export function compilePolicyJson(json: {
  principal: unknown;
  action: unknown;
  resource: unknown;
  conditions: { kind: 'when' | 'unless'; body: unknown }[];
}): CompiledCondition {
  const scopes = [
    compileScope(json.principal as ScopeJson, 'principal'),
    compileScope(json.action as ScopeJson, 'action'),
    compileScope(json.resource as ScopeJson, 'resource'),
  ];
  const conditions = json.conditions.map((c) => ({ when: c.kind === 'when', body: compile(c.body) }));
  return (env) => scopes.every((s) => s(env)) && conditions.every((c) => bool(c.body(env)) === c.when);
}

/** The action entities and their group (the schema's `in [delegated]`). */
function actionEntities(): [string, StoredEntity][] {
  const group = new EntityRef(ENTITY.action, 'delegated').key;
  return [...DELEGATED_ACTIONS].map((a) => [
    new EntityRef(ENTITY.action, a).key,
    { attrs: new Map(), ancestors: new Set([group]) },
  ]);
}
const ACTION_ENTITIES = actionEntities();

/** The request as the evaluator takes it (entities from the same JSON Cedar would be given). */
export function environment(
  principal: { type: string; id: string },
  action: PolicyAction,
  resource: { type: string; id: string },
  context: Record<string, unknown>,
  entities: EntityJson[],
): Env {
  const stored = new Map<string, StoredEntity>(ACTION_ENTITIES);
  const parents = new Map<string, string[]>();
  for (const e of entities) {
    const uid = uidOf(e.uid);
    stored.set(uid.key, {
      attrs: new Map(Object.entries(e.attrs).map(([k, v]) => [k, fromJson(v)])),
      ancestors: new Set(),
    });
    parents.set(
      uid.key,
      e.parents.map((p) => uidOf(p).key),
    );
  }
  // Ancestors are the transitive closure of parents (only a few levels: roles, groups, resources).
  for (const [key, entityParents] of parents) {
    const ancestors = stored.get(key)!.ancestors;
    const queue = [...entityParents];
    while (queue.length > 0) {
      const next = queue.pop() as string;
      if (ancestors.has(next)) continue;
      ancestors.add(next);
      queue.push(...(parents.get(next) ?? []));
    }
  }
  return {
    principal: new EntityRef(principal.type, principal.id),
    action: new EntityRef(ENTITY.action, action),
    resource: new EntityRef(resource.type, resource.id),
    context: fromJson(context) as CedarRecord,
    entities: stored,
  };
}
