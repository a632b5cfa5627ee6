import { BlockList, isIP } from 'node:net';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import type { TrustProxy } from '../config.js';

/**
 * The client address of a request, as the key of per-address limits (sign-in, registration).
 *
 * Behind reverse proxies the address comes from X-Forwarded-For, where each proxy appends the
 * address it received the request from (as RFC 7239 §5.2 describes for `Forwarded: for=`). Only
 * what trusted proxies appended can be believed; anything to the left may be written by the client
 * itself (RFC 7239 §8.1). So the client is the right-most address that is not a trusted proxy: the
 * entry `hops` places from the right, or the first from the right outside the trusted ranges.
 * An IPv6 client counts as its /64 network, the block one subscriber usually holds.
 */
export function createClientAddress(trust: TrustProxy, opts: { exact?: boolean } = {}): (c: Context) => string {
  const isTrusted = trust.kind === 'cidrs' ? trustedRanges(trust.cidrs) : null;
  return (c) => {
    let peer = 'unknown';
    try {
      peer = getConnInfo(c).remote.address ?? 'unknown';
    } catch {
      // Not served by @hono/node-server (app.request in tests): no peer address.
    }
    const address = pickClientAddress(trust, peer, c.req.header('x-forwarded-for'), isTrusted);
    // `exact`: the address itself (audit events) rather than the rate-limit key.
    return opts.exact ? address : addressKey(address);
  };
}

/** The client address from the peer and X-Forwarded-For, under the configured trust. */
export function pickClientAddress(
  trust: TrustProxy,
  peer: string,
  forwardedFor: string | undefined,
  isTrusted: ((address: string) => boolean) | null = trust.kind === 'cidrs' ? trustedRanges(trust.cidrs) : null,
): string {
  if (trust.kind === 'none' || forwardedFor === undefined) return normalizeAddress(peer) ?? peer;
  // Several X-Forwarded-For fields arrive joined with ", " (RFC 9110 §5.3), in the order sent.
  const chain = [...forwardedFor.split(',').map((entry) => entry.trim()), peer];
  let index: number;
  if (trust.kind === 'hops') {
    index = Math.max(0, chain.length - 1 - trust.hops);
  } else {
    index = chain.length - 1;
    while (index > 0) {
      const address = normalizeAddress(chain[index] ?? '');
      if (address === null || !isTrusted?.(address)) break;
      index -= 1;
    }
  }
  // An entry that is not an address was passed on by a trusted proxy unchecked: fall back to the
  // nearest address to its right, which a trusted proxy did write.
  for (let i = index; i < chain.length; i++) {
    const address = normalizeAddress(chain[i] ?? '');
    if (address !== null) return address;
  }
  return peer;
}

/** An IP address without brackets or port, IPv4-mapped IPv6 as IPv4; null when it is not an address. */
export function normalizeAddress(entry: string): string | null {
  let value = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(value);
  if (bracketed) value = bracketed[1] ?? '';
  else if (/^[\d.]+:\d+$/.test(value)) value = value.slice(0, value.indexOf(':'));
  const version = isIP(value);
  if (version === 4) return value;
  if (version !== 6 || value.includes('%')) return null;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(value);
  return mapped?.[1] ?? value.toLowerCase();
}

/** The rate-limit key of an address: IPv4 as it is, IPv6 as its /64 network. */
export function addressKey(address: string): string {
  if (isIP(address) !== 6) return address;
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

function trustedRanges(cidrs: { address: string; prefix: number; family: 'ipv4' | 'ipv6' }[]) {
  const list = new BlockList();
  for (const cidr of cidrs) list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  return (address: string) => list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}
