import { z } from 'zod';
import {
  CreateClientSchema,
  CreateResourceSchema,
  CreateUserSchema,
  UpdateClientSchema,
} from '../../services/admin.js';

import { ClientListQuerySchema } from '../../services/admission.js';
import { ReduceDelegationSchema } from '../../services/agent-lifecycle.js';

import {
  AuditEventViewSchema,
  ClientViewSchema,
  CreatedClientSchema,
  DelegationViewSchema,
  ExchangeRuleViewSchema,
  InitialAccessTokenViewSchema,
  IssuedInitialAccessTokenSchema,
  KeyRotationViewSchema,
  KeyViewSchema,
  PeerViewSchema,
  ResourceViewSchema,
  SessionViewSchema,
  SignInSchema,
  TaskTreeViewSchema,
  TaskViewSchema,
  TrustedIssuerViewSchema,
  UserViewSchema,
} from '../../services/api-views.js';
import { AttestSchema, ExportQuerySchema, OpenCampaignSchema } from '../../services/certification.js';
import { ReplaceClientKeysSchema } from '../../services/client-admin.js';
import { ApprovalSchema } from '../../services/delegations.js';
import { ExchangeRulesSchema } from '../../services/exchange-rules.js';
import { FindingViewSchema } from '../../services/findings.js';
import { CreateInitialAccessTokenSchema } from '../../services/initial-access-tokens.js';
import {
  CampaignDetailViewSchema,
  CampaignExportViewSchema,
  CampaignViewSchema,
  CertificationItemViewSchema,
  ClientUsageViewSchema,
  ClosedCampaignViewSchema,
  ReducedDelegationViewSchema,
} from '../../services/lifecycle-views.js';
import { AdminDelegationQuerySchema, AdminTaskQuerySchema } from '../../services/oversight.js';
import { ChangePasswordSchema, ResetPasswordSchema, UpdateUserSchema } from '../../services/people.js';
import {
  AuthzenDecisionSchema,
  AuthzenEvaluationSchema,
  AuthzenEvaluationsResponseSchema,
  AuthzenEvaluationsSchema,
  AuthzenMetadataSchema,
} from '../../services/policy/authzen.js';
import {
  AgentAccessQuerySchema,
  AgentAccessViewSchema,
  ResourceAccessQuerySchema,
  ResourceAccessViewSchema,
} from '../../services/policy/explorer.js';
import { CheckPolicySchema, PolicyStatusSchema, SavePolicySchema } from '../../services/policy/policy-admin.js';
import {
  PolicyCheckViewSchema,
  PolicyVersionListViewSchema,
  PolicyVersionViewSchema,
  ShadowDecisionsQuerySchema,
  ShadowDecisionsViewSchema,
} from '../../services/policy/policy-views.js';
import { SetUserGroupsSchema, UserGroupsViewSchema } from '../../services/policy/user-groups.js';
import { UpdateResourceSchema } from '../../services/resources.js';
import { CreateTrustedIssuerSchema, UpdateTrustedIssuerSchema } from '../../services/trusted-issuers.js';
import { UsageQuerySchema } from '../../services/usage.js';
import { AuditQuerySchema } from '../api.js';
import { RefreshPeerSchema, RegisterPeerSchema } from './peers.js';
import { DelegationStatusQuerySchema } from './user-api.js';

/**
 * Every `/api/*` endpoint, one line each, for the OpenAPI document (openapi-document.ts, README "Admin
 * API"). A test compares this list with the routes the real app registers: a new endpoint fails it
 * until its line is here.
 */

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface ApiOperation {
  method: Method;
  /** Hono syntax (`/api/admin/clients/:id`). */
  path: string;
  /** Unique, camelCase: the OpenAPI operationId. */
  id: string;
  summary: string;
  /**
   * admin: session + CSRF or an errand:admin token; user: session + CSRF; public: nothing;
   * resource_server: a resource-server client's credentials (the AuthZEN API).
   */
  access: 'admin' | 'user' | 'public' | 'resource_server';
  body?: z.ZodType;
  /** The body may be left out entirely. */
  bodyOptional?: boolean;
  query?: z.ZodObject;
  /** Success status (200 unless said). */
  status?: 200 | 201 | 202 | 204;
  /** The success body; absent for 204. */
  response?: z.ZodType;
}

