import {
  A2A_VERSION_HEADER,
  AGENT_CARD_PATH,
  AgentCard,
  Extensions,
  formatSSEErrorEvent,
  formatSSEEvent,
  HTTP_EXTENSION_HEADER,
  SSE_HEADERS,
} from '@a2a-js/sdk';
import {
  A2A_LEGACY_PROTOCOL_VERSION,
  LEGACY_HTTP_EXTENSION_HEADER,
  LEGACY_METHOD_TASKS_RESUBSCRIBE,
} from '@a2a-js/sdk/compat/v0_3';
import { LegacyJsonRpcTransportHandler } from '@a2a-js/sdk/compat/v0_3/server';
import { ContentTypeNotSupportedError } from '@a2a-js/sdk/errors';
import {
  defaultServerCallContextBuilder,
  type ExtendedAgentCardProvider,
  JsonRpcTransportHandler,
  type ServerCallContext,
  validateVersion,
} from '@a2a-js/sdk/server';
import { type Context, Hono } from 'hono';
import { OAuthError } from '../broker/core/errors.js';
import { PATHS } from '../broker/core/protocol.js';
import type { AppDeps } from '../broker/http/app.js';
import { type AppEnv, NO_STORE } from '../broker/http/types.js';
import { TokenMinter } from '../broker/tokens/access-token.js';
import { newId } from '../broker/tokens/random.js';
import { authenticate, bearerChallenge } from '../mcp-server/errand/auth.js';
import { ERRAND_SCOPES } from '../mcp-server/errand/resource.js';
import {
  A2A_PATH,
  AgentCardPublisher,
  a2aResourceId,
  a2aUrl,
  buildAgentCard,
  extendedAgentCard,
  signAgentCard,
} from './card.js';
import { ErrandAgentExecutor } from './executor.js';
import { A2aCaller, callerOf, ErrandRequestHandler, ErrandTaskStore, setRequestId } from './task-bridge.js';

/**
 * Registers `<issuer>/a2a` as a resource with Errand's scopes when it is missing (start-up,
 * idempotent). A resource an administrator already created at that URL is left as it is.
 */
export async function ensureA2aResource(
  clients: Pick<AppDeps['clients'], 'getResource' | 'insertResource'>,
  issuer: string,
  now: number,
): Promise<void> {
  const url = a2aResourceId(issuer);
  if (await clients.getResource(url)) return;
  try {
    await clients.insertResource({
      id: newId('res'),
      url,
      name: 'Errand A2A',
      scopes: [...ERRAND_SCOPES],
      createdAt: now,
    });
  } catch (err) {
    // Another broker process sharing the database may have inserted it meanwhile.
    if (!(await clients.getResource(url))) throw err;
  }
}

/** RFC 9110 §13.1.2: If-None-Match uses the weak comparison; `*` matches any current representation. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}

const JSON_TYPES = new Set(['application/json', 'application/a2a+json']);
type RpcError = { code: number; message: string; data?: unknown };

/**
 * Errand as an A2A agent: the signed Agent Card, the protected resource metadata of `<issuer>/a2a`,
 * and the JSON-RPC endpoint (A2A 1.0, and 0.3 through the SDK's compat handler) for callers with
 * an Errand token issued for exactly that resource. This is the glue the SDK's express
 * `jsonRpcHandler` does, on Hono.
 */
