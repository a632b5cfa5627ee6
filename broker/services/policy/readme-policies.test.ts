import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { PolicyTestsSchema, runPolicyTests } from './policy-tests.js';
import { CEDAR_SCHEMA } from './schema.js';

/**
 * The README's "Organisation policies" section stays true: the schema it prints is the one in
 * force, and its example policies validate and pass the example tests printed beside them.
 */

const README = readFileSync(join(import.meta.dirname, '..', '..', '..', 'README.md'), 'utf8');
const section = README.slice(README.indexOf('### Organisation policies'), README.indexOf('### Signing keys'));

/** The first fenced block of `lang` after `marker` in the section (indentation of a list item removed). */
function blockAfter(marker: string, lang: string): string {
  const from = section.indexOf(marker);
  expect(from, marker).toBeGreaterThan(-1);
  const match = new RegExp(`( *)\`\`\`${lang}\\n([\\s\\S]*?)\\n *\`\`\``).exec(section.slice(from));
  if (!match) throw new Error(`no ${lang} block after ${marker}`);
  const indent = match[1] ?? '';
  return (match[2] ?? '')
    .split('\n')
    .map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l))
    .join('\n');
}

describe('README "Organisation policies"', () => {
  test('prints the schema in force, in full', () => {
    expect(`${blockAfter('**The schema.**', 'cedar')}\n`).toBe(CEDAR_SCHEMA);
  });

  test('its example policies validate and pass its example tests', () => {
    const tests = PolicyTestsSchema.parse(JSON.parse(blockAfter('The tests of the examples above', 'json')));
    expect(tests.length).toBeGreaterThan(5);
    const run = runPolicyTests(blockAfter('**Examples.**', 'cedar'), tests, 1_767_225_600);
    if (!run.ok) throw new Error(run.problems.map((p) => `${p.policy}: ${p.message}`).join('\n'));
    expect(run.results.filter((r) => !r.passed)).toEqual([]);
  });
});
