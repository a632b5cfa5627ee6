import { describe, expect, test } from 'vitest';
import { denialToError } from './denials.js';
import { isQuarantined, quarantineDenial } from './quarantine.js';

const url = 'https://notes.example/api';

describe('quarantineDenial', () => {
  test('a quarantined client is refused a non-public resource, with invalid_target naming the admission', () => {
    const denial = quarantineDenial({ id: 'cli_new', quarantinedAt: 100 }, url, false);
    expect(denial).toEqual({ reason: 'agent_quarantined', clientId: 'cli_new', audience: url });
    const error = denialToError(denial!);
    expect(error.code).toBe('invalid_target');
    expect(error.message).toMatch(/quarantined until an administrator admits it/);
  });

  test('a quarantined client may have a public resource', () => {
    expect(quarantineDenial({ id: 'cli_new', quarantinedAt: 100 }, url, true)).toBeNull();
  });

  test('an admitted client, and one that was never quarantined, are not affected', () => {
    expect(quarantineDenial({ id: 'cli_a', quarantinedAt: null }, url, false)).toBeNull();
    expect(quarantineDenial({ id: 'cli_b' }, url, false)).toBeNull();
    expect(isQuarantined({ quarantinedAt: 0 })).toBe(true);
    expect(isQuarantined({})).toBe(false);
  });
});
