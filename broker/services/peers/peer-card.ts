/**
 * A peer's Agent Card as Errand reads it (A2A 1.0 §7.1, with the 0.3 `url`/`preferredTransport` shape
 * accepted): fetched under the SSRF rules, parsed once, its JSON-RPC endpoint picked, and its
 * signatures (A2A §8.4) verified over the RAW fetched JSON, never over the SDK's normalised card
 * (SDK-NOTES §B, a2aproject/a2a-js#663).
 */

import { AgentCard, verifyAgentCardSignature } from '@a2a-js/sdk';
import { canonicalizeResource, isScopeToken } from '@errand/protocol';
import { base64url, decodeProtectedHeader, flattenedVerify, type JWK } from 'jose';
import { z } from 'zod';
import type { PeerSecurity, PeerSkill } from '../../../db/stores/peer-store.js';
import { OAuthError } from '../../core/errors.js';
import { canonicalJson } from '../../core/jcs.js';
import type { Metrics } from '../../core/metrics.js';
import { checkPublicUrl, SafeFetchError, safeFetch } from '../../identity/safe-fetch.js';

/** Largest card (and key set) Errand reads. */
export const CARD_MAX_BYTES = 64 * 1024;
/** The scope every peer resource offers: calling the peer at all. Skills add `a2a:<skill id>`. */
export const A2A_INVOKE_SCOPE = 'a2a:invoke';
const WELL_KNOWN_CARD_PATH = '/.well-known/agent-card.json';
// Asymmetric JWS algorithms only: a card signature is checked with a published public key.
const SIGNATURE_ALGS = new Set([
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
]);

export interface FetchRules {
  allowPrivate: boolean;
  timeoutMs: number;
  /** Counts the fetches (`peer`) when given. */
  metrics?: Metrics;
}

const InterfaceSchema = z.looseObject({
  url: z.string().min(1).max(2048),
  protocolBinding: z.string().max(64),
  protocolVersion: z.string().max(32).default(''),
  tenant: z.string().max(256).default(''),
});
const ScopeListSchema = z.array(z.string().max(256)).max(100);
const SkillSchema = z.looseObject({
  id: z.string().min(1).max(128),
  name: z.string().max(200).default(''),
  description: z.string().max(4000).default(''),
  tags: z.array(z.string().max(100)).max(100).default([]),
});
const SignatureSchema = z.looseObject({
  protected: z.string().min(1).max(8192),
  signature: z.string().min(1).max(8192),
});
export type CardSignature = z.infer<typeof SignatureSchema>;

const CardSchema = z.looseObject({
  name: z.string().min(1).max(200),
  description: z.string().max(4000),
  version: z.string().max(64),
  supportedInterfaces: z.array(InterfaceSchema).max(20).optional(),
  // A2A 0.3: one URL with its transport, more in additionalInterfaces.
  url: z.string().max(2048).optional(),
  preferredTransport: z.string().max(64).optional(),
  protocolVersion: z.string().max(32).optional(),
  additionalInterfaces: z
    .array(z.looseObject({ url: z.string().max(2048), transport: z.string().max(64) }))
    .max(20)
    .optional(),
  skills: z.array(SkillSchema).max(200).default([]),
  securitySchemes: z.record(z.string().max(128), z.looseObject({})).optional(),
  // 1.0 `securityRequirements` ({schemes:{name:{list}}}), 0.3 OpenAPI-style `security` ({name:[scopes]}).
  securityRequirements: z
    .array(
      z.looseObject({ schemes: z.record(z.string().max(128), z.looseObject({ list: ScopeListSchema.default([]) })) }),
    )
    .max(50)
    .optional(),
  security: z
    .array(z.record(z.string().max(128), ScopeListSchema))
    .max(50)
    .optional(),
  signatures: z.array(SignatureSchema).max(10).optional(),
});

/** What Errand keeps of a card. */
export interface CardSummary {
  name: string;
  description: string;
  version: string;
  /** The JSON-RPC interface URL in canonical resource form (RFC 8707). */
  endpoint: string;
  protocolVersion: string;
  tenant: string;
  skills: PeerSkill[];
  security: PeerSecurity;
  signatures: CardSignature[];
}

const refuse = (description: string) => new OAuthError('invalid_request', description);

/** The scope a skill gets at its peer's resource, or null when its id cannot be a scope token. */
export function skillScope(id: string): string | null {
  const scope = `a2a:${id}`;
  return scope.length <= 128 && isScopeToken(scope) ? scope : null;
}

