import { describe, expect, test } from 'vitest';
import { meetsAssurance } from './assurance.js';
import { claimAt, globMatch, matchWorkloadRule, spiffeTrustDomain, type WorkloadRule } from './trusted-issuer.js';

const rule = (match: Record<string, string[]>, over: Partial<WorkloadRule> = {}): WorkloadRule => ({
  match,
  agentId: 'agt',
  assurance: 'NHI-AAL2',
  attestation: null,
  ...over,
});

describe('workload rules', () => {
  test('globs: * stays within a segment, ** crosses segments, the rest is literal', () => {
    expect(globMatch('spiffe://td/ns/*/sa/bot', 'spiffe://td/ns/prod/sa/bot')).toBe(true);
    expect(globMatch('spiffe://td/ns/*/sa/bot', 'spiffe://td/ns/a/b/sa/bot')).toBe(false);
    expect(globMatch('spiffe://td/**', 'spiffe://td/ns/a/b/sa/bot')).toBe(true);
    expect(globMatch('refs/heads/main', 'refs/heads/main')).toBe(true);
    expect(globMatch('refs/heads/main', 'refs/heads/mainx')).toBe(false);
    expect(globMatch('a.b', 'axb')).toBe(false);
    expect(globMatch('repo:acme/*', 'repo:acme/agent\nrepo:evil')).toBe(false);
  });

  test('claim paths reach nested claims, and names containing dots', () => {
    const claims = { 'kubernetes.io': { namespace: 'agents', serviceaccount: { name: 'planner' } }, sub: 'x' };
    expect(claimAt(claims, 'kubernetes.io/serviceaccount/name')).toBe('planner');
    expect(claimAt(claims, 'kubernetes.io/namespace')).toBe('agents');
    expect(claimAt(claims, 'missing/path')).toBeUndefined();
    expect(claimAt({ 'a/b': 1 }, 'a/b')).toBe(1);
  });

  test('all listed claims must match; the first matching rule wins; attestation is exact', () => {
    const rules = [
      rule(
        { sub: ['spiffe://td/hw-*'] },
        { agentId: 'hw', assurance: 'NHI-AAL3', attestation: { claim: 'att', value: 'tpm' } },
      ),
      rule({ sub: ['spiffe://td/hw-*'] }, { agentId: 'hw' }),
      rule({ repository: ['acme/agent'], ref: ['refs/heads/main', 'refs/tags/v*'] }, { agentId: 'ci' }),
    ];
    expect(matchWorkloadRule(rules, { sub: 'spiffe://td/hw-1', att: 'tpm' })).toMatchObject({ assurance: 'NHI-AAL3' });
    expect(matchWorkloadRule(rules, { sub: 'spiffe://td/hw-1', att: 'tpm*' })).toMatchObject({ assurance: 'NHI-AAL2' });
    expect(matchWorkloadRule(rules, { repository: 'acme/agent', ref: 'refs/tags/v2' })?.agentId).toBe('ci');
    expect(matchWorkloadRule(rules, { repository: 'acme/agent' })).toBeNull();
    expect(matchWorkloadRule(rules, { repository: 'acme/agent', ref: { nested: 'refs/heads/main' } })).toBeNull();
    expect(matchWorkloadRule([rule({})], { sub: 'anything' })).toBeNull();
  });

  test('SPIFFE IDs and trust domains', () => {
    expect(spiffeTrustDomain('spiffe://example.org/ns/a')).toBe('example.org');
    expect(spiffeTrustDomain('spiffe://example.org')).toBe('example.org');
    expect(spiffeTrustDomain('https://example.org/a')).toBeNull();
    expect(spiffeTrustDomain('spiffe://Example.org/a')).toBeNull();
  });
});

describe('assurance levels', () => {
  test('ordering: none < AAL1 < AAL2 < AAL3; no requirement is always met', () => {
    expect(meetsAssurance('NHI-AAL2', 'NHI-AAL2')).toBe(true);
    expect(meetsAssurance('NHI-AAL3', 'NHI-AAL2')).toBe(true);
    expect(meetsAssurance('NHI-AAL1', 'NHI-AAL2')).toBe(false);
    expect(meetsAssurance(null, 'NHI-AAL1')).toBe(false);
    expect(meetsAssurance(null, null)).toBe(true);
  });
});
