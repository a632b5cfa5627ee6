import type { ActClaim } from '@errand/protocol';
import { canonicalizeResource, isToolAllowed, toolsAllowedAt } from '@errand/protocol';
import { z } from 'zod';
import { describeTools, failure, type GuardFailure } from './challenge.js';
import { IssuerKeys } from './discovery.js';
import { DPOP_ALGS, ReplayCache, verifyDpopProof } from './dpop.js';
import { type ProtectedResourceMetadata, protectedResourceMetadataPath } from './metadata.js';
import { type PushOptions, RevocationPush, type RevokedNotice } from './push.js';
import { StatusListCache } from './status-list.js';
import { type AccessTokenClaims, checkAccessToken, scopeCovers } from './verify.js';

/** What `createGuard` needs: the issuer to trust and the resource this server is. */
export interface GuardOptions {
  /** The authorization server's issuer identifier, exactly as in its metadata. */
  issuer: string;
  /** This server's resource identifier (RFC 8707), e.g. `https://tools.example/mcp`. */
  resource: string;
  scopesSupported?: string[];
  resourceName?: string;
  /** Scope implications beyond the `a` ⊇ `a:b` rule, e.g. `{ 'notes:write': ['notes:read'] }`. */
  scopeHierarchy?: Record<string, string[]>;
  fetch?: typeof fetch;
  /** Leeway for `exp`, `nbf` and `iat` checks, in seconds (default 30). */
  clockSkew?: number;
  statusList?: { maxTtl: number };
  /** Credentials for Errand's revocation push channel; without them only the status list is used. */
  push?: PushOptions;
  /** Epoch seconds (tests move it). */
  now?: () => number;
}

/** The HTTP request facts the guard looks at. */
export interface GuardRequest {
  authorization?: string | null | undefined;
  dpop?: string | null | undefined;
  method: string;
  /** The full request URL as the client addressed it. */
  url: string;
}

/** An accepted request: who is calling, for what, under which task. */
export interface VerifiedAccess {
  ok: true;
  claims: AccessTokenClaims;
  scopes: string[];
  /**
   * The MCP tools the token may call at this resource (RFC 9396 `mcp_tool` entries naming it):
   * `null` when it carries no such entry, so its scopes alone decide; otherwise only these.
   */
  tools: string[] | null;
  sub: string;
  clientId: string;
  taskId: string | null;
  act: ActClaim | null;
}

/** What an operation needs beyond a valid token. */
export interface VerifyRequirements {
  /** Scopes the token must carry (each may be covered by a broader one, see `scopeCovers`). */
  scopes?: readonly string[];
  /** MCP tools the operation calls: each must be granted by the token's `mcp_tool` details, if any. */
  tools?: readonly string[];
}

export type GuardResult = VerifiedAccess | GuardFailure;

const OptionsSchema = z.object({
  issuer: z.url(),
  resource: z.url(),
  clockSkew: z.number().min(0).max(300).optional(),
  statusList: z.object({ maxTtl: z.number().min(1).max(86_400) }).optional(),
});

// RFC 6750 §2: `Authorization: Bearer <b64token>`; RFC 9449 §7.1: the same with the DPoP scheme.
const AUTHORIZATION = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** A resource server's verifier for Errand-issued (RFC 9068) access tokens. */
export class Guard {
  /** The canonical resource identifier (what PRM `resource` says and `aud` must contain). */
  readonly resource: string;
  readonly issuer: string;
  /** Path of this resource's RFC 9728 metadata, e.g. `/.well-known/oauth-protected-resource/mcp`. */
  readonly metadataPath: string;
  /** Absolute URL of the metadata: the `resource_metadata` challenge parameter. */
  readonly metadataUrl: string;
  private readonly keys: IssuerKeys;
  private readonly lists: StatusListCache;
  private readonly push: RevocationPush | null;
  private readonly replay = new ReplayCache();
  private readonly now: () => number;
  private readonly skew: number;

  constructor(private readonly options: GuardOptions) {
    OptionsSchema.parse(options);
    const resource = canonicalizeResource(options.resource);
    if (!resource || new URL(options.resource).search) {
      throw new Error('guard: resource must be an http(s) URL without query or fragment');
    }
    this.resource = resource;
    this.issuer = options.issuer;
    this.metadataPath = protectedResourceMetadataPath(resource);
    this.metadataUrl = `${new URL(resource).origin}${this.metadataPath}`;
    const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.now = options.now ?? (() => Date.now() / 1000);
    this.skew = options.clockSkew ?? 30;
    this.keys = new IssuerKeys({ issuer: options.issuer, fetch: fetchImpl, now: this.now });
    this.lists = new StatusListCache({
      issuer: options.issuer,
      getKey: this.keys.getKey,
      fetch: fetchImpl,
      now: this.now,
      maxTtl: options.statusList?.maxTtl ?? 60,
      clockSkew: this.skew,
    });
    this.push = options.push
      ? new RevocationPush(
          {
            issuer: options.issuer,
            resource,
            fetch: fetchImpl,
            now: this.now,
            clockSkew: this.skew,
            // Errand access tokens live at most 3600 s (ERRAND_ACCESS_TOKEN_TTL); events do not carry exp.
            retain: 3600 + this.skew,
          },
          options.push,
        )
      : null;
  }

