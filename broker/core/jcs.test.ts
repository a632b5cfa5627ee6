import { describe, expect, test } from 'vitest';
import { canonicalJson } from './jcs.js';

describe('canonicalJson (RFC 8785)', () => {
  test('sorts members at every level by UTF-16 code units and drops whitespace', () => {
    const value = { b: [3, { z: true, a: null }], a: 'x', '\u20ac': 1, '\r': 2, '\ud83d\ude00': 3, ö: 4 };
    // §3.2.3: "\r" (U+000D) < "a" < "b" < "ö" (U+00F6) < "€" (U+20AC) < the surrogate pair (U+D83D…).
    expect(canonicalJson(value)).toBe('{"\\r":2,"a":"x","b":[3,{"a":null,"z":true}],"ö":4,"€":1,"😀":3}');
  });

  test('writes numbers and strings as ECMAScript does (§3.2.2)', () => {
    expect(canonicalJson([1e21, 0.1, -0, 100, 'a"\u0001'])).toBe('[1e+21,0.1,0,100,"a\\"\\u0001"]');
  });

  test('leaves out undefined members', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
  });
});
