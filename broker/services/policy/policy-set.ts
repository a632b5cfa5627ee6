import {
  type AuthorizationAnswer,
  type DetailedError,
  type EntityJson,
  type EntityUidJson,
  policySetTextToParts,
  policyToJson,
  preparsePolicySet,
  preparseSchema,
  statefulIsAuthorized,
  validate,
} from '@cedar-policy/cedar-wasm/nodejs';
import {
  type CompiledCondition,
  compilePolicyJson,
  type Env,
  environment,
  PolicyEvalError,
  Unsupported,
} from './evaluate.js';
import { CEDAR_SCHEMA, DELEGATED_ACTIONS, ENTITY, type PolicyAction } from './schema.js';

/** What is wrong with a policy set, per policy where Cedar says which. */
export interface PolicyProblem {
  /** The policy's `@id`, or null for a problem of the whole text (a syntax error). */
  policy: string | null;
  message: string;
  help?: string;
}

type Uid = { type: string; id: string };

/** A policy's scope (principal, action, resource), read once so requests it cannot match skip it. */
type ScopeConstraint =
  | { op: 'all' }
  | { op: 'eq'; uid: Uid }
  /** `is T`, or `is T in E` (`within`: the hierarchy decides the rest, as for `in`). */
  | { op: 'is'; type: string; within: boolean }
  /** `in` an entity or a set of actions: decided by the hierarchy, so only actions are checked here. */
  | { op: 'in'; uids: Uid[] };

interface CompiledPolicy {
  id: string;
  effect: 'permit' | 'forbid';
  principal: ScopeConstraint;
  action: ScopeConstraint;
  resource: ScopeConstraint;
  /**
   * No `when`/`unless`, and a principal and resource scope that matching ids decide (no `in`,
   * which needs the entities' parents): whether it applies is known from the request's ids alone.
   */
  unconditional: boolean;
  /** The policy compiled for the in-process evaluator; null when it uses what that does not implement. */
  check: CompiledCondition | null;
}

/** A validated, parsed policy set, ready to decide. */
export interface CompiledPolicySet {
  /** A key unique to this text in this process (Cedar's parse cache is keyed by it). */
  key: string;
  text: string;
  policies: CompiledPolicy[];
  /** The policy texts by id, as handed to Cedar. */
  byId: Record<string, string>;
  /** Every policy compiled for the in-process evaluator (otherwise Cedar's WebAssembly build decides). */
  native: boolean;
}

export type CompileResult = { ok: true; set: CompiledPolicySet } | { ok: false; problems: PolicyProblem[] };

/** One authorization request, as Cedar takes it. */
export interface CedarRequest {
  principal: Uid;
  action: PolicyAction;
  resource: Uid;
  context: Record<string, unknown>;
  entities: EntityJson[];
}

/** Cedar's answer: the decision and the policies that determined it (forbids on a deny, permits on an allow). */
export interface CedarAnswer {
  allowed: boolean;
  policies: string[];
  /** Policies that could not be evaluated for this request (Cedar skips them: a forbid that errs does not deny). */
  errors: PolicyProblem[];
}

const SCHEMA_KEY = 'errand';
let schemaParsed = false;

/** The schema in Cedar's parse cache: it gives requests the action hierarchy (`action in …"delegated"`). */
function schemaKey(): string {
  if (!schemaParsed) {
    const parsed = preparseSchema(SCHEMA_KEY, CEDAR_SCHEMA);
    if (parsed.type === 'failure') throw new Error(`the Cedar schema does not parse: ${parsed.errors[0]?.message}`);
    schemaParsed = true;
  }
  return SCHEMA_KEY;
}

const MAX_POLICIES = 1000;
const MAX_SUBSETS = 2000;
let keySeq = 0;

const problemOf = (policy: string | null, e: DetailedError): PolicyProblem => ({
  policy,
  message: e.message,
  ...(e.help ? { help: e.help } : {}),
});

function uidOf(json: unknown): Uid | null {
  const v = json as { __entity?: Uid } & Partial<Uid>;
  const u = v?.__entity ?? v;
  return typeof u?.type === 'string' && typeof u?.id === 'string' ? { type: u.type, id: u.id } : null;
}

function scopeOf(c: Record<string, unknown>): ScopeConstraint {
  if (c.op === '==') {
    const uid = uidOf(c.entity);
    return uid ? { op: 'eq', uid } : { op: 'all' };
  }
  if (c.op === 'is') return { op: 'is', type: String(c.entity_type), within: c.in !== undefined };
  if (c.op === 'in') {
    const list = Array.isArray(c.entities) ? c.entities : [c.entity];
    return { op: 'in', uids: list.map(uidOf).filter((u): u is Uid => u !== null) };
  }
  return { op: 'all' };
}

