import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { AUDIT_EVENT_TYPES } from './audit-events.js';

const ROOT = join(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = `${dir}/${name}`;
    if (statSync(join(ROOT, path)).isDirectory()) return name === 'test' ? [] : sources(path);
    return /\.tsx?$/.test(name) && !/\.(test|spec)\.tsx?$/.test(name) ? [path] : [];
  });
}

test('every audit event type the code writes is in the list the console offers as a filter', () => {
  const written = new Set<string>();
  for (const file of ['broker', 'a2a', 'mcp-server', 'admin-ui'].flatMap(sources)) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    // `type: 'x.y'` or `type: cond ? 'x.y' : 'z.w'` in an audit event, and a grant's `auditType: 'x.y'`.
    for (const m of text.matchAll(/\b(?:type|auditType):\s*([^,\n]{0,120})/g)) {
      for (const literal of m[1]!.matchAll(/'([a-z_]+\.[a-z_]+)'/g)) written.add(literal[1]!);
    }
  }
  expect(written.size).toBeGreaterThan(20);
  const missing = [...written].filter((t) => !(AUDIT_EVENT_TYPES as readonly string[]).includes(t));
  expect(missing).toEqual([]);
});
