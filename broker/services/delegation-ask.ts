import { ASSURANCE_LEVELS, parseScope } from '@errand/protocol';
import type { ClientStore } from '../../db/stores/client-store.js';
import { isAssuranceLevel } from '../core/assurance.js';
import type { AssuranceLevel, Client } from '../core/client.js';
import type { DelegationRequest, ToolDetail } from '../core/delegation.js';
import { denialToError } from '../core/denials.js';
import { OAuthError } from '../core/errors.js';
import type { Form } from '../core/params.js';
import { quarantineDenial } from '../core/quarantine.js';
import { parseAuthorizationDetails } from './authorization-details.js';
import type { DelegationLimits } from './delegations.js';
import { canonicalResources, checkAdminScope, lookUpResources } from './resource-policy.js';

/**
 * What an agent asks a user for, in typed form, whatever door it came through: resources
 * (RFC 8707), scopes (spread over the resources that offer them), optional tool-level
 * `authorization_details` (RFC 9396) and Errand's limits. Absent limits take the defaults.
 */
export interface DelegationAsk {
  resources: string[];
  scope: string[];
  tools: ToolDetail[] | null;
  maxDepth?: number | undefined;
  maxTokenTtl?: number | undefined;
  expiresIn?: number | undefined;
  /** Agents that may act below the asking agent; null or absent: any. */
  subAgents?: string[] | null | undefined;
  minAssurance?: AssuranceLevel | undefined;
}

function within(name: string, value: number | undefined, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new OAuthError('invalid_request', `${name} must be a whole number between ${min} and ${max}`);
  }
  return value;
}

/** Checks an ask against the resource catalogue, the client's allowed scopes and the limits. */
export async function readDelegationRequest(
  deps: { clients: ClientStore; limits: DelegationLimits },
  ask: DelegationAsk,
  client: Client,
): Promise<DelegationRequest> {
  const resources = canonicalResources(ask.resources);
  if (resources.length === 0)
    throw new OAuthError('invalid_target', 'resource is required: name each API or MCP server to delegate');
  const known = await lookUpResources(deps.clients, resources);
  // A quarantined agent may ask only for public resources (README "Quarantine of new registrations and findings").
  for (const r of known) {
    const quarantined = quarantineDenial(client, r.url, r.public ?? false);
    if (quarantined) throw denialToError(quarantined);
  }
  const wanted = [...new Set(ask.scope)];
  if (wanted.length === 0) throw new OAuthError('invalid_scope', 'name at least one scope of the requested resources');
  checkAdminScope(wanted, client, false);
  const grants: Record<string, string[]> = {};
  for (const r of known) grants[r.url] = wanted.filter((s) => r.scopes.includes(s));
  const orphan = wanted.filter((s) => !known.some((r) => r.scopes.includes(s)));
  if (orphan.length)
    throw new OAuthError('invalid_scope', `scope "${orphan.join(' ')}" is not offered by the requested resources`);
  if (client.scope) {
    const notAllowed = wanted.filter((s) => !client.scope!.includes(s));
    if (notAllowed.length)
      throw new OAuthError('invalid_scope', `scope "${notAllowed.join(' ')}" is not allowed for this client`);
  }
  for (const t of ask.tools ?? []) {
    if (!resources.includes(t.locations[0])) {
      throw new OAuthError(
        'invalid_authorization_details',
        `mcp_tool location ${t.locations[0]} is not a requested resource`,
      );
    }
  }
  const subAgents = ask.subAgents ? [...new Set(ask.subAgents.filter(Boolean))] : null;
  if (subAgents?.some((a) => a.length > 2048)) throw new OAuthError('invalid_request', 'sub_agents: ids are too long');
  const { limits } = deps;
  return {
    grants,
    authorizationDetails: ask.tools,
    maxDepth: within('max_depth', ask.maxDepth, 0, limits.maxDepth, 0),
    maxTokenTtl: within('max_token_ttl', ask.maxTokenTtl, 30, limits.tokenTtl, limits.tokenTtl),
    expiresIn: within('delegation_expires_in', ask.expiresIn, 60, limits.maxTtl, limits.defaultTtl),
    subAgents,
    ...(ask.minAssurance ? { minAssurance: ask.minAssurance } : {}),
  };
}

const single = (form: Form, name: string): string | undefined => {
  const v = form[name];
  return Array.isArray(v) ? v[0] : v;
};

const intParam = (form: Form, name: string): number | undefined => {
  const raw = single(form, name);
  if (raw === undefined) return undefined;
  if (!/^\d{1,9}$/.test(raw)) throw new OAuthError('invalid_request', `${name} must be a whole number`);
  return Number(raw);
};

/**
 * The ask as OAuth parameters carry it (an authorization request, a CIBA request): `resource`,
 * `scope`, `authorization_details`, `max_depth`, `max_token_ttl`, `delegation_expires_in`,
 * `sub_agents` (space-separated, `*` for any) and `min_assurance`.
 */
export function delegationAskFromForm(form: Form, ignoreScopes: readonly string[] = []): DelegationAsk {
  const scope = parseScope(single(form, 'scope') ?? '');
  if (scope === null) throw new OAuthError('invalid_scope', 'scope must be space-separated scope tokens');
  // An agent may ask that every actor under the delegation reach a minimum assurance level.
  const minAssurance = single(form, 'min_assurance');
  if (minAssurance !== undefined && !isAssuranceLevel(minAssurance)) {
    throw new OAuthError('invalid_request', `min_assurance must be one of ${ASSURANCE_LEVELS.join(', ')}`);
  }
  const subAgents = single(form, 'sub_agents');
  const resource = form.resource;
  return {
    resources: resource === undefined ? [] : Array.isArray(resource) ? resource : [resource],
    scope: scope.filter((s) => !ignoreScopes.includes(s)),
    tools: parseAuthorizationDetails(single(form, 'authorization_details'), false).tools,
    maxDepth: intParam(form, 'max_depth'),
    maxTokenTtl: intParam(form, 'max_token_ttl'),
    expiresIn: intParam(form, 'delegation_expires_in'),
    subAgents: subAgents === undefined || subAgents === '*' ? null : subAgents.split(' '),
    ...(minAssurance ? { minAssurance } : {}),
  };
}
