import { createHash } from 'node:crypto';
import {
  A2A_PROTOCOL_VERSION,
  AgentCard,
  type AgentSkill,
  generateAgentCardSignature,
  type SecurityRequirement,
  type SecurityScheme,
} from '@a2a-js/sdk';
import { duplicateInterfacesForLegacy } from '@a2a-js/sdk/compat/v0_3';
import type { JwsKey } from '@errand/protocol';
import { ERRAND_SCOPE, PATHS } from '@errand/protocol';
import { FlattenedSign } from 'jose';
import { canonicalJson } from '../broker/core/jcs.js';
import { AGENT_OPERATIONS } from '../broker/services/agent-ops.js';
import { a2aUrl } from '../broker/services/built-in-resources.js';
import { withV03Fields } from './card-v03.js';

export const AGENT_VERSION = '0.1.0';

/**
 * How long the signed public card may be cached (`Cache-Control: max-age`): a card signed just before
 * a rotation is still served from caches that long, so signing keys are kept at least this long.
 */
export const AGENT_CARD_MAX_AGE = 300;

const SCOPE_DESCRIPTIONS = {
  [ERRAND_SCOPE.delegate]: 'Ask users for delegations',
  [ERRAND_SCOPE.tasks]: 'Start, hand down and end tasks (task tokens)',
};

/** The skills and the scope each needs: the engine's agent operations, as the MCP tools use them. */
export const SKILL_SCOPES = {
  request_delegation: AGENT_OPERATIONS.request_delegation,
  issue_task_token: AGENT_OPERATIONS.start_task,
  delegate_to_subagent: AGENT_OPERATIONS.delegate_to_subagent,
  end_task: AGENT_OPERATIONS.end_task,
} as const;
export type SkillId = keyof typeof SKILL_SCOPES;
export const SKILL_IDS = Object.keys(SKILL_SCOPES) as [SkillId, ...SkillId[]];

/** Security scheme names in the card: agents (client credentials) and clients acting for a user. */
const SCHEME = { agent: 'errand_agent', user: 'errand_user' } as const;

function requirement(scopes: readonly string[]): SecurityRequirement[] {
  return [
    { schemes: { [SCHEME.agent]: { list: [...scopes] } } },
    { schemes: { [SCHEME.user]: { list: [...scopes] } } },
  ];
}

const CALL = 'Send a message with a data part {"skill": "<id>", "arguments": {…}} (or the same JSON as text).';

function skill(
  id: SkillId,
  name: string,
  description: string,
  tags: string[],
  example: Record<string, unknown>,
): AgentSkill {
  return {
    id,
    name,
    description: `${description} ${CALL}`,
    tags,
    examples: [JSON.stringify({ skill: id, arguments: example })],
    inputModes: ['application/json', 'text/plain'],
    outputModes: ['application/json', 'text/plain'],
    securityRequirements: requirement([SKILL_SCOPES[id]]),
  };
}

/**
 * Errand's public Agent Card (A2A 1.0 §4.4.1, with 0.3 interfaces mirrored by the SDK; the other 0.3
 * fields are added when it is signed, card-v03.ts). A2A has no OAuth flow type for token exchange
 * (its `oauth2SecurityScheme` flows): `oauth2MetadataUrl` points at the RFC 8414 document, and the
 * skills say which exchange each one performs.
 */