/**
 * Parses and validates a policy set against the schema (Cedar's strict validation). Each policy's
 * id is its `@id("…")` annotation, or `policy<N>` by position; ids must be unique.
 */
export function compilePolicies(text: string): CompileResult {
  const parts = policySetTextToParts(text);
  if (parts.type === 'failure') return { ok: false, problems: parts.errors.map((e) => problemOf(null, e)) };
  if (parts.policy_templates.length > 0) {
    return {
      ok: false,
      problems: [
        { policy: null, message: 'templates (policies with ?principal or ?resource slots) are not supported' },
      ],
    };
  }
  if (parts.policies.length > MAX_POLICIES) {
    return { ok: false, problems: [{ policy: null, message: `a policy set holds at most ${MAX_POLICIES} policies` }] };
  }
  const problems: PolicyProblem[] = [];
  const policies: CompiledPolicy[] = [];
  const byId: Record<string, string> = {};
  parts.policies.forEach((policyText, i) => {
    const json = policyToJson(policyText);
    if (json.type === 'failure') {
      problems.push(...json.errors.map((e) => problemOf(`policy${i}`, e)));
      return;
    }
    const id = json.json.annotations?.id ?? `policy${i}`;
    if (byId[id] !== undefined) {
      problems.push({ policy: id, message: `two policies have the id "${id}"` });
      return;
    }
    byId[id] = policyText;
    const p = json.json as unknown as Record<'principal' | 'action' | 'resource', Record<string, unknown>> & {
      conditions: unknown[];
    };
    const principal = scopeOf(p.principal);
    const resource = scopeOf(p.resource);
    let check: CompiledCondition | null = null;
    try {
      check = compilePolicyJson(json.json as Parameters<typeof compilePolicyJson>[0]);
    } catch (err) {
      if (!(err instanceof Unsupported)) throw err;
    }
    policies.push({
      id,
      effect: json.json.effect,
      principal,
      action: scopeOf(p.action),
      resource,
      unconditional: p.conditions.length === 0 && [principal, resource].every(decidedById),
      check,
    });
  });
  if (problems.length > 0) return { ok: false, problems };
  const checked = validate({
    schema: CEDAR_SCHEMA,
    policies: { staticPolicies: byId },
    validationSettings: { mode: 'strict' },
  });
  if (checked.type === 'failure') return { ok: false, problems: checked.errors.map((e) => problemOf(null, e)) };
  if (checked.validationErrors.length > 0) {
    return { ok: false, problems: checked.validationErrors.map((e) => problemOf(e.policyId, e.error)) };
  }
  const key = `set${++keySeq}`;
  const parsed = preparsePolicySet(key, { staticPolicies: byId });
  if (parsed.type === 'failure') return { ok: false, problems: parsed.errors.map((e) => problemOf(null, e)) };
  return { ok: true, set: { key, text, policies, byId, native: policies.every((p) => p.check !== null) } };
}

/** Whether a principal or resource scope is decided by the request's ids (no hierarchy involved). */
const decidedById = (c: ScopeConstraint) => c.op === 'all' || c.op === 'eq' || (c.op === 'is' && !c.within);

function scopeMatches(c: ScopeConstraint, uid: Uid, isAction = false): boolean {
  switch (c.op) {
    case 'all':
      return true;
    case 'eq':
      return c.uid.type === uid.type && c.uid.id === uid.id;
    case 'is':
      return c.type === uid.type;
    case 'in':
      // Actions: the hierarchy is the schema's (one group). Principals and resources: the
      // entities' parents decide, which only Cedar knows; the policy is kept.
      return (
        !isAction ||
        c.uids.some((a) => a.id === uid.id || (a.id === 'delegated' && DELEGATED_ACTIONS.has(uid.id as PolicyAction)))
      );
  }
}

/**
 * Cedar's decision over the policies, evaluated in process: any satisfied forbid denies (naming
 * every satisfied forbid), else any satisfied permit allows (naming them), else deny; a policy that
 * errs is skipped and reported. Null when the request holds a value the evaluator does not read.
 */