  /**
   * Verifies a request's access token, and optionally that it carries `scopes` and grants `tools`.
   *
   * @example
   * ```ts
   * const access = await guard.verify(
   *   { authorization: req.headers.get('authorization'), dpop: req.headers.get('dpop'), method: req.method, url: req.url },
   *   { scopes: ['notes:write'], tools: ['write_note'] },
   * );
   * if (!access.ok) return new Response(null, { status: access.status, headers: { 'WWW-Authenticate': access.wwwAuthenticate } });
   * ```
   */
  async verify(req: GuardRequest, opts: VerifyRequirements = {}): Promise<GuardResult> {
    const required = opts.scopes ?? [];
    const hint = required.length > 0 ? required : (this.options.scopesSupported ?? []);
    const challenge = { resourceMetadata: this.metadataUrl, scope: hint };
    const refuse = (description: string) => failure(401, 'invalid_token', description, challenge);

    // OAuth 2.1 §5.2 / MCP: never from the query string, even next to a header.
    if (hasQueryToken(req.url)) {
      return failure(401, 'invalid_request', 'send the access token in the Authorization header only', challenge);
    }
    if (!req.authorization) {
      return failure(401, 'invalid_request', 'an access token is required', { ...challenge, omitError: true });
    }
    const match = AUTHORIZATION.exec(req.authorization);
    if (!match) return refuse('the Authorization header must be "Bearer <token>" or "DPoP <token>"');
    const usesDpop = match[1]!.toLowerCase() === 'dpop';
    const token = match[2]!;

    const checked = await checkAccessToken(token, {
      issuer: this.issuer,
      resource: this.resource,
      getKey: this.keys.getKey,
      now: this.now(),
      clockSkew: this.skew,
    });
    if (!checked.ok) return refuse(checked.description);
    const { claims, scopes } = checked;

    // RFC 9449 §7.1: a bound token needs the DPoP scheme and a proof by its key; no downgrade to Bearer.
    const jkt = claims.cnf?.jkt;
    const dpopChallenge = { ...challenge, dpopAlgs: DPOP_ALGS };
    if (jkt !== undefined) {
      if (!usesDpop)
        return failure(401, 'invalid_token', 'this token is DPoP-bound: use the DPoP scheme', dpopChallenge);
      const proof = await verifyDpopProof({
        proof: req.dpop,
        method: req.method,
        url: req.url,
        accessToken: token,
        jkt,
        now: this.now(),
        replay: this.replay,
        clockSkew: this.skew,
      });
      if (!proof.ok) return failure(401, proof.error, proof.description, dpopChallenge);
    } else if (usesDpop) {
      return failure(401, 'invalid_token', 'this token is not DPoP-bound: use the Bearer scheme', dpopChallenge);
    }

    // Revocation: the push channel answers at once; the status list bounds the delay for the rest.
    if (this.push?.isRevoked(claims.jti, claims.exp)) return refuse('the access token has been revoked');
    if (claims.status !== undefined) {
      const ref = claims.status.status_list;
      if (!ref) return refuse('the token status could not be established');
      const status = await this.lists.status(ref, claims.iat);
      if (!status.ok) return refuse(status.description);
      if (status.status !== 0) return refuse('the access token has been revoked');
    }

    const hierarchy = this.options.scopeHierarchy ?? {};
    if (!required.every((s) => scopeCovers(scopes, s, hierarchy))) {
      // MCP §Runtime Insufficient Scope Errors: name every scope the operation needs.
      return failure(403, 'insufficient_scope', `this operation needs scope ${required.join(' ')}`, challenge);
    }
    const tools = toolsAllowedAt(claims.authorization_details, this.resource);
    const notGranted = [...new Set(opts.tools ?? [])].filter((t) => !isToolAllowed(tools, t));
    if (notGranted.length > 0) {
      // RFC 6750 §3.1: the token lacks a privilege the request needs; here a tool its RFC 9396
      // mcp_tool grant leaves out, which no scope can make up for.
      const description = `the token does not grant ${describeTools(notGranted)} at this resource`;
      return failure(403, 'insufficient_scope', description, challenge);
    }
    return {
      ok: true,
      claims,
      scopes,
      tools,
      sub: claims.sub,
      clientId: claims.client_id,
      taskId: claims.task_id ?? null,
      act: claims.act ?? null,
    };
  }

  /** Whether a verified token may call MCP tool `name` here (its scopes are checked separately). */
  mayCallTool(access: VerifiedAccess, name: string): boolean {
    return isToolAllowed(access.tools, name);
  }

  /** This resource's RFC 9728 metadata document. */
  protectedResourceMetadata(): ProtectedResourceMetadata {
    // MCP 2026-07-28 §Refresh Tokens: offline_access is not a resource scope.
    const scopes = this.options.scopesSupported?.filter((s) => s !== 'offline_access');
    return {
      resource: this.resource,
      authorization_servers: [this.issuer],
      ...(scopes ? { scopes_supported: scopes } : {}),
      bearer_methods_supported: ['header'],
      ...(this.options.resourceName ? { resource_name: this.options.resourceName } : {}),
      dpop_signing_alg_values_supported: [...DPOP_ALGS],
    };
  }

  /** Opens the revocation push channel (needs `push` options); resolves once it is live. */
  connect(): Promise<void> {
    if (!this.push) return Promise.reject(new Error('guard: connect() needs the push option'));
    return this.push.connect();
  }

  /** Whether the push channel is currently open. */
  get pushConnected(): boolean {
    return this.push?.connected ?? false;
  }

  /** Subscribes to revocations received over the push channel; returns the unsubscribe. */
  onRevoked(listener: (notice: RevokedNotice) => void): () => void {
    if (!this.push) throw new Error('guard: onRevoked() needs the push option');
    return this.push.onRevoked(listener);
  }

  /** Stops the push channel. */
  close(): void {
    this.push?.close();
  }
}

function hasQueryToken(url: string): boolean {
  try {
    return new URL(url).searchParams.has('access_token');
  } catch {
    return false;
  }
}

/** Creates a guard for one resource served by this process. */
export function createGuard(options: GuardOptions): Guard {
  return new Guard(options);
}
