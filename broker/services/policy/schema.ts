/**
 * The Cedar schema of Errand's entities, actions and request context (README "Organisation
 * policies"): what a policy may name and read. Policies are validated against it (Cedar's strict
 * mode) before they can be saved, tested or published; the README prints it in full.
 */
export const CEDAR_NAMESPACE = 'Errand';

export const CEDAR_SCHEMA = `namespace Errand {
  // Roles ("admin", "user") and groups (an administrator's, or the upstream provider's groups claim).
  entity Role;
  entity Group;

  // A person: the one an agent acts for, or the one approving a delegation.
  entity User in [Role, Group] = {
    username: String,
    role: String,
  };

  // What the acting agent's authentication in this request attested (workload identity federation).
  type Workload = {
    issuer?: String,
    subject?: String,
    namespace?: String,
    service_account?: String,
    image_digest?: String,
    repository?: String,
    environment?: String,
  };

  // Any client that acts: an agent, an MCP client, a resource server exchanging for its users.
  entity Agent = {
    name: String,
    kind: String,
    source: String,
    credential: String,
    assurance: Long,
    quarantined: Bool,
    owner?: User,
    trusted_issuer?: String,
    workload: Workload,
  };

  entity Resource = {
    name: String,
    public: Bool,
    min_assurance: Long,
  };

  // A tool (MCP) or skill (A2A) of a resource: Tool::"<resource URL>#<tool name>".
  entity Tool in [Resource] = {
    name: String,
  };

  type Request = {
    user: User,
    agent: Agent,
    actor_chain: Set<String>,
    depth: Long,
    scopes: Set<String>,
    tools: Set<String>,
    task_age: Long,
    request_time: Long,
    utc_hour: Long,
    utc_weekday: Long,
    source_address?: ipaddr,
    dpop_bound: Bool,
    door: String,
  };

  // Every decision a delegation leads to; the built-in default permits this group.
  action delegated;

  action ask_delegation in [delegated] appliesTo { principal: Agent, resource: Resource, context: Request };
  action approve_delegation in [delegated] appliesTo { principal: User, resource: Resource, context: Request };
  action exchange in [delegated] appliesTo { principal: Agent, resource: Resource, context: Request };
  action hand_off in [delegated] appliesTo { principal: Agent, resource: Resource, context: Request };
  action call_tool in [delegated] appliesTo { principal: Agent, resource: Tool, context: Request };

  // Whether a newly registered client starts admitted instead of quarantined.
  action admit appliesTo { principal: Agent, resource: Agent, context: {} };
}
`;

/** The actions a decision can be asked for. */
export const POLICY_ACTIONS = [
  'ask_delegation',
  'approve_delegation',
  'exchange',
  'hand_off',
  'call_tool',
  'admit',
] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** The actions in the `delegated` group (every action but `admit`). */
export const DELEGATED_ACTIONS: ReadonlySet<PolicyAction> = new Set(POLICY_ACTIONS.filter((a) => a !== 'admit'));

/**
 * The policies in force until an administrator publishes a version: everything the delegation
 * rules allow, and no registration admitted by rule.
 */
export const DEFAULT_POLICIES = `// Built-in default: every decision the delegation rules allow is allowed.
// Add forbid policies to narrow it, or replace it with permit policies of your own.
@id("default")
permit (principal, action in Errand::Action::"delegated", resource);
`;

/** Entity type names as Cedar spells them. */
export const ENTITY = {
  user: `${CEDAR_NAMESPACE}::User`,
  agent: `${CEDAR_NAMESPACE}::Agent`,
  resource: `${CEDAR_NAMESPACE}::Resource`,
  tool: `${CEDAR_NAMESPACE}::Tool`,
  role: `${CEDAR_NAMESPACE}::Role`,
  group: `${CEDAR_NAMESPACE}::Group`,
  action: `${CEDAR_NAMESPACE}::Action`,
} as const;
