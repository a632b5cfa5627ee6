import { ERRAND_SCOPE, PATHS } from '@errand/protocol';
import { z } from 'zod';
import {
  ApiErrorSchema,
  AuditEventViewSchema,
  ClientViewSchema,
  DelegationViewSchema,
  ExchangeRuleViewSchema,
  InitialAccessTokenViewSchema,
  KeyViewSchema,
  PeerViewSchema,
  ResourceViewSchema,
  TaskViewSchema,
  TrustedIssuerViewSchema,
  UserViewSchema,
} from '../../services/api-views.js';
import { API_OPERATIONS, type ApiOperation } from './api-operations.js';

/**
 * The OpenAPI 3.1 document of the admin and user APIs, generated from their zod schemas
 * (README "Admin API"). Deterministic: the same code gives the same document, which is committed as
 * docs/openapi.json (`npm run openapi`) and served at GET /api/openapi.json with the issuer as server.
 */

type Json = Record<string, unknown>;

export const OPENAPI_VERSION = '3.1.1';

/** Views shared by several operations: named components instead of copies. */
const NAMED_RESPONSES: Record<string, z.ZodType> = {
  Client: ClientViewSchema,
  ExchangeRule: ExchangeRuleViewSchema,
  Task: TaskViewSchema,
  Delegation: DelegationViewSchema,
  Peer: PeerViewSchema,
  TrustedIssuer: TrustedIssuerViewSchema,
  InitialAccessToken: InitialAccessTokenViewSchema,
  User: UserViewSchema,
  Resource: ResourceViewSchema,
  Key: KeyViewSchema,
  AuditEvent: AuditEventViewSchema,
  Error: ApiErrorSchema,
};

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** One JSON Schema 2020-12 document per registered schema, `$ref`s between them (zod 4 `toJSONSchema`). */
function components(registry: z.core.$ZodRegistry<{ id: string }>, io: 'input' | 'output'): Record<string, Json> {
  const { schemas } = z.toJSONSchema(registry, {
    io,
    target: 'draft-2020-12',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }) as { schemas: Record<string, Json> };
  return Object.fromEntries(
    Object.entries(schemas).map(([name, { $schema: _s, $id: _i, ...schema }]) => [name, schema]),
  );
}

function inline(schema: z.ZodType): Json {
  const { $schema: _s, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Json;
  return rest;
}

function parameters(o: ApiOperation): Json[] {
  const path = [...o.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }));
  const query = Object.entries(o.query?.shape ?? {}).map(([name, field]) => ({
    name,
    in: 'query',
    required: !(field as z.ZodType).safeParse(undefined).success,
    schema: inline(field as z.ZodType),
  }));
  return [...path, ...query];
}

const ADMIN_SECURITY = [{ session: [] }, { admin_token: [ERRAND_SCOPE.admin] }];
const SECURITY: Record<ApiOperation['access'], Json[]> = {
  admin: ADMIN_SECURITY,
  user: [{ session: [] }],
  public: [],
  resource_server: [{ client_secret_basic: [] }, { client_assertion: [] }],
};
const TAG: Record<ApiOperation['access'], string> = {
  admin: 'admin',
  user: 'me',
  public: 'public',
  resource_server: 'authzen',
};

function operation(o: ApiOperation, names: { body?: string; response?: string }): Json {
  const status = String(o.status ?? 200);
  const refusals = {
    '4XX': {
      description: 'Refused: `error` and `error_description` say what to send (401 carries WWW-Authenticate)',
      content: { 'application/json': { schema: ref('Error') } },
    },
  };
  const params = parameters(o);
  return {
    operationId: o.id,
    summary: o.summary,
    tags: [TAG[o.access]],
    ...(params.length ? { parameters: params } : {}),
    ...(names.body
      ? {
          requestBody: {
            required: !o.bodyOptional,
            content: { 'application/json': { schema: ref(names.body) } },
          },
        }
      : {}),
    responses: {
      [status]: {
        description: o.status === 204 ? 'Done, no body' : 'Success',
        ...(names.response ? { content: { 'application/json': { schema: ref(names.response) } } } : {}),
      },
      ...(o.access === 'public' && !o.body ? {} : refusals),
    },
    security: SECURITY[o.access],
  };
}

