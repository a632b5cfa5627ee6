import { type ASSURANCE_LEVELS, GRANT_TYPE, TOKEN_TYPE } from '@errand/protocol';
import type { AgentCredential } from './credentials.js';
import { DpopKey } from './dpop-key.js';
import { AgentTask, exchangeForTask, type Handoff } from './task.js';
import { sleep } from './util.js';
import { ErrandError, ErrandWire } from './wire.js';

export interface ErrandAgentOptions {
  /** Errand's issuer identifier, e.g. `https://errand.example`. */
  issuer: string;
  /** How the agent authenticates: `workloadIdentity(...)` (no secret at Errand) or `privateKeyJwt(...)`. */
  credential: AgentCredential;
  /** A new DPoP key for every task instead of one per agent (default false). */
  keyPerTask?: boolean;
  /** Refresh a task token this many seconds before it expires (default 30, at most half its life). */
  refreshMargin?: number;
  fetch?: typeof fetch;
  /** Milliseconds since the epoch (default `Date.now`). */
  now?: () => number;
}

/** A delegation the user approved: the credential the agent starts tasks with. */
export interface Delegation {
  id: string;
  /** The delegation credential: usable only at Errand, only by this agent. */
  credential: string;
  scope: string;
  expiresAt: number;
}

export interface DelegationAsk {
  /** The user's Errand username (CIBA `login_hint`). */
  user: string;
  resources: string[];
  scope: string;
  /** Shown to the user next to the request (CIBA `binding_message`, ≤ 64 characters). */
  bindingMessage?: string;
  /** Sub-agent hops allowed below this agent. */
  maxDepth?: number;
  /** Client ids of the agents allowed to act below it (default: any). */
  subAgents?: string[];
  maxTokenTtl?: number;
  expiresIn?: number;
  /** The lowest assurance level every actor under the delegation must have. */
  minAssurance?: (typeof ASSURANCE_LEVELS)[number];
  /** Give up waiting for the user after this many seconds (default: the request's expiry). */
  timeout?: number;
}

/**
 * An agent's client for Errand. It holds an ephemeral DPoP key in memory (never on disk),
 * authenticates with a workload token or its own key, asks users for delegations (CIBA), starts
 * tasks and gets DPoP-bound task tokens, hands narrower tokens to sub-agents, and ends tasks.
 *
 * @example
 * const agent = await ErrandAgent.connect({ issuer, credential: workloadIdentity(fetchSvid) });
 * const delegation = await agent.requestDelegation({ user: 'alice', resources: [notes], scope: 'notes:read' });
 * const task = await agent.startTask(delegation, { resource: notes });
 * const res = await task.fetch(notes, { method: 'POST', body });
 * await task.end();
 */
export class ErrandAgent {
  private constructor(
    private readonly wire: ErrandWire,
    private readonly key: DpopKey,
    private readonly opts: ErrandAgentOptions,
  ) {}

  /** Discovers Errand and makes the agent's DPoP key. */
  static async connect(opts: ErrandAgentOptions): Promise<ErrandAgent> {
    const wire = await ErrandWire.discover({
      issuer: opts.issuer,
      credential: opts.credential,
      fetch: opts.fetch ?? ((input, init) => fetch(input, init)),
      now: opts.now ?? (() => Date.now()),
    });
    return new ErrandAgent(wire, await DpopKey.generate(), opts);
  }

  /** The thumbprint of the agent's DPoP key (tokens bound to it carry it as `cnf.jkt`). */
  get jkt(): string {
    return this.key.jkt;
  }

  /**
   * An RFC 8693 `actor_token` proving this agent (single use, short-lived), for another agent that
   * exchanges a token with this one as the actor (`actor_token_type`
   * `urn:ietf:params:oauth:token-type:jwt`). Errand refuses it as this agent's client authentication.
   */
  async actorToken(): Promise<string> {
    const { credential, issuer } = this.opts;
    if (!credential.actorToken) {
      throw new ErrandError('unsupported', 'this credential cannot make actor tokens', 0);
    }
    return credential.actorToken(issuer, this.wire.now());
  }

