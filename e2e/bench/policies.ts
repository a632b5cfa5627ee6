/**
 * A realistic organisation policy set of 50 policies for the bench (README "Performance"): the
 * built-in default, rules aimed at other agents and resources (which a request of the bench's
 * agent skips by scope), rules every exchange must evaluate (conditions on the person's groups,
 * the source address, depth, assurance, time of day, DPoP), and rules for other actions.
 */
export const BLOCKED_GROUP = 'bench-blocked';

export function realisticPolicies(agentId: string, resource: string): string {
  const out: string[] = ['@id("default")\npermit (principal, action in Errand::Action::"delegated", resource);'];
  // 20 rules about other agents at other resources.
  for (let i = 0; i < 20; i++) {
    out.push(
      `@id("agent-${i}-no-finance")\nforbid (principal == Errand::Agent::"agt_other_${i}", action in [Errand::Action::"exchange", Errand::Action::"hand_off"], resource == Errand::Resource::"https://finance-${i}.example.test/api");`,
    );
  }
  // 10 rules about other resources, with conditions.
  for (let i = 0; i < 10; i++) {
    out.push(
      `@id("resource-${i}-dpop-only")\nforbid (principal, action == Errand::Action::"exchange", resource == Errand::Resource::"https://hr-${i}.example.test/api")\nunless { context.dpop_bound && principal.assurance >= 2 };`,
    );
  }
  // 10 rules every exchange evaluates.
  out.push(
    `@id("blocked-people")\nforbid (principal, action in Errand::Action::"delegated", resource)\nwhen { context.user in Errand::Group::"${BLOCKED_GROUP}" };`,
    '@id("no-deep-chains")\nforbid (principal, action in [Errand::Action::"exchange", Errand::Action::"hand_off"], resource)\nwhen { context.depth > 3 };',
    '@id("no-unknown-networks")\nforbid (principal, action == Errand::Action::"exchange", resource)\nwhen { context has source_address && context.source_address.isInRange(ip("203.0.113.0/24")) };',
    '@id("quarantined-public-only")\nforbid (principal is Errand::Agent, action == Errand::Action::"exchange", resource)\nwhen { principal.quarantined && !resource.public };',
    '@id("assurance-floor")\nforbid (principal is Errand::Agent, action == Errand::Action::"exchange", resource)\nwhen { principal.assurance < resource.min_assurance };',
    '@id("payroll-office-hours")\nforbid (principal, action == Errand::Action::"exchange", resource)\nwhen { resource.name like "*payroll*" && (context.utc_hour < 6 || context.utc_hour > 20) };',
    '@id("admin-scopes-need-dpop")\nforbid (principal, action == Errand::Action::"exchange", resource)\nwhen { context.scopes.contains("errand:admin") && !context.dpop_bound };',
    '@id("prod-namespace-only")\nforbid (principal is Errand::Agent, action == Errand::Action::"exchange", resource)\nwhen { resource.name like "prod-*" } unless { principal.workload has namespace && principal.workload.namespace == "prod" };',
    '@id("static-secrets-low-risk-only")\nforbid (principal is Errand::Agent, action == Errand::Action::"exchange", resource)\nwhen { principal.credential == "client_secret" && resource.min_assurance > 1 };',
    '@id("long-tasks-review")\nforbid (principal, action == Errand::Action::"exchange", resource)\nwhen { context.task_age > 604800 };',
  );
  // 9 rules for other actions.
  for (let i = 0; i < 3; i++) {
    out.push(
      `@id("ask-limit-${i}")\nforbid (principal == Errand::Agent::"agt_intake_${i}", action == Errand::Action::"ask_delegation", resource);`,
      `@id("approve-limit-${i}")\nforbid (principal in Errand::Group::"contractors-${i}", action == Errand::Action::"approve_delegation", resource == Errand::Resource::"https://finance-${i}.example.test/api");`,
      `@id("tool-limit-${i}")\nforbid (principal, action == Errand::Action::"call_tool", resource == Errand::Tool::"${resource}#delete_${i}")\nwhen { context.depth > 0 };`,
    );
  }
  if (out.length !== 50) throw new Error(`the bench policy set has ${out.length} policies, not 50`);
  // The bench's own agent is named once, so that the set is about it as a real one would be.
  out[1] = `@id("agent-0-no-finance")\nforbid (principal == Errand::Agent::"${agentId}", action in [Errand::Action::"exchange", Errand::Action::"hand_off"], resource == Errand::Resource::"https://finance-0.example.test/api");`;
  return out.join('\n\n');
}
