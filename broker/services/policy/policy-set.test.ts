import { isAuthorized } from '@cedar-policy/cedar-wasm/nodejs';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Client } from '../../core/client.js';
import { buildEntities, contextRecord, type PolicyContext } from './entities.js';
import { decideWith } from './policy-engine.js';
import { compilePolicies, PolicyDecider } from './policy-set.js';
import { PolicyTestsSchema, runPolicyTests } from './policy-tests.js';
import { CEDAR_SCHEMA, DEFAULT_POLICIES, ENTITY, type PolicyAction } from './schema.js';

const compiled = (text: string) => {
  const r = compilePolicies(text);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.set;
};

describe('compiling a policy set', () => {
  test('the built-in default compiles, with its id', () => {
    expect(compiled(DEFAULT_POLICIES).policies.map((p) => p.id)).toEqual(['default']);
  });

  test("a syntax error is refused with Cedar's message", () => {
    const r = compilePolicies('permit (principal, action, resource) when { ');
    expect(r.ok).toBe(false);
    expect(r.ok ? [] : r.problems[0]?.message).toBeTruthy();
  });

  test('a policy that does not fit the schema is refused, naming it', () => {
    const r = compilePolicies(
      '@id("typo") forbid (principal is Errand::Agent, action == Errand::Action::"exchange", resource) when { principal.namespace == "x" };',
    );
    expect(r.ok).toBe(false);
    expect(r.ok ? null : r.problems[0]?.policy).toBe('typo');
  });

  test('an unknown action or entity type is refused', () => {
    expect(compilePolicies('permit (principal, action == Errand::Action::"delete_everything", resource);').ok).toBe(
      false,
    );
    expect(compilePolicies('permit (principal is Errand::Robot, action, resource);').ok).toBe(false);
  });

  test('two policies with one id are refused', () => {
    const r = compilePolicies(
      '@id("a") permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);',
    );
    expect(r.ok ? null : r.problems[0]?.message).toContain('two policies have the id "a"');
  });

  test('templates are refused with a clear message', () => {
    const r = compilePolicies('permit (principal == ?principal, action, resource);');
    expect(r.ok ? null : r.problems[0]?.message).toContain('templates');
  });
});

// ---- Leaving out policies whose scope cannot match changes no decision -------------------------

const AGENTS = ['agt_a', 'agt_b', 'agt_c'];
const USERS = ['usr_1', 'usr_2'];
const RESOURCES = ['https://r1.example', 'https://r2.example'];
const GROUPS = ['g1', 'g2'];
const ACTIONS: PolicyAction[] = ['ask_delegation', 'exchange', 'hand_off', 'approve_delegation', 'call_tool'];

