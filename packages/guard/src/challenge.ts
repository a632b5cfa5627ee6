/** `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9449 §7.1, RFC 9728 §5.1, MCP scope hints). */

/** Error codes the guard answers with. */
export type GuardErrorCode =
  | 'invalid_token'
  | 'insufficient_scope'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'invalid_request';

/** A refusal: the status, the error and the challenge to send. */
export interface GuardFailure {
  ok: false;
  status: 401 | 403;
  error: GuardErrorCode;
  description: string;
  wwwAuthenticate: string;
}

export interface ChallengeInput {
  resourceMetadata: string;
  /** Scopes to hint at (all scopes the operation needs, MCP §Scope Selection). */
  scope: readonly string[];
  /** Omitted when the request carried no credentials at all (RFC 6750 §3.1). */
  error?: GuardErrorCode;
  description?: string;
  /** Set when DPoP was involved: adds a `DPoP` challenge carrying the error and `algs`. */
  dpopAlgs?: readonly string[];
}

// RFC 6750 §3: error_description and scope use %x20-21 / %x23-5B / %x5D-7E only.
function quoted(value: string): string {
  return `"${value.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, ' ')}"`;
}

function params(entries: [string, string | undefined][]): string {
  return entries
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
    .map(([k, v]) => `${k}=${quoted(v)}`)
    .join(', ');
}

/** Builds the `WWW-Authenticate` value; a DPoP-related error goes on the `DPoP` challenge, the rest on `Bearer`. */
export function buildChallenge(input: ChallengeInput): string {
  const scope = input.scope.length > 0 ? input.scope.join(' ') : undefined;
  const onDpop = input.dpopAlgs !== undefined;
  const bearer = `Bearer ${params([
    ['error', onDpop ? undefined : input.error],
    ['error_description', onDpop ? undefined : input.description],
    ['scope', scope],
    ['resource_metadata', input.resourceMetadata],
  ])}`;
  if (!onDpop) return bearer;
  const dpop = `DPoP ${params([
    ['error', input.error],
    ['error_description', input.description],
    ['algs', input.dpopAlgs?.join(' ')],
  ])}`;
  return `${dpop}, ${bearer}`;
}

/**
 * Tool names as a description names them: "tool a" or "tools a, b". The names come from the request
 * body, so a few of them, shortened, keep the header small.
 */
export function describeTools(names: readonly string[]): string {
  const shown = names.slice(0, 5).map((n) => (n.length > 64 ? `${n.slice(0, 64)}...` : n));
  const more = names.length > shown.length ? ` and ${names.length - shown.length} more` : '';
  return `${names.length === 1 ? 'tool' : 'tools'} ${shown.join(', ')}${more}`;
}

/** A failure with its challenge. */
export function failure(
  status: 401 | 403,
  error: GuardErrorCode,
  description: string,
  challenge: Omit<ChallengeInput, 'error' | 'description'> & { omitError?: boolean },
): GuardFailure {
  const { omitError, ...rest } = challenge;
  return {
    ok: false,
    status,
    error,
    description,
    wwwAuthenticate: buildChallenge(omitError ? rest : { ...rest, error, description }),
  };
}
