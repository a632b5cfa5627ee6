/**
 * Outbound HTTP for URLs chosen by possibly hostile parties (Client ID Metadata Documents, client `jwks_uri`).
 *
 * The OAuth Client ID Metadata Document draft (Security Considerations, "Server-Side Request Forgery") warns
 * that an authorization server dereferencing client-chosen URLs can be turned into a proxy for the internal
 * network. Defences here: https only, no redirects, every resolved address checked against the RFC 6890
 * special-purpose registries, the connection pinned to the checked address (no DNS rebinding window), and
 * hard caps on time and size. Error messages are written to be safe to return to the API caller.
 */

import { lookup as dnsLookup } from 'node:dns/promises';
import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import type { ConcurrencyLimit } from '../core/concurrency-limit.js';
import type { FetchKind, Metrics } from '../core/metrics.js';
import { inSpan, SpanKind } from '../telemetry/tracing.js';

export interface SafeFetchOptions {
  /** Dev only: permit loopback/private targets, and plain http when the host is loopback. */
  allowPrivate: boolean;
  /** Budget for the whole request, including DNS and reading the body. */
  timeoutMs: number;
  /** Body cap; a larger body is an error rather than silently truncated. */
  maxBytes: number;
  /**
   * Fetches in flight per host and in total; one more fails at once with reason `busy`, before any
   * DNS lookup or connection.
   */
  limit?: Pick<ConcurrencyLimit, 'acquire'>;
  /** What the fetch is for, and the metrics that count its outcome; a client span is recorded too. */
  observe?: { kind: FetchKind; metrics: Metrics };
}

/** What to send, and which answers count: by default a GET whose only accepted status is 200. */
export interface SafeRequest {
  accept: string;
  expectJson?: boolean;
  method?: 'GET' | 'POST';
  /** Extra request headers; `host`, `accept-encoding` and `content-length` are Errand's own. */
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Statuses resolved rather than refused (redirects are always refused). */
  acceptStatus?: (status: number) => boolean;
}

export type SafeFetchErrorReason =
  | 'invalid_url'
  | 'forbidden_address'
  | 'redirect'
  | 'status'
  | 'too_large'
  | 'timeout'
  | 'content_type'
  | 'network'
  | 'busy';

/** A refusal or failure whose message is safe to show to an API caller (never contains response bodies). */
export class SafeFetchError extends Error {
  readonly reason: SafeFetchErrorReason;

  constructor(reason: SafeFetchErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SafeFetchError';
    this.reason = reason;
  }
}

export interface SafeFetchResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

// ---------------------------------------------------------------------------------------------------------
// Address classification
// ---------------------------------------------------------------------------------------------------------

interface Cidr {
  bytes: Uint8Array;
  prefix: number;
}