  /**
   * Asks a user for a delegation over CIBA (poll mode) and waits until they decide: resolves with
   * the delegation when approved, throws ErrandError (`access_denied`, `expired_token`) otherwise.
   */
  async requestDelegation(ask: DelegationAsk): Promise<Delegation> {
    const { wire } = this;
    const endpoint = wire.metadata.backchannel_authentication_endpoint;
    if (!endpoint) throw new ErrandError('unsupported', 'this Errand offers no backchannel authentication', 0);
    const started = await wire.post(
      endpoint,
      {
        // CIBA §7.1: openid is required; Errand's scopes follow it.
        scope: `openid ${ask.scope}`,
        login_hint: ask.user,
        resource: ask.resources,
        binding_message: ask.bindingMessage,
        max_depth: ask.maxDepth?.toString(),
        sub_agents: ask.subAgents?.join(' '),
        max_token_ttl: ask.maxTokenTtl?.toString(),
        delegation_expires_in: ask.expiresIn?.toString(),
        min_assurance: ask.minAssurance,
      },
      null,
    );
    let interval = Number(started.interval ?? 5);
    const deadline = wire.now() + Math.min(Number(started.expires_in), ask.timeout ?? Number.POSITIVE_INFINITY);
    for (;;) {
      await sleep(interval);
      try {
        const body = await wire.post(
          wire.metadata.token_endpoint,
          { grant_type: GRANT_TYPE.ciba, auth_req_id: String(started.auth_req_id) },
          this.key,
        );
        return {
          id: String(body.delegation_id),
          credential: String(body.access_token),
          scope: String(body.scope ?? '')
            .split(' ')
            .filter((s) => s !== 'openid')
            .join(' '),
          expiresAt: wire.now() + Number(body.expires_in),
        };
      } catch (err) {
        if (!(err instanceof ErrandError)) throw err;
        if (err.code === 'slow_down') interval += 5;
        else if (err.code !== 'authorization_pending') throw err;
        if (wire.now() + interval > deadline)
          throw new ErrandError('expired_token', 'the user did not decide in time', 400);
      }
    }
  }

  /** Starts a task under a delegation: a DPoP-bound token for one resource. */
  async startTask(delegation: Delegation, req: { resource: string; scope?: string; ttl?: number }): Promise<AgentTask> {
    const subject = { token: delegation.credential, type: TOKEN_TYPE.jwt } as const;
    return this.openTask(subject, req);
  }

  /**
   * Works under another agent's task as its sub-agent: exchanges the hand-off for a token of this
   * agent's own, bound to this agent's key, never wider than the parent's.
   */
  async joinTask(handoff: Handoff, req: { scope?: string; resource?: string; ttl?: number } = {}): Promise<AgentTask> {
    const subject = { token: handoff.token, type: TOKEN_TYPE.accessToken } as const;
    return this.openTask(subject, { resource: req.resource ?? handoff.resource, scope: req.scope, ttl: req.ttl });
  }

  private async openTask(
    subject: { token: string; type: typeof TOKEN_TYPE.jwt | typeof TOKEN_TYPE.accessToken },
    req: { resource: string; scope?: string | undefined; ttl?: number | undefined },
  ): Promise<AgentTask> {
    const key = this.opts.keyPerTask ? await DpopKey.generate() : this.key;
    const { taskId, token } = await exchangeForTask(this.wire, key, {
      subject,
      resource: req.resource,
      ...(req.scope ? { scope: req.scope } : {}),
      ...(req.ttl ? { ttl: req.ttl } : {}),
    });
    return new AgentTask(this.wire, key, taskId, req.resource, subject, token, this.opts.refreshMargin ?? 30);
  }
}
