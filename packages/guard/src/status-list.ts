import { inflateSync } from 'node:zlib';
import { JWT_TYP } from '@errand/protocol';
import { type JWTVerifyGetKey, jwtVerify } from 'jose';
import { z } from 'zod';
import { isUnderIssuer } from './metadata.js';
import { ACCESS_TOKEN_ALGS } from './verify.js';

/** Largest decompressed list accepted (2^24 entries of 8 bits). */
const MAX_LIST_BYTES = 1 << 24;
/** Largest Status List Token accepted on the wire. */
const MAX_TOKEN_CHARS = 4 << 20;
/** After a failed fetch, refuse without refetching for this long (seconds), so outages do not turn into load. */
const FAILURE_COOLDOWN = 1;

const ListClaimsSchema = z.looseObject({
  sub: z.string(),
  iat: z.number(),
  exp: z.number().optional(),
  ttl: z.number().positive().optional(),
  status_list: z.looseObject({
    bits: z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8)]),
    lst: z.string().min(1).max(MAX_TOKEN_CHARS),
  }),
});

/** Inflates a status list's `lst` (base64url of DEFLATE in ZLIB format, Status List §4.1). */
export function inflateStatusList(lst: string): Buffer {
  return inflateSync(Buffer.from(lst, 'base64url'), { maxOutputLength: MAX_LIST_BYTES });
}

/** The `bits`-wide status at `idx`, packed from the least significant bit (§4.1); null beyond the list. */
export function readStatusAt(bytes: Uint8Array, idx: number, bits: 1 | 2 | 4 | 8): number | null {
  const bit = idx * bits;
  const byte = Math.floor(bit / 8);
  if (!Number.isSafeInteger(idx) || idx < 0 || byte >= bytes.length) return null;
  return (bytes[byte]! >> (bit % 8)) & ((1 << bits) - 1);
}

export interface StatusListOptions {
  issuer: string;
  getKey: JWTVerifyGetKey;
  fetch: typeof fetch;
  /** Epoch seconds. */
  now: () => number;
  /** Upper bound on caching, whatever the list's `ttl` says (seconds). */
  maxTtl: number;
  clockSkew: number;
  timeoutMs?: number;
}

/** A token's status, or why none could be established (the guard then refuses: fail closed). */
export type StatusResult = { ok: true; status: number } | { ok: false; description: string };

interface CachedList {
  bytes: Buffer;
  bits: 1 | 2 | 4 | 8;
  iat: number;
  freshUntil: number;
}

/**
 * Relying-party side of the Token Status List (draft-ietf-oauth-status-list §8.3):
 * fetches Status List Tokens only from under the issuer, validates them with the issuer's keys,
 * caches each for its `ttl` clamped to [1 s, maxTtl] and never past its `exp` (HTTP cache headers
 * are ignored: the token's own fields win), and reads a token's bits. An index beyond a cached list
 * issued no later than the token causes one refetch, since the list may have grown since.
 */
export class StatusListCache {
  private readonly lists = new Map<string, CachedList>();
  private readonly inflight = new Map<string, Promise<CachedList>>();
  private readonly failedAt = new Map<string, number>();

  constructor(private readonly opts: StatusListOptions) {}

  /** The status of entry `idx` in the list at `uri`, for a token issued at `tokenIat`. */
  async status(ref: { uri: string; idx: number }, tokenIat: number): Promise<StatusResult> {
    if (!isUnderIssuer(this.opts.issuer, ref.uri)) {
      return { ok: false, description: 'the token status list is not served by the issuer' };
    }
    try {
      let list = await this.get(ref.uri, false);
      let status = readStatusAt(list.bytes, ref.idx, list.bits);
      // Lists grow as tokens are issued: a cached list older than the token may predate its index.
      if (status === null && list.iat <= tokenIat) {
        list = await this.get(ref.uri, true);
        status = readStatusAt(list.bytes, ref.idx, list.bits);
      }
      // §8.3 step 6: an index beyond the list is an invalid reference.
      if (status === null) return { ok: false, description: 'the token status index is outside its status list' };
      return { ok: true, status };
    } catch {
      return { ok: false, description: 'the token status could not be established' };
    }
  }

  private async get(uri: string, refresh: boolean): Promise<CachedList> {
    const now = this.opts.now();
    const cached = this.lists.get(uri);
    if (cached && now < cached.freshUntil && !refresh) return cached;
    if (now - (this.failedAt.get(uri) ?? Number.NEGATIVE_INFINITY) < FAILURE_COOLDOWN) {
      throw new Error('status list recently unavailable');
    }
    let pending = this.inflight.get(uri);
    if (!pending) {
      pending = this.fetchList(uri)
        .then((list) => {
          this.lists.set(uri, list);
          this.failedAt.delete(uri);
          return list;
        })
        .catch((err: unknown) => {
          this.lists.delete(uri);
          this.failedAt.set(uri, this.opts.now());
          throw err;
        })
        .finally(() => this.inflight.delete(uri));
      this.inflight.set(uri, pending);
    }
    return pending;
  }

  private async fetchList(uri: string): Promise<CachedList> {
    const res = await this.opts.fetch(uri, {
      headers: { accept: 'application/statuslist+jwt' },
      redirect: 'error',
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
    });
    if (res.status !== 200) throw new Error(`status list answered ${res.status}`);
    if (!(res.headers.get('content-type') ?? '').toLowerCase().startsWith('application/statuslist+jwt')) {
      throw new Error('status list has the wrong content type');
    }
    const token = await res.text();
    if (token.length > MAX_TOKEN_CHARS) throw new Error('status list is too large');
    const now = this.opts.now();
    // §8.3 step 3: a valid JWT from the issuer's keys, typ statuslist+jwt, sub = the URI, exp not passed.
    const { payload } = await jwtVerify(token, this.opts.getKey, {
      algorithms: [...ACCESS_TOKEN_ALGS],
      typ: JWT_TYP.statusList,
      subject: uri,
      requiredClaims: ['iat'],
      clockTolerance: this.opts.clockSkew,
      currentDate: new Date(now * 1000),
    });
    const claims = ListClaimsSchema.parse(payload);
    if (claims.iss !== undefined && claims.iss !== this.opts.issuer) throw new Error('status list from another issuer');
    if (claims.iat > now + this.opts.clockSkew) throw new Error('status list issued in the future');
    // §8.2: ttl (or else exp) decides refetching, clamped to sane bounds; never cached past exp.
    const horizon = claims.ttl ?? (claims.exp !== undefined ? claims.exp - now : this.opts.maxTtl);
    let freshUntil = now + Math.min(Math.max(horizon, 1), this.opts.maxTtl);
    if (claims.exp !== undefined) freshUntil = Math.min(freshUntil, claims.exp);
    return {
      bytes: inflateStatusList(claims.status_list.lst),
      bits: claims.status_list.bits,
      iat: claims.iat,
      freshUntil,
    };
  }
}