function parseIPv4(s: string): Uint8Array | null {
  // Strict dotted-quad only; the WHATWG URL parser has already normalised forms like `0x7f.1`.
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseIPv6(s: string): Uint8Array | null {
  // Zone IDs only make sense for link-local targets, which are forbidden anyway; fail closed.
  if (s.includes('%')) return null;
  let text = s.toLowerCase();
  let embeddedV4: Uint8Array | null = null;
  if (text.includes('.')) {
    const lastColon = text.lastIndexOf(':');
    if (lastColon < 0) return null;
    embeddedV4 = parseIPv4(text.slice(lastColon + 1));
    if (!embeddedV4) return null;
    // Keep the trailing ':' so a preceding '::' stays intact; a placeholder group stands in for the v4 part.
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parseGroups = (part: string): number[] | null => {
    if (part === '') return [];
    const groups: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
      groups.push(Number.parseInt(g, 16));
    }
    return groups;
  };
  const head = parseGroups(halves[0]!);
  const tail = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (!head || !tail) return null;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    if (head.length !== 8) return null;
    groups = head;
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (embeddedV4) out.set(embeddedV4, 12);
  return out;
}

function cidr(spec: string): Cidr {
  const [addr, len] = spec.split('/');
  const bytes = addr === undefined ? null : addr.includes(':') ? parseIPv6(addr) : parseIPv4(addr);
  const prefix = Number(len);
  if (!bytes || !Number.isInteger(prefix) || prefix < 0 || prefix > bytes.length * 8) {
    throw new Error(`bad CIDR literal: ${spec}`);
  }
  return { bytes, prefix };
}

function inCidr(addr: Uint8Array, range: Cidr): boolean {
  if (addr.length !== range.bytes.length) return false;
  const fullBytes = range.prefix >> 3;
  for (let i = 0; i < fullBytes; i++) {
    if (addr[i] !== range.bytes[i]) return false;
  }
  const remBits = range.prefix & 7;
  if (remBits === 0) return true;
  const mask = (0xff << (8 - remBits)) & 0xff;
  return ((addr[fullBytes]! ^ range.bytes[fullBytes]!) & mask) === 0;
}

// RFC 6890 (plus later registry additions) special-purpose IPv4 blocks: none is a legitimate public web host.
const FORBIDDEN_V4: readonly Cidr[] = [
  '0.0.0.0/8', // "this network" (RFC 1122); 0.0.0.0 reaches the local host on many stacks
  '10.0.0.0/8', // private (RFC 1918)
  '100.64.0.0/10', // shared address space / CGNAT (RFC 6598)
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, incl. the 169.254.169.254 cloud metadata service
  '172.16.0.0/12', // private (RFC 1918)
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // TEST-NET-1
  '192.88.99.0/24', // 6to4 relay anycast (deprecated)
  '192.168.0.0/16', // private (RFC 1918)
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // TEST-NET-2
  '203.0.113.0/24', // TEST-NET-3
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved
  '255.255.255.255/32', // limited broadcast
].map(cidr);

// IPv6 is checked as an allow-list of global unicast (2000::/3) minus the special-purpose blocks inside it:
// everything outside 2000::/3 (::, ::1, fc00::/7, fe80::/10, ff00::/8, 64:ff9b::/96, ::/96, ...) is
// either special-purpose or unallocated, so there is no legitimate public host there.
const GLOBAL_UNICAST_V6 = cidr('2000::/3');
const FORBIDDEN_V6: readonly Cidr[] = [
  '::/128', // unspecified
  '::1/128', // loopback
  '64:ff9b::/96', // NAT64 (RFC 6052): would reach an arbitrary embedded IPv4 address
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215)
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  'ff00::/8', // multicast
  '2001::/23', // IETF protocol assignments (Teredo, benchmarking, ORCHID, ...)
  '2001:db8::/32', // documentation
  '2002::/16', // 6to4: tunnels to an arbitrary embedded IPv4 address
  '3fff::/20', // documentation (RFC 9637)
].map(cidr);
const V4_MAPPED = cidr('::ffff:0:0/96');
const LOOPBACK_V4 = cidr('127.0.0.0/8');
const LOOPBACK_V6 = cidr('::1/128');

function classify(ip: string): { v4: Uint8Array } | { v6: Uint8Array } | null {
  const v4 = parseIPv4(ip);
  if (v4) return { v4 };
  const v6 = parseIPv6(ip);
  if (!v6) return null;
  // An IPv4-mapped address connects to the embedded IPv4 host, so judge it by that.
  if (inCidr(v6, V4_MAPPED)) return { v4: v6.slice(12) };
  return { v6 };
}

/**
 * Whether `ip` must never be the target of a server-side fetch (RFC 6890 special-purpose addresses).
 * Anything that does not parse as an IP address is treated as forbidden.
 */
export function isForbiddenAddress(ip: string): boolean {
  const c = classify(ip);
  if (!c) return true;
  if ('v4' in c) return FORBIDDEN_V4.some((r) => inCidr(c.v4, r));
  return !inCidr(c.v6, GLOBAL_UNICAST_V6) || FORBIDDEN_V6.some((r) => inCidr(c.v6, r));
}

function isLoopbackAddress(ip: string): boolean {
  const c = classify(ip);
  if (!c) return false;
  return 'v4' in c ? inCidr(c.v4, LOOPBACK_V4) : inCidr(c.v6, LOOPBACK_V6);
}

// ---------------------------------------------------------------------------------------------------------
// Fetch
// ---------------------------------------------------------------------------------------------------------

interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

interface Target {
  url: URL;
  /** Hostname without IPv6 brackets. */
  host: string;
  isHttps: boolean;
}

function parseTarget(raw: string, allowPrivate: boolean): Target {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SafeFetchError('invalid_url', 'URL is not a valid absolute URL');
  }
  const isHttps = url.protocol === 'https:';
  if (!isHttps && !(url.protocol === 'http:' && allowPrivate)) {
    throw new SafeFetchError('invalid_url', 'URL must use the https scheme');
  }
  // Credentials in a client-supplied URL would be replayed by us on the client's behalf; never meaningful here.
  if (url.username !== '' || url.password !== '') {
    throw new SafeFetchError('invalid_url', 'URL must not contain user credentials');
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') throw new SafeFetchError('invalid_url', 'URL must have a host');
  return { url, host, isHttps };
}

