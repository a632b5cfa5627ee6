import { inflateSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { encodeStatusList, readStatus } from './status-list.js';

describe('status list encoding (draft-ietf-oauth-status-list §4, test vectors)', () => {
  test('bits=1 vector: statuses 1,0,0,1,1,1,0,1,1,1,0,0,0,1,0,1', () => {
    const statuses = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1];
    const lst = encodeStatusList(
      16,
      statuses.map((v, i) => [i, v] as [number, number]),
    );
    expect(inflateSync(Buffer.from(lst, 'base64url')).toString('hex')).toBe('b9a3');
    // The draft's own compressed value decodes to the same statuses.
    for (const [i, v] of statuses.entries()) expect(readStatus('eNrbuRgAAhcBXQ', i)).toBe(v);
    for (const [i, v] of statuses.entries()) expect(readStatus(lst, i)).toBe(v);
  });

  test('bits=2 vector: 1,2,0,3,0,1,0,1,1,2,3,3', () => {
    const statuses = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
    const lst = encodeStatusList(
      12,
      statuses.map((v, i) => [i, v] as [number, number]),
      2,
    );
    expect(inflateSync(Buffer.from(lst, 'base64url')).toString('hex')).toBe('c944f9');
    for (const [i, v] of statuses.entries()) expect(readStatus('eNo76fITAAPfAgc', i, 2)).toBe(v);
  });

  test('an index beyond the list reads as null', () => {
    const lst = encodeStatusList(8, [[3, 1]]);
    expect(readStatus(lst, 3)).toBe(1);
    expect(readStatus(lst, 8)).toBeNull();
    expect(readStatus(lst, -1)).toBeNull();
  });

  test('a million-entry list with scattered revocations stays small', () => {
    const set: [number, number][] = [];
    for (let i = 0; i < 1_000_000; i += 997) set.push([i, 1]);
    const lst = encodeStatusList(1_000_000, set);
    expect(Buffer.from(lst, 'base64url').length).toBeLessThan(200 * 1024);
    expect(readStatus(lst, 997 * 5)).toBe(1);
    expect(readStatus(lst, 997 * 5 + 1)).toBe(0);
  });
});