/** Where the committed copy lives, and its exact text (`npm run openapi` writes it; a test compares). */
export const OPENAPI_FILE = 'docs/openapi.json';
export function openApiFileText(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}

/** Builds the document; `server` is the issuer when served, `/` (relative) when committed. */
export function openApiDocument(server = '/'): Json {
  const requests = z.registry<{ id: string }>();
  const responses = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(NAMED_RESPONSES)) responses.add(schema, { id });
  const named = new Map<z.ZodType, string>(Object.entries(NAMED_RESPONSES).map(([id, s]) => [s, id]));
  const paths: Record<string, Record<string, Json>> = {};
  for (const o of API_OPERATIONS) {
    const names: { body?: string; response?: string } = {};
    if (o.body) {
      names.body = requests.get(o.body)?.id ?? `${capitalize(o.id)}Request`;
      if (!requests.has(o.body)) requests.add(o.body, { id: names.body });
    }
    if (o.response) {
      names.response = named.get(o.response) ?? responses.get(o.response)?.id ?? `${capitalize(o.id)}Response`;
      if (!responses.has(o.response)) responses.add(o.response, { id: names.response });
    }
    const path = o.path.replace(/:(\w+)/g, '{$1}');
    paths[path] = { ...paths[path], [o.method.toLowerCase()]: operation(o, names) };
  }
  return {
    openapi: OPENAPI_VERSION,
    info: {
      title: 'Errand admin and user API',
      version: '1',
      description:
        'JSON APIs of the Errand broker. Bodies are snake_case. Admin endpoints take a signed-in administrator ' +
        '(session cookie from POST /api/session, and X-CSRF-Token on unsafe methods) or an access token with ' +
        `scope ${ERRAND_SCOPE.admin} issued to an admin service client (Authorization: Bearer, or DPoP with a proof). ` +
        'See the README section "Admin API". The AuthZEN endpoints (/access/v1/*) take the credentials of a ' +
        'resource-server client instead (README "AuthZEN authorization API").',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: server }],
    tags: [
      { name: 'admin', description: 'Administration (administrators and admin service clients)' },
      { name: 'me', description: "The signed-in person's delegations, tasks and audit trail" },
      { name: 'public', description: 'Sign-in and this document' },
      {
        name: 'authzen',
        description: 'OpenID AuthZEN Authorization API 1.0: policy decisions for resource-server clients',
      },
    ],
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b))),
    components: {
      schemas: { ...components(requests, 'input'), ...components(responses, 'output') },
      securitySchemes: {
        session: {
          type: 'apiKey',
          in: 'cookie',
          name: 'errand_session',
          description:
            'The cookie POST /api/session sets (`__Host-errand_session` behind https). POST, PUT, PATCH and DELETE ' +
            'also carry the returned csrf_token as the X-CSRF-Token header.',
        },
        client_secret_basic: {
          type: 'http',
          scheme: 'basic',
          description: 'A resource-server client with a secret (client_secret_basic, RFC 6749 §2.3.1).',
        },
        client_assertion: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'A resource-server client with a key (private_key_jwt): an RFC 7523 client assertion, audience the issuer, ' +
            'used once, as the Bearer credential.',
        },
        admin_token: {
          type: 'oauth2',
          description:
            `An access token for <issuer>${PATHS.adminApi} with scope ${ERRAND_SCOPE.admin}, issued to a client of kind ` +
            'admin_service. A DPoP-bound token is sent as `Authorization: DPoP <token>` with a DPoP proof for each ' +
            'request (RFC 9449 §7); no CSRF token.',
          flows: {
            clientCredentials: {
              tokenUrl: PATHS.token,
              scopes: { [ERRAND_SCOPE.admin]: 'Administer this Errand through the admin API' },
            },
          },
        },
      },
    },
  };
}
