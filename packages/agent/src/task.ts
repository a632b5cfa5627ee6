import { DETAILS_TYPE, DPOP, GRANT_TYPE, PATHS, TOKEN_TYPE } from '@errand/protocol';
import type { DpopKey } from './dpop-key.js';
import type { ErrandWire } from './wire.js';

/** What a sub-agent needs to work under a task: the parent's token (useless without the parent's key). */
export interface Handoff {
  token: string;
  taskId: string;
  resource: string;
  scope: string;
}

/** Where a task's tokens come from: the delegation credential, or the parent task's token. */
export interface TaskSubject {
  token: string;
  type: typeof TOKEN_TYPE.jwt | typeof TOKEN_TYPE.accessToken;
}

interface IssuedToken {
  value: string;
  type: string;
  issuedAt: number;
  expiresAt: number;
  scope: string;
}

/** RFC 8693 token exchange at Errand, with a DPoP proof by `key` (the token is bound to it). */
export async function exchangeForTask(
  wire: ErrandWire,
  key: DpopKey,
  req: { subject: TaskSubject; resource: string; scope?: string; taskId?: string; ttl?: number },
): Promise<{ taskId: string; token: IssuedToken }> {
  const task = req.taskId ? { task_id: req.taskId } : req.ttl ? { ttl: req.ttl } : null;
  const body = await wire.post(
    wire.metadata.token_endpoint,
    {
      grant_type: GRANT_TYPE.tokenExchange,
      subject_token: req.subject.token,
      subject_token_type: req.subject.type,
      requested_token_type: TOKEN_TYPE.accessToken,
      resource: req.resource,
      scope: req.scope,
      authorization_details: task ? JSON.stringify([{ type: DETAILS_TYPE.task, ...task }]) : undefined,
    },
    key,
  );
  const now = wire.now();
  return {
    taskId: String(body.task_id),
    token: {
      value: String(body.access_token),
      type: String(body.token_type),
      issuedAt: now,
      expiresAt: now + Number(body.expires_in),
      scope: String(body.scope ?? req.scope ?? ''),
    },
  };
}

/**
 * One task the agent works on: its DPoP-bound token for one resource, refreshed before it expires,
 * calls to the resource with fresh proofs, hand-offs to sub-agents, and the end of the task.
 */
export class AgentTask {
  private token: IssuedToken;
  private refreshing: Promise<void> | null = null;

  /** @internal use ErrandAgent.startTask or joinTask. */
  constructor(
    private readonly wire: ErrandWire,
    private readonly key: DpopKey,
    readonly id: string,
    readonly resource: string,
    private readonly subject: TaskSubject,
    first: IssuedToken,
    private readonly refreshMargin: number,
  ) {
    this.token = first;
  }

  /** The scope the current token holds. */
  get scope(): string {
    return this.token.scope;
  }

  /** The thumbprint of the key this task's tokens are bound to (`cnf.jkt`). */
  get jkt(): string {
    return this.key.jkt;
  }

  /** A valid access token, refreshed when it is about to expire. */
  async accessToken(): Promise<string> {
    const { issuedAt, expiresAt } = this.token;
    const margin = Math.min(this.refreshMargin, Math.floor((expiresAt - issuedAt) / 2));
    if (this.wire.now() >= expiresAt - margin) await this.refresh();
    return this.token.value;
  }

  /** Mints a new token for this same task now (one refresh at a time). */
  async refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const { token } = await exchangeForTask(this.wire, this.key, {
          subject: this.subject,
          resource: this.resource,
          scope: this.token.scope,
          taskId: this.id,
        });
        this.token = token;
      } finally {
        this.refreshing = null;
      }
    })();
    await this.refreshing;
  }

  /**
   * `fetch` to the task's resource with `Authorization: DPoP <token>` and a proof for this request;
   * retried once when the resource server asks for a DPoP nonce (RFC 9449 §9).
   */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const method = (init.method ?? 'GET').toUpperCase();
    for (let attempt = 0; ; attempt++) {
      const token = await this.accessToken();
      const headers = new Headers(init.headers);
      const bound = this.token.type === DPOP.tokenType;
      headers.set('authorization', `${bound ? DPOP.tokenType : 'Bearer'} ${token}`);
      if (bound) headers.set(DPOP.header, await this.wire.proof(this.key, method, url, token));
      const res = await this.wire.opts.fetch(url, { ...init, method, headers });
      const newNonce = this.wire.learnNonce(url, res);
      const challenge = res.headers.get('www-authenticate') ?? '';
      if (res.status === 401 && attempt === 0 && newNonce && challenge.includes('use_dpop_nonce')) continue;
      return res;
    }
  }

  /** What a sub-agent needs to get its own, narrower token under this task (see ErrandAgent.joinTask). */
  async handOff(): Promise<Handoff> {
    return { token: await this.accessToken(), taskId: this.id, resource: this.resource, scope: this.token.scope };
  }

  /** Ends the task (and every sub-task): all their tokens stop working at once. */
  async end(state: 'completed' | 'canceled' | 'failed' = 'completed'): Promise<void> {
    await this.wire.post(`${this.wire.opts.issuer}${PATHS.tasks}/${encodeURIComponent(this.id)}/end`, { state }, null);
  }
}
