import { describe, expect, test } from 'vitest';
import { compilePolicies } from '../../broker/services/policy/policy-set.js';
import { realisticPolicies } from './policies.js';

describe("the bench's policy set", () => {
  test('holds 50 policies that validate against the schema', () => {
    const compiled = compilePolicies(realisticPolicies('agt_bench', 'https://notes.example.test/mcp'));
    expect(compiled.ok ? compiled.set.policies.length : compiled.problems).toBe(50);
  });
});