type Extra = Omit<ApiOperation, 'method' | 'path' | 'id' | 'summary' | 'access'>;

type Route = `${Method} /api/${string}` | `POST /access/v1/${string}` | `GET /.well-known/${string}`;

function op(route: Route, id: string, summary: string, extra: Extra = {}): ApiOperation {
  const [method, path] = route.split(' ') as [Method, string];
  const access = path.startsWith('/api/admin')
    ? 'admin'
    : path.startsWith('/api/me')
      ? 'user'
      : path.startsWith('/access/')
        ? 'resource_server'
        : 'public';
  return { method, path, id, summary, access, ...extra };
}

/** The person's and the agent's names beside their ids (null when the account or client is gone). */
const NAMES = { user_name: z.string().nullable(), agent_name: z.string().nullable() };

const list = (key: string, item: z.ZodType) => z.object({ [key]: z.array(item) }).strict();

export const API_OPERATIONS: readonly ApiOperation[] = [
  // Sign-in for scripts and the document itself.
  op('POST /api/session', 'signIn', 'Sign in: sets the session cookie, returns the CSRF token', {
    body: SignInSchema,
    response: SessionViewSchema,
  }),
  op('GET /api/openapi.json', 'getOpenApi', 'This OpenAPI document', { response: z.record(z.string(), z.unknown()) }),

  // Clients (agents, MCP clients, resource servers, admin services).
  op('GET /api/admin/clients', 'listClients', 'List clients', {
    query: ClientListQuerySchema,
    response: list('clients', ClientViewSchema),
  }),
  op('POST /api/admin/clients', 'createClient', 'Register a client', {
    body: CreateClientSchema,
    status: 201,
    response: CreatedClientSchema,
  }),
  op('GET /api/admin/clients/:id', 'getClient', 'A client', { response: ClientViewSchema }),
  op('PATCH /api/admin/clients/:id', 'updateClient', 'Rename, re-own, disable or enable a client', {
    body: UpdateClientSchema,
    response: ClientViewSchema,
  }),
  op('DELETE /api/admin/clients/:id', 'deleteClient', 'Delete a client: its tasks end, its tokens die', {
    status: 204,
  }),
  op('PUT /api/admin/clients/:id/keys', 'replaceClientKeys', "Replace a private_key_jwt client's keys", {
    body: ReplaceClientKeysSchema,
    response: ClientViewSchema,
  }),
  op('POST /api/admin/clients/:id/approve', 'approveClient', 'Approve a self-registered agent', {
    response: ClientViewSchema,
  }),
  op('POST /api/admin/clients/:id/reject', 'rejectClient', 'Reject a self-registered agent', {
    response: ClientViewSchema,
  }),
  op('POST /api/admin/clients/:id/admit', 'admitClient', 'Admit a quarantined client to non-public resources', {
    response: ClientViewSchema,
  }),
  op('GET /api/admin/findings', 'listFindings', 'Static secrets, agents without owner, clients awaiting admission', {
    response: list('findings', FindingViewSchema),
  }),
  op('PUT /api/admin/clients/:id/exchange-rules', 'setExchangeRules', "Set a resource server's on-behalf-of rules", {
    body: ExchangeRulesSchema,
    response: z.object({ client_id: z.string(), exchange_rules: z.array(ExchangeRuleViewSchema) }).strict(),
  }),

  // Tasks and delegations across users.
  op('GET /api/admin/tasks', 'listAllTasks', "Every person's tasks, with names", {
    query: AdminTaskQuerySchema,
    response: list('tasks', TaskViewSchema.extend(NAMES)),
  }),
  op('GET /api/admin/delegations', 'listAllDelegations', "Every person's delegations, with names", {
    query: AdminDelegationQuerySchema,
    response: list('delegations', DelegationViewSchema.extend(NAMES)),
  }),
  op('POST /api/admin/tasks/:id/end', 'endTaskAsAdmin', 'End a task and its sub-tasks', { response: TaskViewSchema }),
  op('POST /api/admin/delegations/:id/revoke', 'revokeDelegationAsAdmin', 'Revoke a delegation', {
    response: z.object({ delegation_id: z.string(), status: z.literal('revoked') }).strict(),
  }),

  // Resources, people, keys, audit.
  op('GET /api/admin/resources', 'listResources', 'List resources', {
    response: list('resources', ResourceViewSchema),
  }),
  op('POST /api/admin/resources', 'createResource', 'Register a resource', {
    body: CreateResourceSchema,
    status: 201,
    response: ResourceViewSchema,
  }),
  op('GET /api/admin/resources/:id', 'getResource', 'A resource', { response: ResourceViewSchema }),
  op('PATCH /api/admin/resources/:id', 'updateResource', 'Rename a resource, change its scopes or their descriptions', {
    body: UpdateResourceSchema,
    response: ResourceViewSchema,
  }),
  op('DELETE /api/admin/resources/:id', 'deleteResource', 'Remove a resource no live delegation names', {
    status: 204,
  }),
  op('GET /api/admin/users', 'listUsers', 'List people', { response: list('users', UserViewSchema) }),
  op('POST /api/admin/users', 'createUser', 'Create an account', {
    body: CreateUserSchema,
    status: 201,
    response: UserViewSchema,
  }),
  op('PATCH /api/admin/users/:id', 'updateUser', 'Disable or enable a person, or change their role', {
    body: UpdateUserSchema,
    response: UserViewSchema,
  }),
  op('POST /api/admin/users/:id/password', 'resetPassword', "Set a person's new password (ends their sessions)", {
    body: ResetPasswordSchema,
    status: 204,
  }),
  op('GET /api/admin/keys', 'listKeys', 'Published signing keys', { response: list('keys', KeyViewSchema) }),
  op('POST /api/admin/keys/rotate', 'rotateKeys', 'Schedule the next signing key', {
    status: 202,
    response: KeyRotationViewSchema,
  }),
  op('GET /api/admin/audit', 'queryAudit', 'Audit events, newest first', {
    query: AuditQuerySchema,
    response: list('events', AuditEventViewSchema),
  }),

  // A2A peers.
  op('GET /api/admin/peers', 'listPeers', 'List A2A peers', { response: list('peers', PeerViewSchema) }),
  op('POST /api/admin/peers', 'registerPeer', 'Register a peer from its Agent Card (201; 200 if known)', {
    body: RegisterPeerSchema,
    status: 201,
    response: PeerViewSchema,
  }),
  op('GET /api/admin/peers/:id', 'getPeer', 'A peer', { response: PeerViewSchema }),
  op('POST /api/admin/peers/:id/refresh', 'refreshPeer', "Fetch a peer's card again", {
    body: RefreshPeerSchema,
    bodyOptional: true,
    response: PeerViewSchema,
  }),

  // Trusted workload issuers.
  op('GET /api/admin/trusted-issuers', 'listTrustedIssuers', 'List trusted workload issuers', {
    response: list('trusted_issuers', TrustedIssuerViewSchema),
  }),
  op('POST /api/admin/trusted-issuers', 'createTrustedIssuer', 'Trust a workload issuer', {
    body: CreateTrustedIssuerSchema,
    status: 201,
    response: TrustedIssuerViewSchema,
  }),
  op('GET /api/admin/trusted-issuers/:id', 'getTrustedIssuer', 'A trusted issuer', {
    response: TrustedIssuerViewSchema,
  }),
  op('PATCH /api/admin/trusted-issuers/:id', 'updateTrustedIssuer', 'Change a trusted issuer', {
    body: UpdateTrustedIssuerSchema,
    response: TrustedIssuerViewSchema,
  }),
  op('DELETE /api/admin/trusted-issuers/:id', 'deleteTrustedIssuer', 'Remove a trusted issuer', { status: 204 }),

  // Initial access tokens (RFC 7591 §3).
  op('GET /api/admin/initial-access-tokens', 'listInitialAccessTokens', 'List initial access tokens', {
    response: list('initial_access_tokens', InitialAccessTokenViewSchema),
  }),
  op('POST /api/admin/initial-access-tokens', 'issueInitialAccessToken', 'Issue one (its value is shown once)', {
    body: CreateInitialAccessTokenSchema,
    status: 201,
    response: IssuedInitialAccessTokenSchema,
  }),
  op('GET /api/admin/initial-access-tokens/:id', 'getInitialAccessToken', 'An initial access token', {
    response: InitialAccessTokenViewSchema,
  }),
  op('POST /api/admin/initial-access-tokens/:id/revoke', 'revokeInitialAccessToken', 'Revoke one', {
    response: InitialAccessTokenViewSchema,
  }),

  // Agent lifecycle: certification campaigns, usage and right-sizing (README "Agent lifecycle").
  op(
    'POST /api/admin/certification-campaigns',
    'openCampaign',
    'Open a certification campaign over every active agent',
    {
      body: OpenCampaignSchema,
      status: 201,
      response: CampaignViewSchema,
    },
  ),
  op('GET /api/admin/certification-campaigns', 'listCampaigns', 'Certification campaigns, newest first', {
    response: list('campaigns', CampaignViewSchema),
  }),
  op('GET /api/admin/certification-campaigns/:id', 'getCampaign', 'A campaign with its items', {
    response: CampaignDetailViewSchema,
  }),
  op(
    'POST /api/admin/certification-campaigns/:id/close',
    'closeCampaign',
    'Close now: unattested agents are suspended',
    {
      response: ClosedCampaignViewSchema,
    },
  ),
  op(
    'GET /api/admin/certification-campaigns/:id/export',
    'exportCampaign',
    'Results for auditors (JSON, or CSV with format=csv)',
    {
      query: ExportQuerySchema,
      response: CampaignExportViewSchema,
    },
  ),
  op('GET /api/admin/clients/:id/usage', 'getAgentUsage', "An agent's scopes, resources and tools granted vs used", {
    query: UsageQuerySchema,
    response: ClientUsageViewSchema,
  }),
  op('POST /api/admin/delegations/:id/reduce', 'reduceDelegationAsAdmin', 'Narrow a delegation (its tasks end)', {
    body: ReduceDelegationSchema,
    response: ReducedDelegationViewSchema,
  }),
  // Organisation policies (README "Organisation policies").
  op('GET /api/admin/policies', 'listPolicyVersions', 'Policy versions, newest first (0: the built-in default)', {
    response: PolicyVersionListViewSchema,
  }),
  op('POST /api/admin/policies', 'savePolicyDraft', 'Save a new draft version (validated against the schema)', {
    body: SavePolicySchema,
    status: 201,
    response: PolicyVersionViewSchema,
  }),
  op('POST /api/admin/policies/check', 'checkPolicies', 'Validate policies and run tests, saving nothing', {
    body: CheckPolicySchema,
    response: PolicyCheckViewSchema,
  }),
  op('GET /api/admin/policies/schema', 'getPolicySchema', 'The Cedar schema policies are validated against', {
    response: z.object({ schema: z.string() }).strict(),
  }),
  op('GET /api/admin/policies/shadow-decisions', 'listShadowDecisions', 'What the shadow version decided differently', {
    query: ShadowDecisionsQuerySchema,
    response: ShadowDecisionsViewSchema,
  }),
  op('GET /api/admin/policies/:version', 'getPolicyVersion', 'A policy version', { response: PolicyVersionViewSchema }),
  op('POST /api/admin/policies/:version/status', 'setPolicyStatus', 'Shadow, unshadow or publish a version', {
    body: PolicyStatusSchema,
    response: PolicyVersionViewSchema,
  }),
  op('GET /api/admin/access/agent', 'exploreAgentAccess', 'What an agent may do for a person, and why', {
    query: AgentAccessQuerySchema,
    response: AgentAccessViewSchema,
  }),
  op('GET /api/admin/access/resource', 'exploreResourceAccess', 'Who can reach a resource, and the policy verdicts', {
    query: ResourceAccessQuerySchema,
    response: ResourceAccessViewSchema,
  }),
  op('PUT /api/admin/users/:id/groups', 'setUserGroups', "Set a person's groups for policies", {
    body: SetUserGroupsSchema,
    response: UserGroupsViewSchema,
  }),

  // The signed-in person's own API.
  op('GET /api/me', 'getMe', 'Who is signed in', {
    response: z.object({ user_id: z.string(), username: z.string(), role: z.enum(['user', 'admin']) }).strict(),
  }),
  op('POST /api/me/password', 'changeOwnPassword', 'Change my password (my other sessions end)', {
    body: ChangePasswordSchema,
    status: 204,
  }),
  op('GET /api/me/delegations', 'listMyDelegations', 'My delegations', {
    query: DelegationStatusQuerySchema,
    response: list('delegations', DelegationViewSchema),
  }),
  op('GET /api/me/delegations/:id', 'getMyDelegation', 'One of my delegations', { response: DelegationViewSchema }),
  op('POST /api/me/delegations/:id/approve', 'approveDelegation', 'Approve, optionally narrowed', {
    body: ApprovalSchema,
    bodyOptional: true,
    response: DelegationViewSchema,
  }),
  op('POST /api/me/delegations/:id/deny', 'denyDelegation', 'Deny a pending request', {
    response: DelegationViewSchema,
  }),
  op('POST /api/me/delegations/:id/revoke', 'revokeDelegation', 'Revoke one of my delegations', {
    response: DelegationViewSchema,
  }),
  op('POST /api/me/delegations/:id/reduce', 'reduceMyDelegation', 'Narrow one of my delegations (its tasks end)', {
    body: ReduceDelegationSchema,
    response: ReducedDelegationViewSchema,
  }),
  op('GET /api/me/certifications', 'listMyCertifications', 'My agents to certify in open campaigns', {
    response: list('items', CertificationItemViewSchema),
  }),
  op('POST /api/me/certifications/:id/attest', 'attestCertification', 'Keep, reduce or remove an agent I own', {
    body: AttestSchema,
    response: CertificationItemViewSchema,
  }),
  op('GET /api/me/tasks', 'listMyTasks', 'My tasks', { response: list('tasks', TaskViewSchema) }),
  op('GET /api/me/tasks/:id', 'getMyTask', 'One of my tasks, with its tree', { response: TaskTreeViewSchema }),
  op('POST /api/me/tasks/:id/end', 'endMyTask', 'End one of my tasks', { response: TaskViewSchema }),
  op('GET /api/me/audit', 'queryMyAudit', 'Audit events on my behalf', {
    query: AuditQuerySchema,
    response: list('events', AuditEventViewSchema),
  }),
  // OpenID AuthZEN Authorization API 1.0 (README "AuthZEN authorization API").
  op('GET /.well-known/authzen-configuration', 'getAuthzenConfiguration', 'AuthZEN policy decision point metadata', {
    response: AuthzenMetadataSchema,
  }),
  op('POST /access/v1/evaluation', 'evaluateAccess', 'AuthZEN: one authorization decision', {
    body: AuthzenEvaluationSchema,
    response: AuthzenDecisionSchema,
  }),
  op('POST /access/v1/evaluations', 'evaluateAccessBatch', 'AuthZEN: several decisions in one request', {
    body: AuthzenEvaluationsSchema,
    response: AuthzenEvaluationsResponseSchema,
  }),
];