async function resolve(host: string): Promise<ResolvedAddress[]> {
  const literal = isIP(host);
  if (literal !== 0) return [{ address: host, family: literal === 6 ? 6 : 4 }];
  let found: { address: string; family: number }[];
  try {
    found = await dnsLookup(host, { all: true });
  } catch (err) {
    throw new SafeFetchError('network', 'URL host could not be resolved', { cause: err });
  }
  if (found.length === 0) throw new SafeFetchError('network', 'URL host could not be resolved');
  return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
}

function checkAddresses(target: Target, addresses: readonly ResolvedAddress[], allowPrivate: boolean): void {
  // One bad record is enough: an attacker controlling DNS could otherwise mix a public and an internal address.
  if (!allowPrivate && addresses.some((a) => isForbiddenAddress(a.address))) {
    throw new SafeFetchError('forbidden_address', 'URL resolves to a forbidden address');
  }
  if (!target.isHttps && !addresses.every((a) => isLoopbackAddress(a.address))) {
    throw new SafeFetchError('invalid_url', 'plain http is only allowed to loopback hosts in development');
  }
}

/** A `lookup` that only ever hands out the addresses we already validated, closing the DNS-rebinding window. */
function pinnedLookup(addresses: readonly ResolvedAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) {
      callback(
        null,
        addresses.map((a) => ({ address: a.address, family: a.family })),
      );
    } else {
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    }
  };
}

function collectHeaders(raw: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const prev = headers[name];
    headers[name] = prev === undefined ? value : `${prev}, ${value}`;
  }
  return headers;
}

function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const mediaType = (value.split(';')[0] ?? '').trim().toLowerCase();
  return mediaType === 'application/json' || /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+\+json$/.test(mediaType);
}

function networkError(err: unknown): SafeFetchError {
  // Only the error code is surfaced: Node's messages can embed addresses the caller should not learn.
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const suffix = typeof code === 'string' && /^[A-Z0-9_]+$/.test(code) ? ` (${code})` : '';
  return new SafeFetchError('network', `URL could not be fetched${suffix}`, { cause: err });
}

const OWN_HEADERS = new Set(['host', 'accept-encoding', 'content-length', 'connection', 'transfer-encoding']);

