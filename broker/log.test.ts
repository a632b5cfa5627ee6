import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { openDb } from '../db/open.js';
import { usedAssertions } from '../db/schema/index.js';
import { createLogger } from './log.js';

const dir = mkdtempSync(join(tmpdir(), 'errand-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('error logging', () => {
  test('a failed query is logged with the engine’s reason and code, without the query’s parameters', async () => {
    const db = await openDb(`file:${join(dir, 'errand.db')}`);
    await db.exec('PRAGMA query_only = ON');
    const jti = 'jti-that-must-not-be-logged-7f3a';
    let err: unknown;
    try {
      await db.q.insert(usedAssertions).values({ key: `agt_client:${jti}`, expiresAt: 1_900_000_000 });
    } catch (e) {
      err = e;
    } finally {
      db.close();
    }
    const lines: string[] = [];
    createLogger({ write: (l) => lines.push(l) }).error('request.failed', { err });
    const line = lines[0] ?? '';
    const logged = JSON.parse(line).err;

    expect(line).not.toContain(jti);
    expect(line).not.toContain('1900000000');
    expect(line).not.toContain('params:');
    expect(logged.message).toMatch(/^Failed query: insert into "used_assertions"/);
    expect(logged.cause).toMatchObject({ message: 'attempt to write a readonly database', code: 'SQLITE_READONLY' });
    expect(logged.stack).toMatch(/Failed query: insert into "used_assertions"[^\n]*\n\s+at /);
  });

  test('a cause chain is followed a few levels, each with its name, message and code', () => {
    const inner = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    const err = new Error('outer', { cause: new Error('middle', { cause: inner }) });
    const lines: string[] = [];
    createLogger({ write: (l) => lines.push(l) }).error('x.failed', { err });
    expect(JSON.parse(lines[0] ?? '').err).toMatchObject({
      name: 'Error',
      message: 'outer',
      cause: { message: 'middle', cause: { message: 'database is locked', code: 'SQLITE_BUSY' } },
    });
  });
});

describe('redaction', () => {
  test('secrets stay redacted whatever the event; the OAuth error code, in `error`, is logged', () => {
    const lines: string[] = [];
    const secrets = {
      client_secret: 'cs-1',
      code: 'authz-code-2',
      code_verifier: 'verifier-3',
      access_token: 'at-4',
      refresh_token: 'rt-5',
      subject_token: 'st-6',
      password: 'pw-7',
      client_assertion: 'ca-8',
      cookie: 'session=ck-9',
      authorization: 'Bearer az-10',
    };
    createLogger({ write: (l) => lines.push(l) }).info('request.rejected', {
      error: 'invalid_grant',
      description: 'the authorization code is unknown',
      ...secrets,
    });
    const logged = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(logged.error).toBe('invalid_grant');
    for (const key of Object.keys(secrets)) expect(logged[key]).toBe('[redacted]');
    for (const value of Object.values(secrets)) expect(lines[0]).not.toContain(value);
  });
});