/** Parses a fetched card; anything that is not an A2A card is `invalid_request`. */
export function describeCard(raw: unknown): CardSummary {
  const parsed = CardSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw refuse(`the document is not an A2A Agent Card: ${issue?.path.join('.') || 'card'}: ${issue?.message}`);
  }
  const card = parsed.data;
  const iface = pickJsonRpcInterface(card);
  if (!iface) throw refuse('the Agent Card offers no JSON-RPC interface (supportedInterfaces or url)');
  const endpoint = canonicalizeResource(iface.url);
  if (!endpoint || new URL(iface.url).search) {
    throw refuse('the Agent Card JSON-RPC interface URL must be an absolute http(s) URL without query or fragment');
  }
  const requirements: Record<string, string[]>[] = card.securityRequirements
    ? card.securityRequirements.map((r) => Object.fromEntries(Object.entries(r.schemes).map(([k, v]) => [k, v.list])))
    : (card.security ?? []);
  return {
    name: card.name,
    description: card.description,
    version: card.version,
    endpoint,
    protocolVersion: iface.protocolVersion,
    tenant: iface.tenant,
    skills: card.skills.map((s) => ({
      id: s.id,
      name: s.name,
      description: s.description,
      tags: s.tags,
      scope: skillScope(s.id),
    })),
    security: { schemes: card.securitySchemes ?? {}, requirements },
    signatures: card.signatures ?? [],
  };
}

type ParsedCard = z.infer<typeof CardSchema>;

/** The first JSON-RPC interface, preferring 1.x over 0.3 (`duplicateInterfacesForLegacy` lists both). */
function pickJsonRpcInterface(card: ParsedCard): { url: string; protocolVersion: string; tenant: string } | null {
  const rpc = (card.supportedInterfaces ?? []).filter((i) => i.protocolBinding.toUpperCase() === 'JSONRPC');
  const modern = rpc.find((i) => Number.parseInt(i.protocolVersion, 10) >= 1);
  if (modern ?? rpc[0]) return (modern ?? rpc[0])!;
  if (!card.url) return null;
  const legacy = { protocolVersion: card.protocolVersion ?? '0.3.0', tenant: '' };
  if ((card.preferredTransport ?? 'JSONRPC').toUpperCase() === 'JSONRPC') return { url: card.url, ...legacy };
  const extra = card.additionalInterfaces?.find((i) => i.transport.toUpperCase() === 'JSONRPC');
  return extra ? { url: extra.url, ...legacy } : null;
}

/**
 * The fields Errand records must be inside what the signature covers: the SDK canonicalises through
 * its 1.0 schema, so anything outside it (a 0.3 `url`, OpenAPI-shaped schemes) is not signed.
 * Returns the first recorded field the signature does not cover, or null.
 */
export function unsignedField(raw: Record<string, unknown>, summary: CardSummary): string | null {
  let covered: CardSummary;
  try {
    const signedView = AgentCard.toJSON(AgentCard.fromJSON(raw)) as Record<string, unknown>;
    covered = describeCard({ description: '', version: '', ...signedView });
  } catch {
    return 'supportedInterfaces';
  }
  const fields = ['name', 'description', 'version', 'endpoint', 'protocolVersion', 'skills', 'security'] as const;
  return fields.find((f) => JSON.stringify(covered[f]) !== JSON.stringify(summary[f])) ?? null;
}

/** A card URL as stored: a bare origin means its well-known card (A2A §7.1). */
export function normalizeCardUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw refuse('card_url must be an absolute URL');
  }
  if (input.includes('#')) throw refuse('card_url must not contain a fragment');
  if (url.pathname === '/' || url.pathname === '') url.pathname = WELL_KNOWN_CARD_PATH;
  return url.href;
}

/** GETs a JSON document under the SSRF rules (safeFetch); failures carry a caller-safe description. */
export async function fetchJson(url: string, what: string, rules: FetchRules): Promise<unknown> {
  let body: Buffer;
  try {
    ({ body } = await safeFetch(url, {
      accept: 'application/json',
      expectJson: true,
      maxBytes: CARD_MAX_BYTES,
      timeoutMs: rules.timeoutMs,
      allowPrivate: rules.allowPrivate,
      ...(rules.metrics ? { observe: { kind: 'peer', metrics: rules.metrics } } : {}),
    }));
  } catch (err) {
    if (err instanceof SafeFetchError) throw refuse(`${what} could not be fetched: ${err.message}`);
    throw err;
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw refuse(`${what} is not valid JSON`);
  }
}

/**
 * The SSRF rules of every outbound fetch (safe-fetch.ts), applied now to a URL Errand will call
 * later (the peer's endpoint): https (http only with allowPrivate), no credentials, no forbidden
 * address (RFC 6890). Each later call is checked again and pinned to the address it checked.
 */