export function buildAgentCard(issuer: string): AgentCard {
  const url = (path: string) => `${issuer}${path}`;
  const scopes = { ...SCOPE_DESCRIPTIONS };
  const oauth2 = (description: string, flow: NonNullable<OAuthFlow>): SecurityScheme => ({
    scheme: {
      $case: 'oauth2SecurityScheme',
      value: { description, flows: { flow }, oauth2MetadataUrl: url(PATHS.asMetadata) },
    },
  });
  const notes = 'https://notes.example/mcp';
  return {
    name: 'Errand',
    description:
      'An OAuth 2.1 authorization broker for AI agents: asks people for delegations and turns them into ' +
      'short-lived, narrowly scoped per-task tokens (RFC 8693 token exchange), hands work down to sub-agents ' +
      'and revokes every token of a task when it ends.',
    supportedInterfaces: duplicateInterfacesForLegacy(
      [{ url: a2aUrl(issuer), protocolBinding: 'JSONRPC', tenant: '', protocolVersion: A2A_PROTOCOL_VERSION }],
      ['JSONRPC'],
    ),
    provider: { organization: 'Errand', url: issuer },
    version: AGENT_VERSION,
    capabilities: { streaming: true, pushNotifications: false, extensions: [], extendedAgentCard: true },
    securitySchemes: {
      [SCHEME.agent]: oauth2(
        `An agent acting as itself: client_credentials with resource=${a2aUrl(issuer)}. Token exchange ` +
          '(RFC 8693) and CIBA are described by the authorization server metadata.',
        { $case: 'clientCredentials', value: { tokenUrl: url(PATHS.token), refreshUrl: '', scopes } },
      ),
      [SCHEME.user]: oauth2(
        `A client acting for a signed-in user: authorization code with PKCE and resource=${a2aUrl(issuer)}.`,
        {
          $case: 'authorizationCode',
          value: {
            authorizationUrl: url(PATHS.authorize),
            tokenUrl: url(PATHS.token),
            refreshUrl: url(PATHS.token),
            scopes,
            pkceRequired: true,
          },
        },
      ),
    },
    securityRequirements: requirement([ERRAND_SCOPE.delegate, ERRAND_SCOPE.tasks]),
    defaultInputModes: ['application/json', 'text/plain'],
    defaultOutputModes: ['application/json', 'text/plain'],
    skills: [
      skill(
        'request_delegation',
        'Request a delegation',
        "Asks a user to delegate access to resources (scopes, limits) to you; the request waits for the user's " +
          'approval in Errand and the result gives the delegation_id and the approval_url to show the user. ' +
          'Equivalent to a CIBA request at the backchannel endpoint.',
        ['oauth', 'delegation', 'consent', 'ciba'],
        { user: 'alice', resources: [notes], scopes: ['notes:read'] },
      ),
      skill(
        'issue_task_token',
        'Issue a task token',
        'Returns a short-lived access token for one resource under an active delegation: with delegation_id it ' +
          'starts a new Errand task (this A2A task; cancel it to end the Errand task and revoke its tokens), with ' +
          'task_id it issues another token for a live task. Equivalent to an RFC 8693 token exchange at the token ' +
          'endpoint with the delegation as subject_token.',
        ['oauth', 'token-exchange', 'rfc8693', 'task'],
        { delegation_id: 'dlg_…', resource: notes, scope: 'notes:read' },
      ),
      skill(
        'delegate_to_subagent',
        'Delegate to a sub-agent',
        'Creates a sub-task of your task for another agent and returns its access token, never wider than what ' +
          'your task holds; the token carries act = sub-agent ← you. The sub-agent takes part with actor_token, a ' +
          'JWT it signed. Equivalent to an RFC 8693 exchange with your task token as subject_token and the ' +
          "sub-agent's actor_token.",
        ['oauth', 'token-exchange', 'rfc8693', 'sub-agent'],
        { task_id: 'tsk_…', sub_agent_id: 'cli_…', actor_token: 'eyJ…', resource: notes, scope: 'notes:read' },
      ),
      skill(
        'end_task',
        'End a task',
        'Ends a task you take part in, with all its sub-tasks; every token issued for them is revoked at once.',
        ['task', 'revocation'],
        { task_id: 'tsk_…', state: 'completed' },
      ),
    ],
    signatures: [],
  };
}

type OAuthFlow = NonNullable<
  Extract<SecurityScheme['scheme'], { $case: 'oauth2SecurityScheme' }>['value']['flows']
>['flow'];

/** URI of the card extension that carries the caller's view in the extended card. */
export const CALLER_EXTENSION_URI = 'urn:errand:a2a:caller:v1';

/** What the extended card tells a signed-in agent about itself. */
export interface CallerView {
  clientId: string;
  clientName: string;
  username: string | null;
  scopes: string[];
  delegations: { status: string; grants: Record<string, string[]>; expiresAt: number }[];
  now: number;
}

/**
 * The extended card (A2A §3.1.11): the public card plus, as a non-required extension, the caller's
 * delegation counts and the resources and scopes its active delegations cover. No secrets, no
 * internal URLs (A2A §13.3).
 */
