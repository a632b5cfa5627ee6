import { DPOP, PATHS } from '@errand/protocol';
import type { AgentCredential } from './credentials.js';
import type { DpopKey } from './dpop-key.js';
import { seconds } from './util.js';

/** An OAuth error answer from Errand or a resource server: `error` code, description, HTTP status. */
export class ErrandError extends Error {
  constructor(
    readonly code: string,
    description: string,
    readonly status: number,
  ) {
    super(`${code}: ${description}`);
    this.name = 'ErrandError';
  }
}

/** The parts of Errand's RFC 8414 metadata the SDK uses. */
export interface ErrandMetadata {
  issuer: string;
  token_endpoint: string;
  backchannel_authentication_endpoint?: string;
}

export interface WireOptions {
  issuer: string;
  credential: AgentCredential;
  fetch: typeof fetch;
  /** Milliseconds since the epoch (tests move it). */
  now: () => number;
}

type Form = Record<string, string | string[] | undefined>;

/**
 * The agent's side of Errand's wire: discovery, client-authenticated form posts, DPoP proofs with
 * the server's nonce (RFC 9449 §8: retried once when Errand asks for one), and errors.
 */
export class ErrandWire {
  private nonces = new Map<string, string>();

  private constructor(
    readonly opts: WireOptions,
    readonly metadata: ErrandMetadata,
  ) {}

  /** Discovers Errand (RFC 8414) and checks that it is the issuer asked for. */
  static async discover(opts: WireOptions): Promise<ErrandWire> {
    const res = await opts.fetch(`${opts.issuer}${PATHS.asMetadata}`, { headers: { accept: 'application/json' } });
    if (res.status !== 200) throw new ErrandError('discovery_failed', `metadata answered ${res.status}`, res.status);
    const metadata = (await res.json()) as ErrandMetadata;
    // RFC 8414 §3.3: the metadata must name exactly the issuer it was fetched for.
    if (metadata.issuer !== opts.issuer || typeof metadata.token_endpoint !== 'string') {
      throw new ErrandError('discovery_failed', 'the metadata is for another issuer', 200);
    }
    return new ErrandWire(opts, metadata);
  }

  /** Epoch seconds. */
  now(): number {
    return seconds(this.opts.now());
  }

  /**
   * POSTs a form with client authentication and (when `dpop` is given) a DPoP proof; returns the
   * JSON body of a 2xx answer and throws ErrandError otherwise.
   */
  async post(url: string, form: Form, dpop: DpopKey | null): Promise<Record<string, unknown>> {
    for (let attempt = 0; ; attempt++) {
      const body = new URLSearchParams();
      for (const [k, v] of Object.entries(form)) {
        for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) body.append(k, one);
      }
      const auth = await this.opts.credential.authenticate(this.opts.issuer, this.now());
      for (const [k, v] of Object.entries(auth)) if (v !== undefined) body.set(k, v);
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
      if (dpop) headers[DPOP.header] = await this.proof(dpop, 'POST', url);
      const res = await this.opts.fetch(url, { method: 'POST', headers, body: body.toString() });
      this.learnNonce(url, res);
      if (res.status === 204) return {};
      const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      if (res.ok) return json;
      const code = String(json.error ?? 'server_error');
      // RFC 9449 §8: the server wants a nonce; it is in DPoP-Nonce, so try once more with it.
      if (code === 'use_dpop_nonce' && dpop && attempt === 0) continue;
      throw new ErrandError(code, String(json.error_description ?? ''), res.status);
    }
  }

  /** A DPoP proof for `method url`, with the last nonce that origin gave (if any). */
  async proof(dpop: DpopKey, method: string, url: string, accessToken?: string): Promise<string> {
    const nonce = this.nonces.get(new URL(url).origin);
    return dpop.proof({
      method,
      url,
      now: this.now(),
      ...(accessToken ? { accessToken } : {}),
      ...(nonce ? { nonce } : {}),
    });
  }

  /** Remembers a `DPoP-Nonce` a server sent (RFC 9449 §8.2: any response may carry a new one). */
  learnNonce(url: string, res: Response): boolean {
    const nonce = res.headers.get(DPOP.nonceHeader);
    if (!nonce) return false;
    this.nonces.set(new URL(url).origin, nonce);
    return true;
  }
}
