import type { Context } from 'hono';
import { checkCsrf } from '../broker/http/session.js';
import type { AppEnv } from '../broker/http/types.js';

export type FormBody = Record<string, string | File | (string | File)[]>;

/** The first string value of a form field. */
export function firstValue(v: FormBody[string] | undefined): string | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  return typeof x === 'string' ? x : undefined;
}

/** Every string value of a repeated form field. */
export function allValues(v: FormBody[string] | undefined): string[] {
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');
}

/** Reads a posted form (repeated fields kept) and checks its CSRF token. */
export async function readForm(c: Context<AppEnv>): Promise<FormBody> {
  const body = await c.req.parseBody({ all: true });
  checkCsrf(c, firstValue(body._csrf));
  return body;
}

/** The first problem of a failed zod parse, as a form shows it. */
export function firstIssue(error: { issues: { path: PropertyKey[]; message: string }[] }): string {
  const [issue] = error.issues;
  const field = String(issue?.path[0] ?? '');
  return `${field ? `${field}: ` : ''}${issue?.message ?? 'invalid'}`;
}
