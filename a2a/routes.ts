import {
  A2A_PROTOCOL_VERSION,
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
  LEGACY_METHOD_MESSAGE_STREAM,
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
import { DPOP, ERRAND_SCOPES, PATHS } from '@errand/protocol';
import { type Context, Hono } from 'hono';
import type { Engine } from '../broker/engine.js';
import { type StreamLimit, tooManyStreams } from '../broker/http/stream-limit.js';
import { type AppEnv, NO_STORE } from '../broker/http/types.js';
import { a2aResourceId, a2aUrl } from '../broker/services/built-in-resources.js';
import { type AccessFailure, accessChallenge } from '../broker/services/resource-access.js';
import { AGENT_CARD_MAX_AGE, AgentCardPublisher, buildAgentCard, extendedAgentCard, signAgentCard } from './card.js';
import { DurableTaskStore } from './durable-task-store.js';
import { ErrandAgentExecutor } from './executor.js';
import { paramsProblem, RPC_CODE, type RpcError, readRpcRequest, V1_METHODS } from './rpc-request.js';
import { A2aCaller, callerOf, ErrandRequestHandler, ErrandTaskStore, setRequestId } from './task-bridge.js';

/** RFC 9110 §13.1.2: If-None-Match uses the weak comparison; `*` matches any current representation. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}

const JSON_TYPES = new Set(['application/json', 'application/a2a+json']);
/** Methods answered with a long-lived event stream (A2A 1.0 and 0.3 names). */
const STREAMING = new Set([
  'SendStreamingMessage',
  'SubscribeToTask',
  LEGACY_METHOD_MESSAGE_STREAM,
  LEGACY_METHOD_TASKS_RESUBSCRIBE,
]);

/**
 * Errand as an A2A agent: the signed Agent Card, the protected resource metadata of `<issuer>/a2a`,
 * and the JSON-RPC endpoint (A2A 1.0, and 0.3 through the SDK's compat handler) for callers with
 * an Errand token issued for exactly that resource. This is the glue the SDK's express
 * `jsonRpcHandler` does, on Hono.
 */
export function a2aRoutes(
  deps: Pick<Engine, 'config' | 'clock' | 'log' | 'keys' | 'agentOps' | 'access' | 'a2aTasks'>,
  opts: { streams: StreamLimit },
) {
  const { issuer } = deps.config;
  const endpoint = { resource: a2aResourceId(issuer), url: a2aUrl(issuer) };
  const endpointUrl = new URL(endpoint.url);
  // RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
  const resourceMetadataUrl = `${endpointUrl.origin}/.well-known/oauth-protected-resource${endpointUrl.pathname}`;
  const jku = `${issuer}${PATHS.jwks}`;

  const card = buildAgentCard(issuer);
  const publisher = new AgentCardPublisher(card, () => deps.keys.signingKey(), jku, endpoint.url);
  const extendedCard: ExtendedAgentCardProvider = async (context) => {
    const { caller } = callerOf(context);
    // The caller's delegations as the engine scopes them (the user its token speaks for).
    const listed = await deps.agentOps.listDelegations(caller);
    const view = extendedAgentCard(card, {
      clientId: caller.client.id,
      clientName: caller.client.name,
      username: caller.user?.username ?? null,
      scopes: caller.scopes,
      delegations: listed.ok ? listed.value : [],
      now: deps.clock.now(),
    });
    return AgentCard.fromJSON(await signAgentCard(view, deps.keys.signingKey(), jku));
  };
  const store = new ErrandTaskStore(deps, new DurableTaskStore(deps));
  const handler = new ErrandRequestHandler(card, store, new ErrandAgentExecutor(deps), extendedCard);
  const v1 = new JsonRpcTransportHandler(handler);
  const legacy = new LegacyJsonRpcTransportHandler(handler);

  const challenge = (c: Context<AppEnv>, failure: AccessFailure) =>
    c.json(
      { error: failure.omitError ? 'unauthorized' : failure.error, error_description: failure.description },
      failure.status,
      { ...NO_STORE, 'WWW-Authenticate': accessChallenge(resourceMetadataUrl, ERRAND_SCOPES, failure) },
    );

  const app = new Hono<AppEnv>();
  // A2A §8.2, §8.6: the card is public and cacheable; a conditional request gets 304.
  app.get(`/${AGENT_CARD_PATH}`, async (c) => {
    const signed = await publisher.current();
    const headers = { 'Cache-Control': `public, max-age=${AGENT_CARD_MAX_AGE}`, ETag: signed.etag };
    if (matchesEtag(c.req.header('if-none-match'), signed.etag)) return c.body(null, 304, headers);
    return c.body(signed.body, 200, { ...headers, 'Content-Type': 'application/json' });
  });
  // RFC 9728 §3: the path-specific metadata for <issuer>/a2a.
  app.get(new URL(resourceMetadataUrl).pathname, (c) =>
    c.json(
      {
        resource: endpoint.url,
        authorization_servers: [issuer],
        scopes_supported: [...ERRAND_SCOPES],
        bearer_methods_supported: ['header'],
        resource_name: 'Errand A2A',
        dpop_signing_alg_values_supported: [...DPOP.algs],
      },
      200,
      { 'Cache-Control': 'public, max-age=300' },
    ),
  );

  app.post(PATHS.a2a, async (c) => {
    // A2A §7.4: every operation is authorized; missing or bad credentials are a 401 with a challenge.
    const verified = await deps.access.verify(
      { authorization: c.req.header('authorization'), dpop: c.req.header(DPOP.header), method: c.req.method },
      endpoint,
    );
    if (!verified.ok) {
      if (!verified.failure.omitError)
        c.var.log.info('a2a.token_rejected', { description: verified.failure.description });
      return challenge(c, verified.failure);
    }
    const caller = { ...verified.caller, door: 'a2a' as const, address: c.var.address };

    const header = c.req.header(A2A_VERSION_HEADER) || undefined;
    const contentType = c.req.header('content-type')?.split(';', 1)[0]?.trim().toLowerCase();
    if (contentType && !JSON_TYPES.has(contentType)) {
      const unsupported = new ContentTypeNotSupportedError(`expected application/json, got ${contentType}`);
      const error = header
        ? JsonRpcTransportHandler.mapToJSONRPCError(unsupported)
        : LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError(unsupported);
      return c.json({ jsonrpc: '2.0', id: null, error });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(await c.req.text());
    } catch {
      return c.json({
        jsonrpc: '2.0',
        id: null,
        error: { code: RPC_CODE.parseError, message: 'Parse error: the body is not valid JSON' },
      });
    }
    const read = readRpcRequest(parsed);
    if (!read.ok) return c.json({ jsonrpc: '2.0', id: read.id, error: read.error });
    const body = read.request;

    // A2A §3.6.2: no A2A-Version header means 0.3, which the compat handler speaks; a 1.0 method
    // name without the header is a 1.0 call (the two versions' method names do not overlap).
    const version = header ?? (V1_METHODS.has(body.method) ? A2A_PROTOCOL_VERSION : undefined);
    const isLegacy = (version ?? A2A_LEGACY_PROTOCOL_VERSION) === A2A_LEGACY_PROTOCOL_VERSION;
    const mapError = (err: unknown): RpcError =>
      isLegacy
        ? LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError(err)
        : JsonRpcTransportHandler.mapToJSONRPCError(err);
    const rpcError = (id: unknown, error: RpcError) => c.json({ jsonrpc: '2.0', id: id ?? null, error });

    const problem = paramsProblem(body, isLegacy);
    if (problem) return rpcError(body.id, { code: RPC_CODE.invalidParams, message: `Invalid params: ${problem}` });

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

    // Streams are capped per client (and in total), counted with the revocation push channel's.
    let release: (() => void) | null = null;
    if (STREAMING.has(body.method)) {
      release = opts.streams.acquire(caller.client.id);
      if (!release) throw tooManyStreams();
    }
    let out: Awaited<ReturnType<JsonRpcTransportHandler['handle']>>;
    try {
      out = await (isLegacy ? legacy : v1).handle(body, context);
    } catch (err) {
      release?.();
      throw err;
    }
    const activated: Record<string, string> = context.activatedExtensions?.length
      ? { [isLegacy ? LEGACY_HTTP_EXTENSION_HEADER : HTTP_EXTENSION_HEADER]: context.activatedExtensions.join(', ') }
      : {};
    if (!(Symbol.asyncIterator in out)) {
      release?.();
      return c.json(out, 200, activated);
    }

    // Streaming: the first event decides; an error before it is a plain JSON-RPC error (as the
    // SDK's express glue does), except for 0.3 resubscribe, which is always SSE.
    const iterator = out[Symbol.asyncIterator]();
    let first: IteratorResult<unknown> | null = null;
    if (!(isLegacy && body.method === LEGACY_METHOD_TASKS_RESUBSCRIBE)) {
      try {
        first = await iterator.next();
      } catch (err) {
        release?.();
        return rpcError(body.id, mapError(err));
      }
    }
    const encoder = new TextEncoder();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        if (first && !first.done) controller.enqueue(encoder.encode(formatSSEEvent(first.value)));
        if (first?.done) {
          controller.close();
          release?.();
        }
      },
      async pull(controller) {
        try {
          const next = await iterator.next();
          if (next.done) {
            controller.close();
            release?.();
          } else controller.enqueue(encoder.encode(formatSSEEvent(next.value)));
        } catch (err) {
          c.var.log.info('a2a.stream_failed', { reason: (err as Error).message });
          const error = { jsonrpc: '2.0', id: body.id ?? null, error: mapError(err) };
          controller.enqueue(encoder.encode(formatSSEErrorEvent(error)));
          controller.close();
          release?.();
        }
      },
      async cancel() {
        release?.();
        await iterator.return?.(undefined);
      },
    });
    return new Response(stream, { status: 200, headers: { ...SSE_HEADERS, ...activated } });
  });
  return app;
}