export function a2aRoutes(deps: AppDeps) {
  const { issuer } = deps.config;
  const endpoint = a2aUrl(issuer);
  const resource = a2aResourceId(issuer);
  const endpointUrl = new URL(endpoint);
  // RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
  const resourceMetadataUrl = `${endpointUrl.origin}/.well-known/oauth-protected-resource${endpointUrl.pathname}`;
  const jku = `${issuer}${PATHS.jwks}`;
  const minter = new TokenMinter({ keys: deps.keys, issuer, clock: deps.clock });

  const card = buildAgentCard(issuer);
  const publisher = new AgentCardPublisher(card, () => deps.keys.signingKey(), jku);
  const extendedCard: ExtendedAgentCardProvider = async (context) => {
    const { caller } = callerOf(context);
    // The store reads an agent's delegations inside a transaction only.
    const all = await deps.db.write((tx) => deps.delegations.listForAgent(caller.agent.id, tx));
    const view = extendedAgentCard(card, {
      clientId: caller.agent.id,
      clientName: caller.agent.name,
      username: caller.user?.username ?? null,
      scopes: caller.scopes,
      delegations: all.filter((d) => !caller.user || d.userId === caller.user.id),
      now: deps.clock.now(),
    });
    return AgentCard.fromJSON(await signAgentCard(view, deps.keys.signingKey(), jku));
  };
  const store = new ErrandTaskStore(deps);
  const handler = new ErrandRequestHandler(card, store, new ErrandAgentExecutor(deps), extendedCard);
  const v1 = new JsonRpcTransportHandler(handler);
  const legacy = new LegacyJsonRpcTransportHandler(handler);

  const challenge = (c: Context<AppEnv>, err: OAuthError | null) =>
    c.json(
      err ? err.toBody() : { error: 'unauthorized', error_description: `an access token for ${endpoint} is required` },
      401,
      {
        ...NO_STORE,
        'WWW-Authenticate': bearerChallenge({
          resourceMetadataUrl,
          ...(err ? { error: 'invalid_token' as const, description: err.message } : {}),
        }),
      },
    );

  const app = new Hono<AppEnv>();
  // A2A §8.2, §8.6: the card is public and cacheable; a conditional request gets 304.
  app.get(`/${AGENT_CARD_PATH}`, async (c) => {
    const signed = await publisher.current();
    const headers = { 'Cache-Control': 'public, max-age=300', ETag: signed.etag };
    if (matchesEtag(c.req.header('if-none-match'), signed.etag)) return c.body(null, 304, headers);
    return c.body(signed.body, 200, { ...headers, 'Content-Type': 'application/json' });
  });
  // RFC 9728 §3: the path-specific metadata for <issuer>/a2a.
  app.get(new URL(resourceMetadataUrl).pathname, (c) =>
    c.json(
      {
        resource: endpoint,
        authorization_servers: [issuer],
        scopes_supported: [...ERRAND_SCOPES],
        bearer_methods_supported: ['header'],
        resource_name: 'Errand A2A',
      },
      200,
      { 'Cache-Control': 'public, max-age=300' },
    ),
  );

  app.post(A2A_PATH, async (c) => {
    // A2A §7.4: every operation is authorized; missing or bad credentials are a 401 with a challenge.
    const authorization = c.req.header('authorization');
    if (!authorization) return challenge(c, null);
    let caller: Awaited<ReturnType<typeof authenticate>>;
    try {
      caller = await authenticate(deps, minter, resource, authorization);
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      c.var.log.info('a2a.token_rejected', { description: err.message });
      return challenge(c, err);
    }

    // A2A §3.6.2: no A2A-Version header means 0.3, which the compat handler speaks.
    const version = c.req.header(A2A_VERSION_HEADER) || undefined;
    const isLegacy = (version ?? A2A_LEGACY_PROTOCOL_VERSION) === A2A_LEGACY_PROTOCOL_VERSION;
    const mapError = (err: unknown): RpcError =>
      isLegacy
        ? LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError(err)
        : JsonRpcTransportHandler.mapToJSONRPCError(err);
    const rpcError = (id: unknown, error: RpcError) => c.json({ jsonrpc: '2.0', id: id ?? null, error });

    const contentType = c.req.header('content-type')?.split(';', 1)[0]?.trim().toLowerCase();
    if (contentType && !JSON_TYPES.has(contentType)) {
      return rpcError(
        null,
        mapError(new ContentTypeNotSupportedError(`expected application/json, got ${contentType}`)),
      );
    }
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(await c.req.text());
      body =
        typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
          ? (parsed as Record<string, unknown>)
          : {};
    } catch {
      return rpcError(null, { code: -32700, message: 'Invalid JSON payload.' });
    }

    const headers = Object.fromEntries([...c.req.raw.headers].filter(([name]) => name !== 'authorization'));
    const extensions = isLegacy
      ? (c.req.header(LEGACY_HTTP_EXTENSION_HEADER) ?? c.req.header(HTTP_EXTENSION_HEADER))
      : c.req.header(HTTP_EXTENSION_HEADER);
    const context: ServerCallContext = defaultServerCallContextBuilder({
      user: new A2aCaller(caller),
      headers,
      extensions: Extensions.parseServiceParameter(extensions),
      ...(version ? { requestedVersion: version } : {}),
    });
    setRequestId(context, c.var.requestId);
    try {
      validateVersion(context.requestedVersion, card, 'JSONRPC');
    } catch (err) {
      return rpcError(body.id, mapError(err));
    }

    const out = await (isLegacy ? legacy : v1).handle(body, context);
    const activated: Record<string, string> = context.activatedExtensions?.length
      ? { [isLegacy ? LEGACY_HTTP_EXTENSION_HEADER : HTTP_EXTENSION_HEADER]: context.activatedExtensions.join(', ') }
      : {};
    if (!(Symbol.asyncIterator in out)) return c.json(out, 200, activated);

    // Streaming: the first event decides; an error before it is a plain JSON-RPC error (as the
    // SDK's express glue does), except for 0.3 resubscribe, which is always SSE.
    const iterator = out[Symbol.asyncIterator]();
    let first: IteratorResult<unknown> | null = null;
    if (!(isLegacy && body.method === LEGACY_METHOD_TASKS_RESUBSCRIBE)) {
      try {
        first = await iterator.next();
      } catch (err) {
        return rpcError(body.id, mapError(err));
      }
    }
    const encoder = new TextEncoder();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        if (first && !first.done) controller.enqueue(encoder.encode(formatSSEEvent(first.value)));
        if (first?.done) controller.close();
      },
      async pull(controller) {
        try {
          const next = await iterator.next();
          if (next.done) controller.close();
          else controller.enqueue(encoder.encode(formatSSEEvent(next.value)));
        } catch (err) {
          c.var.log.info('a2a.stream_failed', { reason: (err as Error).message });
          const error = { jsonrpc: '2.0', id: body.id ?? null, error: mapError(err) };
          controller.enqueue(encoder.encode(formatSSEErrorEvent(error)));
          controller.close();
        }
      },
      async cancel() {
        await iterator.return?.(undefined);
      },
    });
    return new Response(stream, { status: 200, headers: { ...SSE_HEADERS, ...activated } });
  });
  return app;
}