function evaluateNatively(policies: CompiledPolicy[], req: CedarRequest): CedarAnswer | null {
  let env: Env;
  try {
    env = environment(req.principal, req.action, req.resource, req.context, req.entities);
  } catch (err) {
    if (err instanceof Unsupported) return null;
    throw err;
  }
  const forbids: string[] = [];
  const permits: string[] = [];
  const errors: PolicyProblem[] = [];
  for (const p of policies) {
    try {
      if ((p.check as CompiledCondition)(env)) (p.effect === 'forbid' ? forbids : permits).push(p.id);
    } catch (err) {
      if (err instanceof PolicyEvalError) errors.push({ policy: p.id, message: err.message });
      else if (err instanceof Unsupported) return null;
      else throw err;
    }
  }
  if (forbids.length > 0) return { allowed: false, policies: forbids, errors };
  return { allowed: permits.length > 0, policies: permits, errors };
}

function trivialAnswer(applicable: CompiledPolicy[]): CedarAnswer | null {
  if (applicable.length === 0) return { allowed: false, policies: [], errors: [] };
  if (applicable.every((p) => p.effect === 'permit' && p.unconditional)) {
    return { allowed: true, policies: applicable.map((p) => p.id), errors: [] };
  }
  return null;
}

/**
 * Decides one request. Policies whose scope cannot match the request are left out before Cedar
 * sees it (they could not apply: a scope is part of a policy's condition), and when what is left
 * is unconditional permits only, the answer is known without evaluating. Cedar parses each distinct
 * subset once (kept by id in its cache).
 */
export class PolicyDecider {
  private readonly subsets = new Map<string, string>();

  constructor(readonly set: CompiledPolicySet) {}

  /** The policies whose scope may match a request. */
  private applicable(principal: Uid, action: PolicyAction, resource: Uid): CompiledPolicy[] {
    const a = { type: ENTITY.action, id: action };
    return this.set.policies.filter(
      (p) =>
        scopeMatches(p.principal, principal) && scopeMatches(p.action, a, true) && scopeMatches(p.resource, resource),
    );
  }

  /** Whether a policy with a condition (or an `in` scope) may apply to this principal, for any action and resource. */
  hasConditionsFor(principal: Uid): boolean {
    return this.set.policies.some((p) => !p.unconditional && scopeMatches(p.principal, principal));
  }

  /**
   * The answer when the scopes alone decide it (no policy applies, or only unconditional permits),
   * without any entity or context; null when a policy with a condition applies.
   */
  trivial(principal: Uid, action: PolicyAction, resource: Uid): CedarAnswer | null {
    return trivialAnswer(this.applicable(principal, action, resource));
  }

  decide(req: CedarRequest): CedarAnswer {
    const applicable = this.applicable(req.principal, req.action, req.resource);
    const known = trivialAnswer(applicable);
    if (known) return known;
    if (this.set.native) {
      const answer = evaluateNatively(applicable, req);
      if (answer) return answer;
    }
    const action = { type: ENTITY.action, id: req.action };
    const answer: AuthorizationAnswer = statefulIsAuthorized({
      principal: req.principal,
      action,
      resource: req.resource,
      context: req.context as never,
      entities: req.entities,
      preparsedPolicySetId: this.subset(applicable),
      preparsedSchemaName: schemaKey(),
      // The request is built by Errand from its own records: checked by the schema once in tests,
      // not on every decision.
      validateRequest: false,
    });
    if (answer.type === 'failure') {
      // The request itself could not be read (an entity or context Cedar refuses): fail closed.
      return { allowed: false, policies: [], errors: answer.errors.map((e) => problemOf(null, e)) };
    }
    const { decision, diagnostics } = answer.response;
    return {
      allowed: decision === 'allow',
      policies: diagnostics.reason,
      errors: diagnostics.errors.map((e) => problemOf(e.policyId, e.error)),
    };
  }

  /** The parse-cache key of a subset of the policies, parsed on first use. */
  private subset(policies: CompiledPolicy[]): string {
    if (policies.length === this.set.policies.length) return this.set.key;
    const ids = policies.map((p) => p.id).join('\u0000');
    let key = this.subsets.get(ids);
    // Bounded: past that many distinct subsets, the whole set decides (same answer, slower).
    if (!key && this.subsets.size >= MAX_SUBSETS) return this.set.key;
    if (!key) {
      // Named by its ids, so deciders sharing a set (the engine's, a test run's) share the parse.
      key = `${this.set.key}|${ids}`;
      const byId: Record<string, string> = {};
      for (const p of policies) byId[p.id] = this.set.byId[p.id] as string;
      const parsed = preparsePolicySet(key, { staticPolicies: byId });
      if (parsed.type === 'failure') throw new Error(`policy subset failed to parse: ${parsed.errors[0]?.message}`);
      this.subsets.set(ids, key);
    }
    return key;
  }
}

export type { EntityJson, EntityUidJson };
