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
    // A literal `/` (or `~`) in a claim name is reached only through the RFC 6901 escapes.
    expect(claimAt({ 'a/b': 1 }, 'a/b')).toBeUndefined();
    expect(claimAt({ 'a/b': 1 }, 'a~1b')).toBe(1);
    expect(claimAt({ 'a~b': { c: 2 } }, 'a~0b/c')).toBe(2);
  });

  test('a top-level claim named like a nested path never stands in for it', () => {
    const aal3 = rule(
      { sub: ['spiffe://td/hw-*'] },
      { assurance: 'NHI-AAL3', attestation: { claim: 'attestation/node', value: 'tpm' } },
    );
    // The workload chose a claim literally named "attestation/node"; the issuer attested "software".
    const forged = { sub: 'spiffe://td/hw-1', 'attestation/node': 'tpm', attestation: { node: 'software' } };
    expect(matchWorkloadRule([aal3], forged)).toBeNull();
    expect(matchWorkloadRule([aal3], { sub: 'spiffe://td/hw-1', 'attestation/node': 'tpm' })).toBeNull();
    expect(matchWorkloadRule([aal3], { sub: 'spiffe://td/hw-1', attestation: { node: 'tpm' } })).toBe(aal3);
  });

  test('an array claim matches only through a path that asks for any element ([])', () => {
    const attested = rule({ sub: ['x'] }, { assurance: 'NHI-AAL3', attestation: { claim: 'att', value: 'tpm' } });
    expect(matchWorkloadRule([attested], { sub: 'x', att: ['none', 'tpm'] })).toBeNull();
    expect(matchWorkloadRule([rule({ groups: ['admins'] })], { groups: ['users', 'admins'] })).toBeNull();
    expect(matchWorkloadRule([rule({ sub: ['x', 'y'] })], { sub: ['y'] })).toBeNull();
    const anyOf = rule(
      { 'groups[]': ['adm*'] },
      { assurance: 'NHI-AAL3', attestation: { claim: 'amr[]', value: 'tpm' } },
    );
    expect(matchWorkloadRule([anyOf], { groups: ['users', 'admins'], amr: ['none', 'tpm'] })).toBe(anyOf);
    expect(matchWorkloadRule([anyOf], { groups: ['users', 'admins'], amr: 'tpm' })).toBeNull();
    expect(matchWorkloadRule([anyOf], { groups: [['admins']], amr: ['tpm'] })).toBeNull();
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
