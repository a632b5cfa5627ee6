import { randomUUID } from 'node:crypto';
import { fromActClaim, JWT_TYP } from '@errand/protocol';
import { type CryptoKey, type KeyObject, SignJWT } from 'jose';
import { z } from 'zod';
import type { VerifiedAccess } from './guard.js';

/**
 * An optional second opinion before a tool call: the guard asks Errand's policy decision point
 * (OpenID AuthZEN Authorization API 1.0) whether the agent holding the token may call the tool at
 * this resource for the person the token speaks for, and refuses the call on `decision: false`.
 * The token says what the person delegated; the answer says what the organisation's policies
 * allow now (a policy published after the token was issued counts at once).
 */

/** How the resource server authenticates to the PDP: its private_key_jwt key, or a client secret. */
export type AuthzenClientAuth =
  | { clientId: string; privateKey: CryptoKey | KeyObject; kid: string; alg?: string }
  | { clientId: string; clientSecret: string };

export interface AuthzenCheckOptions {
  /** The policy decision point's identifier: Errand's issuer (AuthZEN §9.2: its metadata is read from there). */
  pdp: string;
  /** A client of kind `resource_server` registered for this resource. */
  clientAuth: AuthzenClientAuth;
  fetch?: typeof fetch;
  /** Epoch seconds (tests move it). */
  now?: () => number;
}

/** The PDP's answer for a call: go ahead, or the refusal (403: policy; 503: no answer, so no call). */
export type AuthzenOutcome = { ok: true } | { ok: false; status: 403 | 503; description: string };

/** Asks the PDP about the tools a request calls at `resource` with a verified token. */
export type AuthzenCheck = (
  access: VerifiedAccess,
  resource: string,
  tools: readonly string[],
) => Promise<AuthzenOutcome>;

/** AuthZEN §9.1.1: the metadata members the check needs. */
const MetadataSchema = z.object({
  policy_decision_point: z.string(),
  access_evaluation_endpoint: z.url(),
  access_evaluations_endpoint: z.url().optional(),
});

/** AuthZEN §6.2 / §7.2: decisions, with their optional context. */
const DecisionSchema = z.object({
  decision: z.boolean(),
  context: z.record(z.string(), z.unknown()).optional(),
});
const DecisionsSchema = z.object({ evaluations: z.array(DecisionSchema).min(1) });

class PdpError extends Error {}

/**
 * Builds the check for `guardMcpMiddleware`/`guardMcpFetch`/the Node adapter (`authzen` option).
 * Each `tools/call` is one evaluation: subject the acting agent (`act`, else `client_id`), action
 * `call_tool`, resource the tool at this resource, context the person (`sub`), actor chain, scopes.
 * A token an agent holds as itself (`sub` = `client_id`) speaks for no person and is not asked about.
 *
 * @example
 * ```ts
 * const check = authzenCheck({ pdp: 'https://errand.example', clientAuth: { clientId: 'rs_…', privateKey, kid: 'k1' } });
 * app.all('/mcp', guardMcpMiddleware(guard, { toolScopes, authzen: check }), handler);
 * ```
 */
export function authzenCheck(opts: AuthzenCheckOptions): AuthzenCheck {
  const fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
  const now = opts.now ?? (() => Date.now() / 1000);
  const pdp = opts.pdp.replace(/\/+$/, '');
  let metadata: Promise<z.infer<typeof MetadataSchema>> | null = null;

  const discover = async () => {
    const res = await fetchImpl(`${pdp}/.well-known/authzen-configuration`, {
      headers: { accept: 'application/json' },
    });
    if (res.status !== 200) throw new PdpError(`PDP metadata answered ${res.status}`);
    const parsed = MetadataSchema.safeParse(await res.json().catch(() => null));
    // AuthZEN §9.2.3: the metadata must name the PDP it was fetched from, or it is not used.
    if (!parsed.success || parsed.data.policy_decision_point.replace(/\/+$/, '') !== pdp) {
      throw new PdpError('PDP metadata is invalid or names another policy decision point');
    }
    return parsed.data;
  };

  const authorization = async (): Promise<string> => {
    const auth = opts.clientAuth;
    if ('clientSecret' in auth) {
      // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
      const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
      return `Basic ${Buffer.from(`${enc(auth.clientId)}:${enc(auth.clientSecret)}`).toString('base64')}`;
    }
    const t = Math.floor(now());
    // RFC 7523bis: aud is the issuer alone; Errand takes the assertion as the Bearer credential.
    const assertion = await new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: auth.alg ?? 'ES256', kid: auth.kid, typ: JWT_TYP.clientAuthentication })
      .setIssuer(auth.clientId)
      .setSubject(auth.clientId)
      .setAudience(pdp)
      .setIssuedAt(t)
      .setExpirationTime(t + 60)
      .sign(auth.privateKey);
    return `Bearer ${assertion}`;
  };

  const post = async (url: string, body: unknown): Promise<unknown> => {
    const res = await fetchImpl(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: await authorization(),
        'x-request-id': randomUUID(),
      },
      body: JSON.stringify(body),
    });
    if (res.status !== 200) throw new PdpError(`the PDP answered ${res.status}`);
    return res.json().catch(() => null);
  };

  return async (access, resource, tools) => {
    if (tools.length === 0 || access.sub === access.clientId) return { ok: true };
    const chain = (access.act ? fromActClaim(access.act) : null) ?? [access.clientId];
    const subject = { type: 'agent', id: chain[0] ?? access.clientId };
    const context = {
      user: access.sub,
      agent: chain[chain.length - 1] ?? access.clientId,
      actor_chain: chain,
      depth: chain.length - 1,
      scopes: access.scopes,
      dpop_bound: Boolean(access.claims.cnf?.jkt),
    };
    const evaluations = tools.map((name) => ({ resource: { type: 'tool', id: name, properties: { resource } } }));
    try {
      metadata ??= discover().catch((err) => {
        metadata = null; // a later call tries again
        throw err;
      });
      const meta = await metadata;
      let decisions: z.infer<typeof DecisionSchema>[];
      if (meta.access_evaluations_endpoint) {
        const body = {
          subject,
          action: { name: 'call_tool' },
          context,
          evaluations,
          options: { evaluations_semantic: 'deny_on_first_deny' },
        };
        const parsed = DecisionsSchema.safeParse(await post(meta.access_evaluations_endpoint, body));
        if (!parsed.success) throw new PdpError('the PDP answer is not an AuthZEN evaluations response');
        decisions = parsed.data.evaluations;
      } else {
        decisions = [];
        for (const e of evaluations) {
          const one = { subject, action: { name: 'call_tool' }, context, ...e };
          const parsed = DecisionSchema.safeParse(await post(meta.access_evaluation_endpoint, one));
          if (!parsed.success) throw new PdpError('the PDP answer is not an AuthZEN evaluation response');
          decisions.push(parsed.data);
          if (!parsed.data.decision) break;
        }
      }
      const denied = decisions.findIndex((d) => !d.decision);
      // Fail closed: fewer answers than tools can only mean a denial cut the batch short.
      if (denied < 0 && decisions.length >= tools.length) return { ok: true };
      const at = denied < 0 ? decisions.length : denied;
      // AuthZEN §5.5.1: reason_admin is for administrators, never for the caller of the tool.
      return {
        ok: false,
        status: 403,
        description: `the organisation's policies do not allow tool "${tools[at]}" here`,
      };
    } catch (err) {
      const reason = err instanceof PdpError ? err.message : 'the PDP could not be reached';
      return { ok: false, status: 503, description: `no authorization decision for this tool call (${reason})` };
    }
  };
}