function send(
  target: Target,
  addresses: readonly ResolvedAddress[],
  opts: SafeFetchOptions & SafeRequest,
  signal: AbortSignal,
): Promise<SafeFetchResult> {
  return new Promise<SafeFetchResult>((resolvePromise, rejectPromise) => {
    let settled = false;
    const onAbort = (): void => fail(timeoutError(opts.timeoutMs));
    const finish = (): void => {
      settled = true;
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (err: SafeFetchError): void => {
      if (settled) return;
      finish();
      req.destroy();
      rejectPromise(err);
    };

    const requestFn = target.isHttps ? httpsRequest : httpRequest;
    const req = requestFn({
      protocol: target.url.protocol,
      // Connect by hostname so TLS SNI and certificate checks use it; `lookup` pins the actual address.
      hostname: target.host,
      port: target.url.port === '' ? (target.isHttps ? 443 : 80) : Number(target.url.port),
      path: `${target.url.pathname}${target.url.search}`,
      method: opts.method ?? 'GET',
      headers: {
        'user-agent': 'Errand-AuthorizationServer',
        ...Object.fromEntries(
          Object.entries(opts.headers ?? {}).filter(([name]) => !OWN_HEADERS.has(name.toLowerCase())),
        ),
        host: target.url.host,
        accept: opts.accept,
        // We do not decompress, so the size cap applies to exactly what we buffer.
        'accept-encoding': 'identity',
        ...(opts.body ? { 'content-length': String(opts.body.byteLength) } : {}),
      },
      lookup: pinnedLookup(addresses),
      ...(target.isHttps && isIP(target.host) === 0 ? { servername: target.host } : {}),
      // A fresh connection every time: a pooled socket would bypass validation of this request's resolution.
      agent: false,
    });

    req.on('error', (err) => fail(networkError(err)));
    req.on('response', (res: IncomingMessage) => {
      res.on('error', (err) => fail(networkError(err)));
      const status = res.statusCode ?? 0;
      // Following a redirect would let an approved URL bounce us to any target, so none are followed.
      if (status >= 300 && status < 400) {
        fail(
          new SafeFetchError('redirect', `URL responded with a redirect (HTTP ${status}); redirects are not followed`),
        );
        return;
      }
      if (!(opts.acceptStatus ?? ((s: number) => s === 200))(status)) {
        fail(new SafeFetchError('status', `URL responded with HTTP ${status}`));
        return;
      }
      const headers = collectHeaders(res.rawHeaders);
      if (opts.expectJson && !isJsonContentType(headers['content-type'])) {
        fail(new SafeFetchError('content_type', 'URL did not respond with a JSON content type'));
        return;
      }
      const declared = headers['content-length'];
      if (declared !== undefined && /^\d+$/.test(declared.trim()) && Number(declared.trim()) > opts.maxBytes) {
        fail(tooLargeError(opts.maxBytes));
        return;
      }
      const chunks: Buffer[] = [];
      let total = 0;
      res.on('data', (chunk: Buffer) => {
        if (settled) return;
        total += chunk.length;
        if (total > opts.maxBytes) {
          fail(tooLargeError(opts.maxBytes));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (settled) return;
        if (!res.complete) {
          fail(new SafeFetchError('network', 'URL response was cut off before completion'));
          return;
        }
        finish();
        resolvePromise({ status, headers, body: Buffer.concat(chunks, total) });
      });
    });

    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    req.end(opts.body);
  });
}

function timeoutError(timeoutMs: number): SafeFetchError {
  return new SafeFetchError('timeout', `URL did not respond within ${timeoutMs} ms`);
}

function tooLargeError(maxBytes: number): SafeFetchError {
  return new SafeFetchError('too_large', `URL response exceeds the ${maxBytes}-byte limit`);
}

/**
 * Checks a URL Errand will call later (it is not fetched now) under the same rules: scheme, no
 * credentials, and every address its host resolves to. Rejects with a SafeFetchError.
 */
export async function checkPublicUrl(url: string, allowPrivate: boolean): Promise<void> {
  const target = parseTarget(url, allowPrivate);
  checkAddresses(target, await resolve(target.host), allowPrivate);
}

/**
 * Sends a request (a GET by default) to `url` under the SSRF rules above. Resolves only for a complete
 * response within the limits with an accepted status (200 by default); everything else rejects with a
 * SafeFetchError.
 */
export async function safeFetch(url: string, opts: SafeFetchOptions & SafeRequest): Promise<SafeFetchResult> {
  const { observe } = opts;
  if (!observe) return fetchChecked(url, opts);
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  // The host only: a URL's path and query may carry what its owner considers private.
  const attributes = {
    'errand.fetch.kind': observe.kind,
    'http.request.method': opts.method ?? 'GET',
    'server.address': hostOf(url),
  };
  return inSpan(
    'errand.fetch',
    attributes,
    async (span) => {
      try {
        const res = await fetchChecked(url, opts);
        span.setAttribute('http.response.status_code', res.status);
        observe.metrics.outboundFetch(observe.kind, 'ok', seconds());
        return res;
      } catch (err) {
        observe.metrics.outboundFetch(observe.kind, err instanceof SafeFetchError ? err.reason : 'error', seconds());
        throw err;
      }
    },
    { kind: SpanKind.CLIENT },
  );
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname.slice(0, 253);
  } catch {
    return '(invalid)';
  }
}

async function fetchChecked(url: string, opts: SafeFetchOptions & SafeRequest): Promise<SafeFetchResult> {
  const target = parseTarget(url, opts.allowPrivate);
  // Per host name, whatever the port: one host is one target, however many ports it listens on.
  const release = opts.limit ? opts.limit.acquire(target.host.toLowerCase()) : () => {};
  if (!release) throw new SafeFetchError('busy', 'too many outbound fetches are in progress; try again later');
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), opts.timeoutMs);
  try {
    // DNS cannot be cancelled, but its answer is ignored once the deadline has passed.
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener('abort', () => reject(timeoutError(opts.timeoutMs)), { once: true });
    });
    aborted.catch(() => {});
    const addresses = await Promise.race([resolve(target.host), aborted]);
    checkAddresses(target, addresses, opts.allowPrivate);
    return await send(target, addresses, opts, controller.signal);
  } finally {
    clearTimeout(timer);
    release();
  }
}