export function extendedAgentCard(base: AgentCard, view: CallerView): AgentCard {
  const counts: Record<string, number> = {};
  const resources: Record<string, Set<string>> = {};
  for (const d of view.delegations) {
    counts[d.status] = (counts[d.status] ?? 0) + 1;
    if (d.status !== 'active' || d.expiresAt <= view.now) continue;
    for (const [resource, scopes] of Object.entries(d.grants)) {
      const held = resources[resource] ?? new Set<string>();
      for (const s of scopes) held.add(s);
      resources[resource] = held;
    }
  }
  return {
    ...base,
    capabilities: {
      ...base.capabilities!,
      extensions: [
        ...(base.capabilities?.extensions ?? []),
        {
          uri: CALLER_EXTENSION_URI,
          description: `What Errand knows about ${view.clientName}: its delegations and the resources it may act on.`,
          required: false,
          params: {
            client_id: view.clientId,
            client_name: view.clientName,
            ...(view.username ? { username: view.username } : {}),
            scopes: view.scopes,
            delegations: counts,
            resources: Object.entries(resources)
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([resource, scopes]) => ({ resource, scopes: [...scopes].sort() })),
          },
        },
      ],
    },
  };
}

/**
 * Signs a card as A2A §8.4 asks (JWS over the RFC 8785 form without `signatures`), returning the
 * JSON to serve. Serve exactly what this returns; verifiers check the raw JSON.
 *
 * With `endpoint`, the card also carries the 0.3 fields (card-v03.ts) and two signatures: the
 * first over the whole served card, as §8.4 asks; the second over the form the 1.0 SDK's verifier
 * checks, which re-parses the card as 1.0 and so drops every 0.3-only field before canonicalizing.
 * Each version's client thus finds a signature over what it reads. The SDK is handed the JSON form:
 * signing the in-memory card drops the oneof fields (securitySchemes) from the payload (a2aproject/a2a-js#663).
 */
export async function signAgentCard(
  card: AgentCard,
  key: JwsKey,
  jku: string,
  opts: { endpoint?: string } = {},
): Promise<Record<string, unknown>> {
  const header = { alg: key.alg, kid: key.kid, typ: 'JOSE', jku };
  const json = AgentCard.toJSON({ ...card, signatures: [] }) as AgentCard;
  // The generator spreads its input: the result is the JSON form plus `signatures`.
  const sdkSigned = (await generateAgentCardSignature(key.privateKey, header)(json)) as unknown as {
    signatures: unknown[];
  };
  if (!opts.endpoint) return sdkSigned as unknown as Record<string, unknown>;
  const { signatures: _, ...unsigned } = withV03Fields(json as unknown as Record<string, unknown>, opts.endpoint);
  const whole = await new FlattenedSign(new TextEncoder().encode(canonicalJson(unsigned)))
    .setProtectedHeader(header)
    .sign(key.privateKey);
  return {
    ...unsigned,
    signatures: [{ protected: whole.protected, signature: whole.signature }, ...sdkSigned.signatures],
  };
}

export interface SignedCard {
  kid: string;
  /** The exact bytes served. */
  body: string;
  /** Strong validator over the body (RFC 9110 §8.8.3). */
  etag: string;
}

/** The public card, signed once per signing key: a new current `kid` gets a new signature. */
export class AgentCardPublisher {
  private cached: { kid: string; card: Promise<SignedCard> } | null = null;

  constructor(
    private readonly card: AgentCard,
    private readonly signingKey: () => JwsKey,
    private readonly jku: string,
    private readonly endpoint: string,
  ) {}

  current(): Promise<SignedCard> {
    const key = this.signingKey();
    if (this.cached?.kid !== key.kid) {
      const card = this.sign(key);
      this.cached = { kid: key.kid, card };
      card.catch(() => {
        if (this.cached?.card === card) this.cached = null;
      });
    }
    return this.cached.card;
  }

  private async sign(key: JwsKey): Promise<SignedCard> {
    const body = JSON.stringify(await signAgentCard(this.card, key, this.jku, { endpoint: this.endpoint }));
    const etag = `"${createHash('sha256').update(body).digest('base64url')}"`;
    return { kid: key.kid, body, etag };
  }
}
