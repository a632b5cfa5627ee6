import type { OAuthError } from '../core/errors.js';

/**
 * Why an agent operation said no. `code` is the reason doors word their guidance by (one table per
 * door, exhaustive); `error` is the code sent on the wire (an OAuth error code, or one of Errand's
 * own such as `no_task`); `missing` names what the caller would need, as data.
 */
export type RefusalCode =
  | 'insufficient_scope'
  | 'client_not_allowed'
  | 'user_required'
  | 'other_user'
  | 'unknown_user'
  | 'too_many_unknown'
  | 'no_delegation'
  | 'approval_pending'
  | 'delegation_inactive'
  | 'no_task'
  | 'not_root_task'
  | 'unknown_sub_agent'
  | 'actor_required'
  | 'actor_mismatch'
  /** Any other protocol refusal (an exchange denial, a bad argument): `error` is its OAuth code. */
  | 'refused';

export interface Refusal {
  code: RefusalCode;
  error: string;
  description: string;
  missing?: Record<string, unknown>;
}

export type Result<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

export function refusal(
  code: RefusalCode,
  error: string,
  description: string,
  missing?: Record<string, unknown>,
): { ok: false; refusal: Refusal } {
  return { ok: false, refusal: { code, error, description, ...(missing ? { missing } : {}) } };
}

/** A service's OAuthError as a refusal. */
export function refused(err: OAuthError): { ok: false; refusal: Refusal } {
  return refusal('refused', err.code, err.message);
}
