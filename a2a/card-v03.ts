import { A2A_LEGACY_PROTOCOL_VERSION } from '@a2a-js/sdk/compat/v0_3';

type Json = Record<string, unknown>;

/** The 0.3 protocol version a 0.3 card names (A2A 0.3 §5.5: `protocolVersion`, semver). */
export const V03_CARD_VERSION = `${A2A_LEGACY_PROTOCOL_VERSION}.0`;

/** 1.0 `securityRequirements` (`[{schemes: {name: {list}}}]`) as 0.3 `security` (`[{name: scopes}]`). */
function security(requirements: unknown): Json[] | undefined {
  if (!Array.isArray(requirements)) return undefined;
  return requirements.map((r: { schemes?: Record<string, { list?: string[] }> }) =>
    Object.fromEntries(Object.entries(r.schemes ?? {}).map(([name, s]) => [name, s.list ?? []])),
  );
}

/**
 * A 1.0 security scheme (`{oauth2SecurityScheme: {...}}`, the protobuf oneof) with the same scheme
 * in 0.3's shape beside it (`type` plus the fields): 0.3 clients read the `type`, 1.0 parsers read
 * the oneof member and ignore the rest.
 */
function scheme(s: Json): Json {
  const [member, value] = Object.entries(s)[0] ?? [];
  if (!member || typeof value !== 'object' || value === null) return s;
  const TYPES: Record<string, string> = {
    oauth2SecurityScheme: 'oauth2',
    apiKeySecurityScheme: 'apiKey',
    httpAuthSecurityScheme: 'http',
    openIdConnectSecurityScheme: 'openIdConnect',
    mtlsSecurityScheme: 'mutualTLS',
  };
  const type = TYPES[member];
  return type ? { type, ...(value as Json), ...s } : s;
}

/**
 * The public card in both versions' shapes, one document (README "A2A agent"): the 1.0 JSON form
 * (`supportedInterfaces`, `securityRequirements`, oneof security schemes) plus the 0.3 fields a 0.3
 * client needs to find the endpoint and authenticate (`url`, `preferredTransport`,
 * `additionalInterfaces`, `protocolVersion`, `security`, typed `securitySchemes`). Names used by both
 * versions mean the same in both.
 */
export function withV03Fields(card: Json, endpoint: string): Json {
  const schemes = (card.securitySchemes ?? {}) as Record<string, Json>;
  const caps = (card.capabilities ?? {}) as Json;
  return {
    ...card,
    protocolVersion: V03_CARD_VERSION,
    url: endpoint,
    preferredTransport: 'JSONRPC',
    additionalInterfaces: [{ url: endpoint, transport: 'JSONRPC' }],
    supportsAuthenticatedExtendedCard: caps.extendedAgentCard === true,
    securitySchemes: Object.fromEntries(Object.entries(schemes).map(([name, s]) => [name, scheme(s)])),
    security: security(card.securityRequirements),
    skills: ((card.skills ?? []) as Json[]).map((s) => ({ ...s, security: security(s.securityRequirements) })),
  };
}
