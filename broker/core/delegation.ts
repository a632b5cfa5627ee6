import { meetsAssurance } from './assurance.js';
import type { AssuranceLevel } from './client.js';

/** A user's approval for one agent: the ceiling for everything issued under it. */
export type DelegationStatus = 'pending' | 'active' | 'denied' | 'revoked';

/** RFC 9396 detail naming MCP tools an agent may call at one resource. */
export interface ToolDetail {
  type: 'mcp_tool';
  locations: [string];
  actions: string[];
}

export interface Delegation {
  id: string;
  userId: string;
  agentId: string;
  status: DelegationStatus;
  /** Scopes per resource (canonical resource URL → scopes). */
  grants: Record<string, string[]>;
  authorizationDetails: ToolDetail[] | null;
  maxTokenTtl: number;
  maxDepth: number;
  /** Agents that may act below the delegated agent: any (null) or only these client ids. */
  subAgents: string[] | null;
  expiresAt: number;
  createdAt: number;
  decidedAt: number | null;
  revokedAt: number | null;
  /** How it was granted: by the user (consent page, CIBA) or by an administrator's exchange rule. */
  source: 'consent' | 'ciba' | 'exchange_rule';
  bindingMessage: string | null;
  /** `jti` of the delegation credential currently valid for it. */
  credentialJti: string | null;
  /** The lowest assurance level an actor needs to exchange under it. */
  minAssurance?: AssuranceLevel | null;
}

/** What an agent asks for; the user may narrow every part of it on approval. */
export interface DelegationRequest {
  grants: Record<string, string[]>;
  authorizationDetails: ToolDetail[] | null;
  maxTokenTtl: number;
  maxDepth: number;
  subAgents: string[] | null;
  expiresIn: number;
  /** The lowest assurance level any actor under the delegation must have (absent: none). */
  minAssurance?: AssuranceLevel | null;
}

/** Narrowing on approval: each part must be within what was asked. Returns a problem or null. */
export function narrowingProblem(asked: DelegationRequest, granted: DelegationRequest): string | null {
  for (const [resource, scopes] of Object.entries(granted.grants)) {
    const allowed = asked.grants[resource];
    if (!allowed) return `resource ${resource} was not requested`;
    const extra = scopes.filter((s) => !allowed.includes(s));
    if (extra.length) return `scope "${extra.join(' ')}" was not requested for ${resource}`;
  }
  if (Object.values(granted.grants).every((s) => s.length === 0)) return 'at least one scope must be granted';
  if (granted.maxDepth > asked.maxDepth) return `depth ${granted.maxDepth} exceeds the ${asked.maxDepth} requested`;
  if (granted.maxTokenTtl > asked.maxTokenTtl) return 'token lifetime exceeds the one requested';
  if (granted.expiresIn > asked.expiresIn) return 'expiry exceeds the one requested';
  // A user may demand a higher assurance level than the agent offered, never a lower one.
  if (!meetsAssurance(granted.minAssurance, asked.minAssurance)) {
    return `the minimum assurance level may only be raised, not lowered below ${asked.minAssurance}`;
  }
  if (asked.subAgents !== null) {
    if (granted.subAgents === null) return 'sub-agents may only be narrowed';
    if (granted.subAgents.some((a) => !asked.subAgents!.includes(a))) return 'sub-agents may only be narrowed';
  }
  return toolNarrowingProblem(asked, granted);
}

/**
 * RFC 9396 `mcp_tool` narrowing: granted tools are a subset of those asked at the same location, and
 * a location asked for with named tools keeps at least one of them for as long as it is granted at
 * all. Resource servers read "no `mcp_tool` entry for this location" as "every tool", so dropping
 * the entry, or granting an empty list, would widen the grant instead of narrowing it.
 */
function toolNarrowingProblem(asked: DelegationRequest, granted: DelegationRequest): string | null {
  const grantedTools = granted.authorizationDetails ?? [];
  for (const d of grantedTools) {
    const match = asked.authorizationDetails?.find((a) => a.locations[0] === d.locations[0]);
    if (!match || d.actions.some((x) => !match.actions.includes(x)))
      return 'authorization_details may only be narrowed';
  }
  for (const a of asked.authorizationDetails ?? []) {
    const location = a.locations[0];
    if ((granted.grants[location] ?? []).length === 0) continue; // the resource is left out altogether
    const kept = grantedTools.filter((d) => d.locations[0] === location).flatMap((d) => d.actions);
    if (kept.length === 0) {
      return `no tool is granted at ${location}: keep at least one of its tools, or leave out its scopes to grant nothing there`;
    }
  }
  return null;
}
