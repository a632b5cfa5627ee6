import { describe, expect, test } from 'vitest';
import { loadConfig, type TrustProxy } from '../config.js';
import { addressKey, normalizeAddress, pickClientAddress } from './client-address.js';

const trust = (value: string): TrustProxy => loadConfig({ ERRAND_TRUST_PROXY: value }).http.trustProxy;

describe('pickClientAddress', () => {
  test('without trusted proxies the peer is the client, whatever X-Forwarded-For says', () => {
    expect(pickClientAddress(trust('false'), '192.0.2.1', '203.0.113.5')).toBe('192.0.2.1');
    expect(pickClientAddress(trust('false'), '::ffff:192.0.2.1', undefined)).toBe('192.0.2.1');
  });

  test('with hops, the entry that many places from the right', () => {
    const xff = 'spoofed, 198.51.100.1, 10.0.0.2';
    expect(pickClientAddress(trust('1'), '10.0.0.1', xff)).toBe('10.0.0.2');
    expect(pickClientAddress(trust('2'), '10.0.0.1', xff)).toBe('198.51.100.1');
    // Fewer entries than hops: the left-most, never something further left the client made up.
    expect(pickClientAddress(trust('3'), '10.0.0.1', '198.51.100.1, 10.0.0.2')).toBe('198.51.100.1');
    expect(pickClientAddress(trust('1'), '10.0.0.1', undefined)).toBe('10.0.0.1');
  });

  test('with ranges, the right-most address outside them', () => {
    const ranges = trust('10.0.0.0/8, 127.0.0.1, fd00::/8');
    expect(pickClientAddress(ranges, '127.0.0.1', '6.6.6.6, 198.51.100.1, fd00::1, 10.1.1.1')).toBe('198.51.100.1');
    expect(pickClientAddress(ranges, '::ffff:127.0.0.1', '198.51.100.1')).toBe('198.51.100.1');
    // An untrusted peer is the client: its X-Forwarded-For is not believed at all.
    expect(pickClientAddress(ranges, '192.0.2.9', '198.51.100.1')).toBe('192.0.2.9');
    // Everything trusted: the left-most.
    expect(pickClientAddress(ranges, '127.0.0.1', '10.0.0.7, 10.0.0.8')).toBe('10.0.0.7');
  });

  test('entries with ports and brackets are read; garbage falls back to the proxy that passed it on', () => {
    expect(pickClientAddress(trust('1'), '10.0.0.1', '198.51.100.1:4711')).toBe('198.51.100.1');
    expect(pickClientAddress(trust('1'), '10.0.0.1', '[2001:db8::1]:443')).toBe('2001:db8::1');
    expect(pickClientAddress(trust('1'), '10.0.0.1', 'unknown')).toBe('10.0.0.1');
    expect(pickClientAddress(trust('2'), '10.0.0.1', 'x, <script>, 10.0.0.2')).toBe('10.0.0.2');
    expect(pickClientAddress(trust('10.0.0.0/8'), '10.0.0.1', 'evil\r\nx, 10.0.0.2')).toBe('10.0.0.2');
  });
});

describe('addresses as limit keys', () => {
  test('normalizeAddress accepts IP addresses only', () => {
    expect(normalizeAddress(' 192.0.2.1 ')).toBe('192.0.2.1');
    expect(normalizeAddress('[::FFFF:192.0.2.1]')).toBe('192.0.2.1');
    expect(normalizeAddress('2001:DB8::1')).toBe('2001:db8::1');
    for (const bad of ['', 'unknown', 'evil.example', '1.2.3', '999.1.1.1', 'fe80::1%eth0', '[::1']) {
      expect(normalizeAddress(bad)).toBeNull();
    }
  });

  test('an IPv6 address counts as its /64, an IPv4 address as itself', () => {
    expect(addressKey('192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
    expect(addressKey('unknown')).toBe('unknown');
  });
});