const principalArb = fc.oneof(
  fc.constant('principal'),
  fc.constantFrom(...AGENTS).map((a) => `principal == ${ENTITY.agent}::"${a}"`),
  fc.constantFrom(...USERS).map((u) => `principal == ${ENTITY.user}::"${u}"`),
  fc.constant(`principal is ${ENTITY.agent}`),
  fc.constant(`principal is ${ENTITY.user}`),
  fc.constantFrom(...GROUPS).map((g) => `principal in ${ENTITY.group}::"${g}"`),
  fc.constantFrom(...GROUPS).map((g) => `principal is ${ENTITY.user} in ${ENTITY.group}::"${g}"`),
);
const actionArb = fc.oneof(
  fc.constant('action'),
  fc.constantFrom(...ACTIONS).map((a) => `action == ${ENTITY.action}::"${a}"`),
  fc.constant(`action in ${ENTITY.action}::"delegated"`),
  fc
    .subarray(ACTIONS, { minLength: 1, maxLength: 3 })
    .map((as) => `action in [${as.map((a) => `${ENTITY.action}::"${a}"`).join(', ')}]`),
);
const resourceArb = fc.oneof(
  fc.constant('resource'),
  fc.constantFrom(...RESOURCES).map((r) => `resource == ${ENTITY.resource}::"${r}"`),
  fc.constantFrom(...RESOURCES).map((r) => `resource in ${ENTITY.resource}::"${r}"`),
  fc.constant(`resource is ${ENTITY.tool}`),
  fc.constantFrom(...RESOURCES).map((r) => `resource is ${ENTITY.tool} in ${ENTITY.resource}::"${r}"`),
);
const conditionArb = fc.constantFrom(
  '',
  ' when { resource is Errand::Resource && resource.name like "r1*" }',
  ' when { principal is Errand::Agent && principal.name like "*_b" }',
  ' when { principal has workload.namespace && principal.workload.namespace == "prod" }',
  ' unless { principal is Errand::Agent && principal.workload has namespace }',
  ' when { principal is Errand::Agent && principal.owner == context.user }',
  ' when { principal is Errand::Agent && principal.owner.username == "u" }',
  ' when { (if context.dpop_bound then context.depth + 1 else context.depth * 2) >= 2 }',
  ' when { context.scopes.containsAny(["write", "admin"]) && !context.scopes.isEmpty() }',
  ' when { context.scopes.containsAll(["read", "write"]) || context.depth - 1 < -0 }',
  ' when { {a: context.depth, b: [1, 2]} == {b: [2, 1], a: 0} }',
  ' when { context.actor_chain.contains("agt_b") && context.door != "mcp" }',
  ' when { context.user in [Errand::Group::"g2", Errand::Role::"admin"] }',
  ' when { resource is Errand::Resource && principal is Errand::Agent && (resource.public || resource.min_assurance > principal.assurance) }',
  ' when { context.utc_hour < 6 || context.utc_weekday == 0 }',
  ' when { context has source_address && context.source_address.isLoopback() }',
  ' when { context has source_address && (context.source_address.isIpv4() || ip("::1").isInRange(ip("::/0"))) }',
  ' when { context has source_address && ip("10.0.0.0/8") == context.source_address }',
  ' when { context.user.username like "*s*r*" }',
  ' when { context.agent.quarantined }',
  ' when { context.depth > 0 }',
  ' when { context.user in Errand::Group::"g1" }',
  ' unless { context.dpop_bound }',
  ' when { context.scopes.contains("write") }',
  ' when { context has source_address && context.source_address.isInRange(ip("10.0.0.0/8")) }',
);
const policyArb = fc
  .tuple(fc.constantFrom('permit', 'forbid'), principalArb, actionArb, resourceArb, conditionArb)
  .map(([effect, p, a, r, c]) => `${effect} (${p}, ${a}, ${r})${c};`);

function client(id: string, ownerId: string | null = null): Client {
  return {
    id,
    kind: 'agent',
    name: id,
    ownerId,
    source: 'admin',
    status: 'active',
    authMethod: 'private_key_jwt',
    secretHash: null,
    jwks: null,
    jwksUri: null,
    redirectUris: [],
    grantTypes: [],
    scope: null,
    resources: [],
    applicationType: null,
    metadata: {},
    createdAt: 0,
    lastUsedAt: null,
    expiresAt: null,
    cachedUntil: null,
  };
}

const requestArb = fc.record({
  agent: fc.constantFrom(...AGENTS),
  user: fc.constantFrom(...USERS),
  groups: fc.subarray(GROUPS),
  action: fc.constantFrom(...ACTIONS),
  resource: fc.constantFrom(...RESOURCES),
  depth: fc.integer({ min: 0, max: 3 }),
  dpop: fc.boolean(),
  scopes: fc.subarray(['read', 'write']),
  address: fc.constantFrom(null, '10.1.2.3', '192.0.2.1', '127.0.0.1', '::1', '2001:db8::7', '::ffff:10.0.0.9'),
  owned: fc.boolean(),
  namespace: fc.constantFrom(null, 'prod', 'dev'),
  public: fc.boolean(),
  assurance: fc.constantFrom(null, 'NHI-AAL1', 'NHI-AAL3'),
  minAssurance: fc.constantFrom(null, 'NHI-AAL2'),
  now: fc.constantFrom(1_800_000_000, 1_800_030_000, 1_800_300_000),
});

