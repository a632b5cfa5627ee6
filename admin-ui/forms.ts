import type { Context } from 'hono';
import type { z } from 'zod';
import { checkCsrf } from '../broker/http/session.js';
import type { AppEnv } from '../broker/http/types.js';
import type { AdminActor } from '../broker/services/admin.js';

/** Reading the console's forms: CSRF first, then fields as strings; zod problems worded for a person. */

export type FormBody = Record<string, string | File | (string | File)[]>;

/** The first string value of a form field, if any. */
export function firstValue(v: FormBody[string] | undefined): string | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  return typeof x === 'string' ? x : undefined;
}

/** Every string value of a repeated form field (ticked checkboxes). */
export function allValues(v: FormBody[string] | undefined): string[] {
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');
}

/** The first string value of a field ('' when absent). */
export function field(body: FormBody, name: string): string {
  return firstValue(body[name]) ?? '';
}

/** Every string value of a repeated field. */
export function fields(body: FormBody, name: string): string[] {
  return allValues(body[name]);
}

/** Words separated by spaces or commas (scopes), or lines (URLs). */
export const words = (s: string) => s.split(/[\s,]+/).filter(Boolean);
export const lines = (s: string) =>
  s
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);

/** Parses a posted form, refusing it without the session's CSRF token. */
export async function readForm(c: Context<AppEnv>): Promise<FormBody> {
  const body = await c.req.parseBody({ all: true });
  checkCsrf(c, field(body, '_csrf'));
  return body;
}

/** The first problem zod found, as "field: message". */
export function firstIssue(error: z.ZodError): string {
  const [issue] = error.issues;
  const path = issue?.path.join('.') ?? '';
  return path ? `${path}: ${issue?.message ?? 'invalid'}` : (issue?.message ?? 'invalid');
}

/** Who is acting, for the audit event of an administrative change. */
export function adminActor(c: Context<AppEnv>): AdminActor {
  return { adminId: c.get('user')!.id, requestId: c.var.requestId, address: c.var.address };
}

/**
 * A pasted key set: a JWK set (`{"keys":[…]}`) or a single JWK, which is wrapped. Returns the parsed
 * value for the schema to check, or an error message when the text is not JSON.
 */
export function parseJwks(text: string): { value?: unknown; error?: string } {
  if (!text.trim()) return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    const isSet = typeof parsed === 'object' && parsed !== null && 'keys' in parsed;
    return { value: isSet ? parsed : { keys: [parsed] } };
  } catch {
    return { error: 'jwks: the pasted key set is not valid JSON' };
  }
}
