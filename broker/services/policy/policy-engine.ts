import type { Db } from '../../../db/open.js';
import type { AuditStore } from '../../../db/stores/audit-store.js';
import type { ClientStore } from '../../../db/stores/client-store.js';
import type { PolicyHeads, PolicyStore } from '../../../db/stores/policy-store.js';
import type { Denial } from '../../core/denials.js';
import type { Clock } from '../../core/ports.js';
import type { Logger } from '../../log.js';
import {
  type AgentFacts,
  buildEntities,
  contextRecord,
  type PolicyContext,
  type ResourceFacts,
  toolId,
  type UserFacts,
  uid,
} from './entities.js';
import { type CompiledPolicySet, compilePolicies, PolicyDecider, type PolicyProblem } from './policy-set.js';
import { DEFAULT_POLICIES, ENTITY, type PolicyAction } from './schema.js';

export interface PolicyEngineDeps {
  db: Db;
  store: PolicyStore;
  clients: ClientStore;
  audit: AuditStore;
  clock: Clock;
  log: Logger;
  /** How often (seconds) a process looks for a version published or shadowed by another process. */
  refreshInterval: number;
}

export type PolicyPrincipal = { agent: AgentFacts } | { user: UserFacts };
export type PolicyResource =
  | { resource: ResourceFacts }
  | { tool: { resource: ResourceFacts; name: string } }
  | { agent: AgentFacts };

/**
 * One decision to ask the organisation's policies for. The ids of principal and resource are
 * enough to choose the policies that may apply; the facts (`context`, the entities' attributes)
 * are loaded only when a policy with a condition applies.
 */
export interface PolicyRequest {
  action: PolicyAction;
  principal: PolicyPrincipal;
  resource: PolicyResource;
  /** The request context; null only for `admit`. */
  context: PolicyContext | null;
  requestId: string;
}

/** The organisation's answer, with the policies that decided it and the version they belong to. */
export interface PolicyVerdict {
  allowed: boolean;
  /** The policy set version (0: the built-in default). */
  version: number;
  /** Forbids that denied, permits that allowed; empty on a deny means no permit applied. */
  policies: string[];
  errors: PolicyProblem[];
}

interface Loaded {
  version: number;
  decider: PolicyDecider;
}

const principalUid = (p: PolicyPrincipal) =>
  'agent' in p ? uid(ENTITY.agent, p.agent.client.id) : uid(ENTITY.user, p.user.id);

function resourceUid(r: PolicyResource) {
  if ('resource' in r) return uid(ENTITY.resource, r.resource.url);
  if ('tool' in r) return uid(ENTITY.tool, toolId(r.tool.resource.url, r.tool.name));
  return uid(ENTITY.agent, r.agent.client.id);
}

/** Decides a request with one compiled set (the enforced one, a shadow, or a draft under test). */
export function decideWith(
  decider: PolicyDecider,
  version: number,
  req: Omit<PolicyRequest, 'requestId'>,
): PolicyVerdict {
  const answer = decider.decide({
    principal: principalUid(req.principal),
    action: req.action,
    resource: resourceUid(req.resource),
    context: req.context ? contextRecord(req.context) : {},
    entities: buildEntities(req.principal, req.resource, req.context),
  });
  return { version, ...answer };
}

/** The denial a refusing verdict stands for. */
export function policyDenial(v: PolicyVerdict, action: PolicyAction): Denial {
  return { reason: 'policy_denied', action, version: v.version, policies: v.policies };
}

/**
 * The organisation's policies (README "Organisation policies"), asked at every decision point
 * after the delegation rules (never instead of them). Each process holds the published version
 * (or the built-in default) and a version in shadow, parsed once; it looks for newer ones every
 * `refreshInterval` seconds, and at once after a change made through it.
 */
export class PolicyEngine {
  private enforced: Loaded;
  private shadow: Loaded | null = null;
  private heads: PolicyHeads = { published: null, shadow: null };
  /** Loads run one after another; a refresh asked during one runs after it (it may have read old heads). */
  private chain: Promise<void> = Promise.resolve();
  private lazyLoading = false;
  private readonly builtIn: Loaded;

  constructor(private readonly deps: PolicyEngineDeps) {
    const compiled = compilePolicies(DEFAULT_POLICIES);
    if (!compiled.ok) throw new Error(`the built-in policies do not compile: ${compiled.problems[0]?.message}`);
    this.builtIn = { version: 0, decider: new PolicyDecider(compiled.set) };
    this.enforced = this.builtIn;
  }

  /** The enforced version's number and text (the built-in default is version 0). */
  get current(): { version: number; set: CompiledPolicySet; shadow: number | null } {
    return { version: this.enforced.version, set: this.enforced.decider.set, shadow: this.shadow?.version ?? null };
  }

  private timer: NodeJS.Timeout | null = null;

  /**
   * Looks for a version published or shadowed by another process every `refreshInterval` seconds,
   * whether or not requests arrive (a change is in force within that time).
   */
  start(): void {
    this.timer ??= setInterval(() => {
      if (this.lazyLoading) return;
      this.lazyLoading = true;
      this.refresh()
        .catch((err) => this.deps.log.error('policy.refresh_failed', { err }))
        .finally(() => {
          this.lazyLoading = false;
        });
    }, this.deps.refreshInterval * 1000);
    this.timer.unref();
  }

