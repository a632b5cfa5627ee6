/**
 * One error type for the protocol surface: the code says what went wrong, the status and headers
 * travel with it, and handlers never pick a status themselves.
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'unsupported_response_type'
  | 'unsupported_token_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'authorization_pending'
  | 'slow_down'
  | 'expired_token'
  | 'access_denied'
  | 'unknown_user_id'
  | 'invalid_binding_message'
  | 'invalid_redirect_uri'
  | 'invalid_client_metadata'
  | 'invalid_software_statement'
  | 'invalid_authorization_details'
  | 'temporarily_unavailable'
  | 'server_error'
  // Errand's admin and user APIs share the envelope with a small code set of their own.
  | 'not_found'
  | 'conflict'
  | 'forbidden'
  | 'unauthorized'
  | 'rate_limited';

const STATUS: Partial<Record<OAuthErrorCode, number>> = {
  invalid_client: 401,
  invalid_token: 401,
  unauthorized: 401,
  insufficient_scope: 403,
  forbidden: 403,
  access_denied: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  server_error: 500,
  temporarily_unavailable: 503,
};

export class OAuthError extends Error {
  readonly code: OAuthErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(
    code: OAuthErrorCode,
    description: string,
    opts: { status?: number; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(description, { cause: opts.cause });
    this.name = 'OAuthError';
    this.code = code;
    this.status = opts.status ?? STATUS[code] ?? 400;
    this.headers = opts.headers ?? {};
  }

  toBody(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.code, error_description: this.message };
  }
}

/** Whether a value is an OAuthError (also across module copies). */
export function isOAuthError(err: unknown): err is OAuthError {
  return err instanceof OAuthError;
}
