import type { IncomingMessage } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import { OAuthError } from '../../core/errors.js';
import type { AppEnv } from '../types.js';

/**
 * Bounds how long a client may take to send its request body once the headers are in: past
 * `seconds`, a request whose body is still arriving is answered 408 (RFC 9110 §15.5.9) with the
 * usual error envelope and `Connection: close`, so a trickled body cannot hold a connection (and
 * a handler) for the server's own five-minute limit. Bodies we have not read yet because the
 * handler is busy are not the client's fault and are left alone.
 */
export function bodyDeadline(seconds: number): MiddlewareHandler<AppEnv> {
  const ms = seconds * 1000;
  return async function bodyDeadline(c, next) {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    if (!incoming || incoming.complete || !hasBody(incoming)) return next();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), ms);
    });
    const handled = next();
    const first = await Promise.race([handled.then(() => 'answered' as const), late]);
    clearTimeout(timer);
    if (first === 'late' && isStillArriving(incoming)) {
      // The handler is still waiting for the body; whatever it does once the connection closes is moot.
      handled.catch(() => undefined);
      throw new OAuthError('invalid_request', `the request body did not arrive within ${seconds} s`, {
        status: 408,
        headers: { Connection: 'close' },
      });
    }
    await handled;
  };
}

function hasBody(incoming: IncomingMessage): boolean {
  const length = incoming.headers['content-length'];
  return incoming.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Still receiving, and not merely held back because nobody has read what already arrived. */
function isStillArriving(incoming: IncomingMessage): boolean {
  return !incoming.complete && !incoming.destroyed && incoming.readableLength < incoming.readableHighWaterMark;
}