  /** Stops looking; waits for a load in progress (it reads through the database handle). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.chain.catch(() => undefined);
  }

  /** Loads the published and shadow versions if they changed (every process; awaited at start-up). */
  refresh(): Promise<void> {
    const run = this.chain.catch(() => undefined).then(() => this.load());
    this.chain = run;
    return run;
  }

  private async load(): Promise<void> {
    const { store, clock, log } = this.deps;
    const heads = await store.heads();
    if (heads.published !== this.heads.published) {
      this.enforced = heads.published === null ? this.builtIn : await this.compileVersion(heads.published);
    }
    if (heads.shadow !== this.heads.shadow) {
      this.shadow = heads.shadow === null ? null : await this.compileVersion(heads.shadow);
    }
    if (heads.published !== this.heads.published || heads.shadow !== this.heads.shadow) {
      log.info('policy.loaded', { version: this.enforced.version, shadow: this.shadow?.version ?? null });
    }
    this.heads = heads;
  }

  private async compileVersion(version: number): Promise<Loaded> {
    const row = await this.deps.store.get(version);
    const compiled = row ? compilePolicies(row.text) : null;
    // A stored version was validated before it was saved; one that no longer compiles (a schema
    // change in an upgrade) must not silently allow: the process keeps deciding with it refused.
    if (!compiled?.ok) {
      this.deps.log.error('policy.unloadable', { version });
      throw new Error(`policy version ${version} does not compile against this release's schema`);
    }
    return { version, decider: new PolicyDecider(compiled.set) };
  }

  /**
   * Decides a request with the enforced policies. A version in shadow decides it too; where the two
   * differ, the difference is logged and audited (`policy.shadow_decision`) and nothing else happens.
   */
  decide(req: PolicyRequest): PolicyVerdict {
    const verdict = decideWith(this.enforced.decider, this.enforced.version, req);
    if (verdict.errors.length > 0) {
      this.deps.log.warn('policy.evaluation_errors', {
        version: verdict.version,
        action: req.action,
        errors: verdict.errors.map((e) => `${e.policy ?? '-'}: ${e.message}`),
      });
    }
    if (this.shadow) this.compareShadow(this.shadow, req, verdict);
    return verdict;
  }

  /**
   * `decide` for callers whose context costs reads (the person's groups): loaded only when a policy
   * with a condition applies in the enforced or the shadow version.
   */
  async decideLoading(
    req: Omit<PolicyRequest, 'context'>,
    loadContext: () => Promise<PolicyContext>,
  ): Promise<PolicyVerdict> {
    const p = principalUid(req.principal);
    const r = resourceUid(req.resource);
    const known = this.enforced.decider.trivial(p, req.action, r);
    if (known && (!this.shadow || this.shadow.decider.trivial(p, req.action, r))) {
      const verdict = { version: this.enforced.version, ...known };
      if (this.shadow) this.compareShadow(this.shadow, { ...req, context: null }, verdict);
      return verdict;
    }
    return this.decide({ ...req, context: await loadContext() });
  }

  /**
   * Whether deciding for this principal may need the request's facts (the person's groups): a
   * caller that decides inside a transaction reads them before it opens, when this says so.
   */
  mayNeedFacts(principal: PolicyPrincipal): boolean {
    const p = principalUid(principal);
    return this.enforced.decider.hasConditionsFor(p) || (this.shadow?.decider.hasConditionsFor(p) ?? false);
  }

  private compareShadow(shadow: Loaded, req: PolicyRequest, enforced: PolicyVerdict): void {
    const other = decideWith(shadow.decider, shadow.version, req);
    if (other.allowed === enforced.allowed) return;
    const { deps } = this;
    const principal = principalUid(req.principal);
    const resource = resourceUid(req.resource);
    const fields = {
      action: req.action,
      principal: principal.id,
      resource: resource.id,
      enforced_version: enforced.version,
      enforced: enforced.allowed ? 'allow' : 'deny',
      shadow_version: other.version,
      shadow: other.allowed ? 'allow' : 'deny',
      shadow_policies: other.policies,
    };
    deps.log.info('policy.shadow_decision', fields);
    deps.db
      .write((tx) =>
        deps.audit.append(
          {
            type: 'policy.shadow_decision',
            result: other.allowed ? 'allowed' : 'denied',
            userId: req.context?.user.id ?? null,
            clientId: 'agent' in req.principal ? req.principal.agent.client.id : (req.context?.agent.client.id ?? null),
            actorChain: req.context?.actorChain ?? [],
            audience: 'resource' in req.resource ? req.resource.resource.url : null,
            reason: other.allowed ? null : 'policy_denied',
            requestId: req.requestId,
            details: fields,
          },
          deps.clock.now(),
          tx,
        ),
      )
      .catch((err) => deps.log.error('policy.shadow_audit_failed', { err }));
  }

  /** A person's facts for policies (null for an unknown id). */
  async userFacts(userId: string): Promise<UserFacts | null> {
    return this.deps.store.personFacts(userId);
  }

  /** A registered resource's facts for policies (null when it is not registered). */
  async resourceFacts(url: string): Promise<ResourceFacts | null> {
    return this.deps.clients.getResource(url);
  }
}
