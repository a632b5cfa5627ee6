import type { AssuranceLevel } from './client.js';
import { OAuthError } from './errors.js';

/**
 * An expected "no" from the core, with its reason. Audit records the reason; one exhaustive
 * switch turns it into the wire error, so a new reason without a mapping does not compile.
 */
export type Denial =
  | { reason: 'delegation_inactive'; status: string }
  | { reason: 'delegation_expired' }
  | { reason: 'actor_not_delegate'; actorId: string }
  | { reason: 'actor_not_allowed'; actorId: string }
  | { reason: 'task_ended'; taskId: string }
  | { reason: 'task_not_found'; taskId: string }
  | { reason: 'audience_required' }
  | { reason: 'audience_not_delegated'; audience: string }
  | { reason: 'audience_not_in_parent'; audience: string }
  | { reason: 'scope_exceeds_parent'; scope: string }
  | { reason: 'scope_empty' }
  | { reason: 'details_exceed_parent' }
  | { reason: 'depth_exceeded'; max: number }
  | { reason: 'subject_expired' }
  /** On-behalf-of: neither a delegation from the token's user nor an exchange rule covers the resource. */
  | { reason: 'not_delegated_for_user'; clientId: string; audience: string }
  /** On-behalf-of: the user's access token was revoked while the exchange was being decided. */
  | { reason: 'subject_revoked' }
  | PolicyDenial
  /** The agent registered itself (dcr, cimd) and no administrator or rule has admitted it yet; the resource is not public. */
  | { reason: 'agent_quarantined'; clientId: string; audience: string }
  | {
      reason: 'assurance_too_low';
      required: AssuranceLevel;
      actual: AssuranceLevel | null;
      /** What sets the minimum: the delegation, or the resource the token is for. */
      by: 'delegation' | 'resource';
    };

/**
 * The organisation's policies refused what the delegation rules allowed (README "Organisation
 * policies"): the forbid policies that denied it, or none when no permit applied.
 */
export interface PolicyDenial {
  reason: 'policy_denied';
  action: string;
  version: number;
  policies: string[];
}

export type Decision<T> = { ok: true; value: T } | { ok: false; denial: Denial };

/**
 * Wire errors for denials. An unacceptable subject or actor token is `invalid_request`
 * (RFC 8693 §2.2.2), with a description that says why; scope and audience keep their own codes.
 */
export function denialToError(d: Denial): OAuthError {
  switch (d.reason) {
    case 'delegation_inactive':
      return new OAuthError('invalid_request', `the delegation is ${d.status}`);
    case 'delegation_expired':
      return new OAuthError('invalid_request', 'the delegation has expired');
    case 'actor_not_delegate':
      return new OAuthError('invalid_request', 'the delegation credential was issued to another agent');
    case 'actor_not_allowed':
      return new OAuthError('invalid_request', `agent ${d.actorId} may not act under this delegation`);
    case 'task_ended':
      return new OAuthError('invalid_request', `task ${d.taskId} has ended`);
    case 'task_not_found':
      return new OAuthError(
        'invalid_request',
        `task ${d.taskId} is not a task this agent holds under the subject token`,
      );
    case 'audience_required':
      return new OAuthError('invalid_target', 'resource is required: the subject token covers several resources');
    case 'audience_not_delegated':
      return new OAuthError('invalid_target', `resource "${d.audience}" is not covered by the delegation`);
    case 'audience_not_in_parent':
      return new OAuthError('invalid_target', `resource "${d.audience}" is not the audience of the subject token`);
    case 'scope_exceeds_parent':
      return new OAuthError('invalid_scope', `scope "${d.scope}" is not held by the subject token`);
    case 'scope_empty':
      return new OAuthError('invalid_scope', 'no scope would remain');
    case 'details_exceed_parent':
      return new OAuthError(
        'invalid_authorization_details',
        'authorization_details exceed what the subject token holds',
      );
    case 'depth_exceeded':
      return new OAuthError('invalid_request', `delegation depth limit (${d.max}) reached`);
    case 'subject_expired':
      return new OAuthError('invalid_request', 'the subject token, task or delegation has expired');
    case 'not_delegated_for_user':
      // RFC 8693 §2.2.2: the server will not issue a token for the target named by resource/audience.
      return new OAuthError(
        'invalid_target',
        `no delegation or exchange rule lets client ${d.clientId} act for this user at "${d.audience}"`,
      );
    case 'subject_revoked':
      return new OAuthError('invalid_request', 'subject_token is invalid, expired or revoked');
    case 'policy_denied':
      // RFC 6749 §5.2 answers 400 at the token endpoint; the description names the deciding policies.
      return new OAuthError('access_denied', policyDenialText(d), { status: 400 });
    case 'agent_quarantined':
      // RFC 8707 §2 / RFC 8693 §2.2.2: the server will not issue a token for this target.
      return new OAuthError(
        'invalid_target',
        `client ${d.clientId} is quarantined until an administrator admits it: it may get tokens only for public resources, and "${d.audience}" is not one`,
      );
    case 'assurance_too_low':
      // Say which minimum applies and what the agent has, so its operator can act.
      return new OAuthError(
        'invalid_request',
        `the ${d.by} requires assurance level ${d.required}; the acting agent authenticated at ${d.actual ?? 'no level'} (use a workload identity from a trusted issuer)`,
      );
  }
}

/** What a policy denial says: the policies by id and their version, or that none permits. */
export function policyDenialText(d: PolicyDenial): string {
  const version = d.version === 0 ? 'the built-in default policies' : `policy version ${d.version}`;
  return d.policies.length > 0
    ? `denied by organisation policy ${d.policies.map((p) => `"${p}"`).join(', ')} (${version})`
    : `no organisation policy permits ${d.action} here (${version})`;
}
