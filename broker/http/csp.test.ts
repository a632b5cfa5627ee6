import { describe, expect, test } from 'vitest';
import { contentSecurityPolicy, formActionSource } from './csp.js';

describe('formActionSource: the CSP source that lets the consent form’s redirect reach the client', () => {
  test.each([
    ['https://app.example.com/cb?x=1', 'https://app.example.com'],
    ['https://app.example.com:8443/oauth/callback', 'https://app.example.com:8443'],
    ['http://127.0.0.1:53682/callback', 'http://127.0.0.1:53682'],
    ['http://localhost:8080/cb', 'http://localhost:8080'],
    ['https://bücher.example/cb', 'https://xn--bcher-kva.example'],
    // RFC 8252 §7.1 private-use scheme: the scheme is the narrowest source there is.
    ['com.example.app:/oauth2redirect', 'com.example.app:'],
    ['com.example.app://callback', 'com.example.app:'],
  ])('%s → %s', (uri, source) => {
    expect(formActionSource(uri)).toBe(source);
  });

  test.each([
    // The CSP grammar has no IP-literal hosts (Chromium ignores such a source).
    'http://[::1]:8400/cb',
    'https://[2001:db8::1]/cb',
    'javascript:alert(1)',
    'data:text/html,x',
    'not a url',
  ])('%s has no source expression', (uri) => {
    expect(formActionSource(uri)).toBeNull();
  });
});

describe('contentSecurityPolicy', () => {
  test('pages may post only to Errand unless a target is named', () => {
    expect(contentSecurityPolicy()).toContain("form-action 'self';");
    expect(contentSecurityPolicy(null)).toContain("form-action 'self';");
    expect(contentSecurityPolicy('http://127.0.0.1:53682')).toContain("form-action 'self' http://127.0.0.1:53682;");
  });

  test('the rest of the policy stays strict', () => {
    const csp = contentSecurityPolicy('com.example.app:');
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "object-src 'none'",
    ]) {
      expect(csp).toContain(directive);
    }
  });
});
