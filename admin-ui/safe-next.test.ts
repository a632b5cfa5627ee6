import { describe, expect, test } from 'vitest';
import { DEFAULT_NEXT, safeNext } from './safe-next.js';

const ISSUER = 'https://errand.example';

describe('safeNext', () => {
  test('keeps a same-origin path with its query and fragment', () => {
    expect(safeNext('/my/requests?done=approved#top', ISSUER)).toBe('/my/requests?done=approved#top');
    expect(safeNext('/admin/agents', `${ISSUER}/base`)).toBe('/admin/agents');
  });

  test('returns the parser’s percent-encoded form', () => {
    expect(safeNext('/a b/é', ISSUER)).toBe('/a%20b/%C3%A9');
    expect(safeNext('/%09/evil.example', ISSUER)).toBe('/%09/evil.example');
    expect(safeNext('/a/../b/./c', ISSUER)).toBe('/b/c');
  });

  test.each([
    undefined,
    '',
    '/\t/evil.example',
    '/\n/evil.example',
    '/\r/evil.example',
    '/\x00',
    '/\x7f',
    '//evil.example',
    '///evil.example',
    '/\\evil.example',
    '/\\/evil.example',
    '/.//evil.example',
    '/%2e//evil.example',
    '/a/..//evil.example',
    'https://evil.example/',
    'https://errand.example/admin',
    'javascript:alert(1)',
    'evil.example',
    ' /admin',
    `/${'a'.repeat(2048)}`,
  ])('falls back to the home page for %j', (next) => {
    expect(safeNext(next, ISSUER)).toBe(DEFAULT_NEXT);
  });
});
