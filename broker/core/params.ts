import { z } from 'zod';
import { OAuthError, type OAuthErrorCode } from './errors.js';

/** Form or query parameters after the repetition rules: multi-valued ones as arrays (RFC 6749 §3.1). */
export type Form = Record<string, string | string[]>;

// Field-specific RFC codes; invalid_request otherwise.
const FIELD_CODE: Record<string, OAuthErrorCode> = {
  resource: 'invalid_target',
  scope: 'invalid_scope',
  redirect_uris: 'invalid_redirect_uri',
};

/** Parses wire input with a schema, turning the first problem into the spec's error. */
export function parseParams<S extends z.ZodType>(
  schema: S,
  input: unknown,
  fallback: OAuthErrorCode = 'invalid_request',
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const [issue] = result.error.issues;
  const field = String(issue?.path[0] ?? '');
  const message =
    issue?.code === 'invalid_type' && issue.input === undefined ? 'is required' : (issue?.message ?? 'is invalid');
  throw new OAuthError(FIELD_CODE[field] ?? fallback, field ? `${field}: ${message}` : message);
}

/** A required single string parameter (for schemas). */
export const param = (max = 4096) => z.string().min(1).max(max);
