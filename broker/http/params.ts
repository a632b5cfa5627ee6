import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { OAuthError } from '../core/errors.js';
import type { Form } from '../core/params.js';

export { type Form, param, parseParams } from '../core/params.js';

/** Parameters that may repeat (RFC 8707 §2, RFC 8693 §2.1); every other one must appear once. */
const MULTI_VALUED = new Set(['resource', 'audience']);

/**
 * Reads an `application/x-www-form-urlencoded` body. RFC 6749 §3.1: parameters must not be
 * repeated, except those defined as multi-valued; empty values count as absent.
 */
export async function readForm(c: Context): Promise<Form> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/x-www-form-urlencoded(\s*;|$)/i.test(type)) {
    throw new OAuthError('invalid_request', 'the body must be application/x-www-form-urlencoded');
  }
  const text = await bodyText(c);
  const params = new URLSearchParams(text);
  return collect(params);
}

/**
 * The body as UTF-8 text. On the Node server a body of known length (the body limit has already
 * checked it) is read straight from the socket's message, which spares building a WHATWG Request
 * and stream for every form post; anything else goes through the Request.
 */
async function bodyText(c: Context): Promise<string> {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const length = incoming?.headers['content-length'];
  if (!incoming || length === undefined || incoming.headers['transfer-encoding'] || incoming.readableDidRead) {
    return c.req.text();
  }
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.once('end', resolve);
    incoming.once('error', reject);
    incoming.once('aborted', () => reject(new OAuthError('invalid_request', 'the request body was cut short')));
  });
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Collects query or form parameters with the same repetition rules. `keepRepeats` returns repeats
 * as arrays instead, for a caller that must decide where the error goes (the authorization endpoint).
 */
export function collect(params: URLSearchParams, opts: { keepRepeats?: boolean } = {}): Form {
  const out: Form = {};
  for (const [key, value] of params) {
    if (value === '') continue;
    if (key.length > 64 || value.length > 16_384)
      throw new OAuthError('invalid_request', `parameter ${key.slice(0, 64)} is too long`);
    const prev = out[key];
    if (prev === undefined) out[key] = MULTI_VALUED.has(key) ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    else if (opts.keepRepeats) out[key] = [prev, value];
    else throw new OAuthError('invalid_request', `parameter ${key} must not be repeated`);
  }
  return out;
}

/** The single-valued view of a form, for client authentication. */
export function singleValues(form: Form): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(form)) if (typeof v === 'string') out[k] = v;
  return out;
}