export async function checkEndpointUrl(raw: string, what: string, allowPrivate: boolean): Promise<void> {
  try {
    await checkPublicUrl(raw, allowPrivate);
  } catch (err) {
    if (err instanceof SafeFetchError) throw refuse(`${what} is refused: ${err.message}`);
    throw err;
  }
}

const JwksSchema = z.object({
  keys: z.array(z.looseObject({ kty: z.string().max(16), kid: z.string().max(256).optional() })).max(50),
});

/**
 * Verifies a signed card (A2A §8.4) over the raw fetched JSON. Keys come from the `jku` of each
 * signature's protected header, which must be on the card's own origin (otherwise whoever can alter
 * the card could also point at their own key), fetched under the same SSRF rules, chosen by `kid`.
 * A signature over the RFC 8785 form of the whole card covers every field (`wholeCard`); otherwise
 * one over the form the SDK re-derives (the card parsed as 1.0) is accepted, and the caller checks
 * that the fields it records are inside it (`unsignedField`).
 * Returns the `kid` that verified; refuses a signature that does not verify or cannot be checked.
 */
export async function verifyCardSignatures(
  raw: Record<string, unknown>,
  signatures: CardSignature[],
  cardUrl: string,
  rules: FetchRules,
): Promise<{ kid: string; wholeCard: boolean }> {
  const problems: string[] = [];
  const usable = signatures.filter((s) => {
    try {
      const alg = decodeProtectedHeader(s).alg ?? '';
      if (SIGNATURE_ALGS.has(alg)) return true;
      problems.push(`signature algorithm "${alg.slice(0, 16)}" is not accepted`);
    } catch {
      problems.push('a signature has a malformed protected header');
    }
    return false;
  });
  const origin = new URL(cardUrl).origin;
  const keySets = new Map<string, Promise<unknown>>();
  const resolveKey = async (kid: string, jku?: string): Promise<JWK> => {
    if (!jku) throw refuse('the signature names no key set (jku)');
    let jkuOrigin: string;
    try {
      jkuOrigin = new URL(jku).origin;
    } catch {
      throw refuse('the signature key set URL (jku) is not a valid URL');
    }
    if (jkuOrigin !== origin) throw refuse(`the signature key set (jku) must be on the card's origin ${origin}`);
    if (!keySets.has(jku)) keySets.set(jku, fetchJson(jku, 'the signature key set (jku)', rules));
    const jwks = JwksSchema.safeParse(await keySets.get(jku));
    if (!jwks.success) throw refuse('the signature key set (jku) is not a JWK Set');
    const key = jwks.data.keys.find((k) => k.kid === kid);
    if (!key) throw refuse(`the signature key set (jku) has no key "${kid.slice(0, 64)}"`);
    if ('d' in key || key.kty === 'oct') throw refuse('the signature key set (jku) must hold public keys only');
    return key as JWK;
  };
  // Each distinct key is looked up once, whichever signatures name it.
  const lookups = new Map<string, Promise<JWK | null>>();
  const keyFor = (kid: string, jku?: string): Promise<JWK | null> => {
    const id = JSON.stringify([kid, jku ?? null]);
    if (!lookups.has(id)) {
      lookups.set(
        id,
        resolveKey(kid, jku).catch((err: unknown) => {
          problems.push(err instanceof Error ? err.message : 'key lookup failed');
          return null;
        }),
      );
    }
    return lookups.get(id)!;
  };
  const keyed: { sig: CardSignature; kid: string; key: JWK }[] = [];
  for (const sig of usable) {
    const header = decodeProtectedHeader(sig);
    const key = await keyFor(header.kid ?? '', header.jku);
    if (key) keyed.push({ sig, kid: header.kid ?? '', key });
  }
  if (keyed.length === 0) throw refuse(`the Agent Card signature cannot be verified: ${problems.join('; ')}`);

  const { signatures: _, ...unsigned } = raw;
  const payload = base64url.encode(canonicalJson(unsigned));
  for (const { sig, kid, key } of keyed) {
    try {
      await flattenedVerify({ payload, protected: sig.protected, signature: sig.signature }, key);
      return { kid, wholeCard: true };
    } catch {
      // Not over the whole card: maybe over the 1.0 form, below.
    }
  }
  let verifiedKid: string | null = null;
  try {
    // The SDK canonicalises (JCS) its 1.0 reading of what it is given; `signatures` is excluded.
    await verifyAgentCardSignature(async (kid, jku) => {
      const key = await keyFor(kid, jku);
      if (!key) throw new Error('no key');
      verifiedKid = kid;
      return key;
    })({ ...raw, signatures: keyed.map((k) => k.sig) } as unknown as AgentCard);
  } catch {
    throw refuse(
      'the Agent Card signature does not verify: the card was altered after signing or signed by another key',
    );
  }
  return { kid: verifiedKid!, wholeCard: false };
}
