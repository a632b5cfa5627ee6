import type { Server } from 'node:http';
import {
  A2A_PROTOCOL_VERSION,
  A2A_VERSION_HEADER,
  AgentCard,
  Extensions,
  generateAgentCardSignature,
  HTTP_EXTENSION_HEADER,
  type Message,
  Role,
  TaskState,
} from '@a2a-js/sdk';
import {
  AgentEvent,
  type AgentExecutor,
  DefaultRequestHandler,
  defaultServerCallContextBuilder,
  type ExecutionEventBus,
  InMemoryTaskStore,
  JsonRpcTransportHandler,
  type RequestContext,
  type User,
  validateVersion,
} from '@a2a-js/sdk/server';
import { createGuard, type Guard, type PushOptions } from '@errand/guard';
import { type GuardEnv, guardMiddleware } from '@errand/guard/hono';
import { type ServerType, serve } from '@hono/node-server';
import { Hono } from 'hono';
import { exportJWK, generateKeyPair } from 'jose';
import { newId } from '../../broker/tokens/random.js';

/** The caller as the SDK sees it: tasks are scoped by `userName`, here the token's `sub`. */
class BearerUser implements User {
  constructor(private readonly sub: string) {}
  get isAuthenticated(): boolean {
    return true;
  }
  get userName(): string {
    return this.sub;
  }
}

const agentMessage = (taskId: string, contextId: string, text: string): Message => ({
  messageId: newId('msg'),
  contextId,
  taskId,
  role: Role.ROLE_AGENT,
  parts: [{ content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: 'text/plain' }],
  metadata: undefined,
  extensions: [],
  referenceTaskIds: [],
});

/** Completes every task at once, except "wait", which completes when the test releases it. */
class TestExecutor implements AgentExecutor {
  readonly gates = new Map<string, () => void>();

  async execute(ctx: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const part = ctx.userMessage.parts[0]?.content;
    const text = part?.$case === 'text' ? part.value : '';
    const { taskId, contextId } = ctx;
    const status = (state: TaskState, message?: Message) => ({
      state,
      message,
      timestamp: new Date().toISOString(),
    });
    bus.publish(
      AgentEvent.task({
        id: taskId,
        contextId,
        status: status(TaskState.TASK_STATE_SUBMITTED),
        artifacts: [],
        history: [ctx.userMessage],
        metadata: undefined,
      }),
    );
    if (text === 'wait') {
      bus.publish(
        AgentEvent.statusUpdate({
          taskId,
          contextId,
          status: status(TaskState.TASK_STATE_WORKING),
          metadata: undefined,
        }),
      );
      await new Promise<void>((resolve) => this.gates.set(taskId, resolve));
    }
    bus.publish(
      AgentEvent.statusUpdate({
        taskId,
        contextId,
        status: status(TaskState.TASK_STATE_COMPLETED, agentMessage(taskId, contextId, `done: ${text}`)),
        metadata: undefined,
      }),
    );
    bus.finished();
  }

  async cancelTask(): Promise<void> {}
}

export interface PeerAgent {
  base: string;
  endpoint: string;
  cardUrl: string;
  /** A signed card whose description was changed after signing (its endpoint is `/tampered/a2a`). */
  tamperedCardUrl: string;
  tamperedEndpoint: string;
  /** A signed card whose securitySchemes were swapped after signing. */
  schemesTamperedCardUrl: string;
  /** A card without signatures (endpoint `/unsigned/a2a`). */
  unsignedCardUrl: string;
  /** 302 to the card. */
  redirectCardUrl: string;
  /** A card (endpoint `/flip/a2a`) served signed, unsigned or altered after signing, as `flip` says. */
  flipCardUrl: string;
  flip(kind: 'signed' | 'unsigned' | 'tampered'): void;
  /** The User-Agent of every JSON-RPC call the endpoint received. */
  rpcUserAgents: string[];
  kid: string;
  guard: Guard;
  /** TCP connections the server accepted (proves a refused URL was never requested). */
  connections(): number;
  /** Lets a "wait" task complete. */
  release(taskId: string): void;
  close(): Promise<void>;
}

/**
 * A second A2A agent for tests, built from the SDK's server pieces behind Errand's guard: its
 * JSON-RPC endpoint is `http://127.0.0.1:<port>/a2a`, its signed card (ES256, `jku` = its own JWKS)
 * is at the well-known path.
 */