describe('choosing the policies that may apply', () => {
  test('the decision and the deciding policies are those of Cedar over the whole set', () => {
    // Sets that validate, and decisions Cedar made by evaluating a condition (not by scope alone).
    let valid = 0;
    let evaluated = 0;
    fc.assert(
      fc.property(fc.array(policyArb, { minLength: 1, maxLength: 12 }), requestArb, (texts, r) => {
        const text = texts.map((t, i) => `@id("p${i}")\n${t}`).join('\n');
        const result = compilePolicies(text);
        fc.pre(result.ok);
        if (!result.ok) return;
        valid++;
        expect(result.set.native).toBe(true);
        const user = { id: r.user, username: r.user, role: 'user' as const, groups: r.groups };
        const agent = {
          client: client(r.agent, r.owned ? r.user : null),
          assurance: r.assurance as 'NHI-AAL1' | null,
          workload: r.namespace ? { issuer: 'https://k8s', subject: 'system:sa', namespace: r.namespace } : null,
        };
        const resource = {
          url: r.resource,
          name: r.resource,
          minAssurance: r.minAssurance as 'NHI-AAL2' | null,
          public: r.public,
        };
        const context: PolicyContext = {
          user,
          agent,
          actorChain: [r.agent],
          depth: r.depth,
          scopes: r.scopes,
          tools: [],
          taskAge: 0,
          now: r.now,
          address: r.address,
          dpopBound: r.dpop,
          door: 'token',
        };
        const req = {
          action: r.action,
          principal: r.action === 'approve_delegation' ? { user } : { agent },
          resource: r.action === 'call_tool' ? { tool: { resource, name: 'send' } } : { resource },
          context,
        };
        const ours = decideWith(new PolicyDecider(result.set), 1, req);
        const principal =
          r.action === 'approve_delegation' ? { type: ENTITY.user, id: r.user } : { type: ENTITY.agent, id: r.agent };
        const res =
          r.action === 'call_tool'
            ? { type: ENTITY.tool, id: `${r.resource}#send` }
            : { type: ENTITY.resource, id: r.resource };
        const full = isAuthorized({
          principal,
          action: { type: ENTITY.action, id: r.action },
          resource: res,
          context: contextRecord(context) as never,
          schema: CEDAR_SCHEMA,
          validateRequest: false,
          policies: { staticPolicies: result.set.byId },
          entities: buildEntities(req.principal, req.resource, context),
        });
        if (full.type !== 'success') throw new Error(JSON.stringify(full.errors));
        if (full.response.diagnostics.reason.some((id) => !result.set.policies.find((p) => p.id === id)?.unconditional))
          evaluated++;
        expect(ours.allowed).toBe(full.response.decision === 'allow');
        expect([...ours.policies].sort()).toEqual([...full.response.diagnostics.reason].sort());
      }),
      { numRuns: 400 },
    );
    expect(valid).toBeGreaterThan(200);
    expect(evaluated).toBeGreaterThan(20);
  });
});

describe('policy tests', () => {
  const text = `${DEFAULT_POLICIES}
@id("prod-only-from-prod")
forbid (principal is Errand::Agent, action == Errand::Action::"exchange", resource == Errand::Resource::"https://prod.example")
unless { principal.workload has namespace && principal.workload.namespace == "prod" };`;
  const tests = PolicyTestsSchema.parse([
    {
      name: 'a prod workload reaches prod',
      action: 'exchange',
      agent: { id: 'agt_1', credential: 'workload_federation', workload: { namespace: 'prod' } },
      user: { id: 'usr_1' },
      resource: { url: 'https://prod.example' },
      expect: 'allow',
    },
    {
      name: 'a laptop does not',
      action: 'exchange',
      agent: { id: 'agt_1' },
      user: { id: 'usr_1' },
      resource: { url: 'https://prod.example' },
      expect: 'allow',
    },
  ]);

  test('each test passes or fails with the deciding policies', () => {
    const run = runPolicyTests(text, tests, 1_800_000_000);
    expect(run).toMatchObject({ ok: true, passed: 1, failed: 1 });
    if (!run.ok) return;
    expect(run.results[1]).toMatchObject({
      passed: false,
      expect: 'allow',
      actual: 'deny',
      policies: ['prod-only-from-prod'],
    });
  });

  test('a text that does not validate gives its problems instead of results', () => {
    expect(runPolicyTests('permit (principal, action, resource', tests, 0)).toMatchObject({ ok: false });
  });

  test('call_tool needs a tool', () => {
    const parsed = PolicyTestsSchema.safeParse([
      {
        name: 'x',
        action: 'call_tool',
        agent: { id: 'a' },
        user: { id: 'u' },
        resource: { url: 'https://r' },
        expect: 'deny',
      },
    ]);
    expect(parsed.success).toBe(false);
  });
});
