import type { ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { isUnstorableText, storageFailure } from '../../db/storage-errors.js';
import { OAuthError } from '../core/errors.js';
import { type AppEnv, NO_STORE } from './types.js';

/**
 * A storage condition that may clear by itself or by an operator (a lock held past the busy timeout,
 * a full disk, a read-only file) as 503 `temporarily_unavailable` with `Retry-After`: the caller did
 * nothing wrong and the same request may succeed later. Null for anything else. Every door (HTTP,
 * MCP tools, A2A skills) asks here.
 */
export function unavailableError(err: unknown): OAuthError | null {
  const failure = storageFailure(err);
  if (!failure?.transient) return null;
  return new OAuthError('temporarily_unavailable', 'storage is temporarily unavailable; try again later', {
    headers: { 'Retry-After': String(failure.retryAfter) },
    cause: err,
  });
}

/**
 * A refusal every door gives for a database error the caller caused or may retry: text holding
 * U+0000 (400 `invalid_request`; PostgreSQL's text cannot hold it) or `unavailableError`'s 503.
 */
export function storageRefusal(err: unknown): OAuthError | null {
  if (isUnstorableText(err)) {
    return new OAuthError(
      'invalid_request',
      'a value in the request contains the NUL character (U+0000), which no field accepts',
      {
        cause: err,
      },
    );
  }
  return unavailableError(err);
}

/** Everything that is not an OAuthError is a bug: logged with the request id, answered generically. */
export function toOAuthError(err: unknown): OAuthError {
  if (err instanceof OAuthError) return err;
  if (err instanceof HTTPException) {
    if (err.status === 413) return new OAuthError('invalid_request', 'the request body is too large', { status: 413 });
    if (err.status < 500) return new OAuthError('invalid_request', 'the request is malformed', { status: err.status });
  }
  if (err instanceof SyntaxError) return new OAuthError('invalid_request', 'the request body is not valid JSON');
  return (
    storageRefusal(err) ??
    new OAuthError('server_error', 'an internal error occurred; it has been logged', { cause: err })
  );
}

export const onError: ErrorHandler<AppEnv> = (err, c) => {
  const e = toOAuthError(err);
  const log = c.var.log;
  if (e.status >= 500) log?.error('request.failed', { err, path: c.req.path });
  else {
    // The OAuth error code goes in `error`: a field named `code` is redacted (authorization codes).
    // A pending CIBA poll is the expected answer until the person decides: not worth an info line.
    const routine = e.code === 'authorization_pending' || e.code === 'slow_down';
    if (routine) c.set('routine', true);
    log?.[routine ? 'debug' : 'info']('request.rejected', { error: e.code, description: e.message, path: c.req.path });
  }
  return c.json(e.toBody(), e.status as ContentfulStatusCode, { ...NO_STORE, ...e.headers });
};

export const notFound: NotFoundHandler<AppEnv> = (c) =>
  c.json({ error: 'not_found', error_description: `no such endpoint: ${c.req.method} ${c.req.path}` }, 404);