export async function startPeerAgent(opts: { port: number; issuer: string; push: PushOptions }): Promise<PeerAgent> {
  const base = `http://127.0.0.1:${opts.port}`;
  const endpoint = `${base}/a2a`;
  const jku = `${base}/.well-known/jwks.json`;
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = newId('card');
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] };
  const sign = generateAgentCardSignature(privateKey, { alg: 'ES256', kid, typ: 'JOSE', jku });

  const cardFor = (url: string, name: string) => ({
    name,
    description: 'Completes tasks for tests',
    version: '1.0.0',
    supportedInterfaces: [{ url, protocolBinding: 'JSONRPC', protocolVersion: A2A_PROTOCOL_VERSION }],
    capabilities: { streaming: false },
    securitySchemes: { errand: { httpAuthSecurityScheme: { scheme: 'Bearer', bearerFormat: 'JWT' } } },
    securityRequirements: [{ schemes: { errand: { list: ['a2a:invoke'] } } }],
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: [{ id: 'echo', name: 'Echo', description: 'Answers "done: <text>"', tags: ['test'] }],
  });
  const cardJson = cardFor(endpoint, 'Peer test agent');
  // Sign the JSON form and serve exactly what was signed (SDK-NOTES §B pitfall).
  const signed = await sign(cardJson as unknown as AgentCard);
  const tampered = {
    ...(await sign(cardFor(`${base}/tampered/a2a`, 'Tampered agent') as unknown as AgentCard)),
    description: 'Now does something else',
  };
  const unsigned = cardFor(`${base}/unsigned/a2a`, 'Unsigned agent');
  const flipCard = cardFor(`${base}/flip/a2a`, 'Flip agent');
  const flipSigned = await sign(flipCard as unknown as AgentCard);
  const flipCards = {
    signed: flipSigned,
    unsigned: flipCard,
    tampered: { ...flipSigned, description: 'Altered after signing' },
  };
  let flipKind: keyof typeof flipCards = 'signed';
  const rpcUserAgents: string[] = [];
  // The SDK's in-memory signing leaves securitySchemes uncovered (a2a-js#663); over raw JSON they are covered.
  const schemesTampered = {
    ...(await sign(cardFor(`${base}/schemes/a2a`, 'Schemes agent') as unknown as AgentCard)),
    securitySchemes: { errand: { apiKeySecurityScheme: { location: 'query', name: 'key' } } },
  };

  const guard = createGuard({
    issuer: opts.issuer,
    resource: endpoint,
    scopesSupported: ['a2a:invoke', 'a2a:echo'],
    push: opts.push,
  });
  const card = AgentCard.fromJSON(cardJson);
  const executor = new TestExecutor();
  const rpc = new JsonRpcTransportHandler(new DefaultRequestHandler(card, new InMemoryTaskStore(), executor));

  const app = new Hono<GuardEnv>();
  app.get('/.well-known/agent-card.json', (c) => c.json(signed));
  app.get('/.well-known/jwks.json', (c) => c.json(jwks));
  app.get('/tampered/agent-card.json', (c) => c.json(tampered));
  app.get('/unsigned/agent-card.json', (c) => c.json(unsigned));
  app.get('/schemes/agent-card.json', (c) => c.json(schemesTampered));
  app.get('/moved/agent-card.json', (c) => c.redirect('/.well-known/agent-card.json', 302));
  app.get('/flip/agent-card.json', (c) => c.json(flipCards[flipKind]));
  // The JSON-RPC glue (SDK-NOTES §B), behind the guard; no streaming in this test agent.
  app.use('/a2a', async (c, next) => {
    rpcUserAgents.push(c.req.header('user-agent') ?? '');
    await next();
  });
  app.post('/a2a', guardMiddleware(guard, { scopes: ['a2a:invoke'] }), async (c) => {
    const body = (await c.req.json()) as Record<string, unknown>;
    const version = c.req.header(A2A_VERSION_HEADER);
    try {
      const ctx = defaultServerCallContextBuilder({
        user: new BearerUser(c.var.auth.sub),
        headers: Object.fromEntries(c.req.raw.headers),
        extensions: Extensions.parseServiceParameter(c.req.header(HTTP_EXTENSION_HEADER)),
        ...(version ? { requestedVersion: version } : {}),
      });
      validateVersion(ctx.requestedVersion, card, 'JSONRPC');
      const out = await rpc.handle(body, ctx);
      if (Symbol.asyncIterator in out) throw new Error('streaming is not served by the test agent');
      return c.json(out);
    } catch (err) {
      return c.json({ jsonrpc: '2.0', id: body.id ?? null, error: JsonRpcTransportHandler.mapToJSONRPCError(err) });
    }
  });

  let accepted = 0;
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: opts.port }, () => resolve(s));
  });
  (server as Server).on('connection', () => {
    accepted += 1;
  });
  return {
    base,
    endpoint,
    cardUrl: `${base}/.well-known/agent-card.json`,
    tamperedCardUrl: `${base}/tampered/agent-card.json`,
    tamperedEndpoint: `${base}/tampered/a2a`,
    unsignedCardUrl: `${base}/unsigned/agent-card.json`,
    schemesTamperedCardUrl: `${base}/schemes/agent-card.json`,
    redirectCardUrl: `${base}/moved/agent-card.json`,
    flipCardUrl: `${base}/flip/agent-card.json`,
    flip: (kind) => {
      flipKind = kind;
    },
    rpcUserAgents,
    kid,
    guard,
    connections: () => accepted,
    release: (taskId) => executor.gates.get(taskId)?.(),
    async close() {
      guard.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
