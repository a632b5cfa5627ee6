/**
 * The JSON-RPC 2.0 envelope and the message parameters of an A2A call, checked at the door before
 * the SDK sees them, so a malformed call gets the error JSON-RPC 2.0 §5.1 names (`-32600`, `-32602`)
 * with a message saying what to fix, whichever A2A version the caller speaks.
 */

export type RpcId = string | number | null;
export type RpcError = { code: number; message: string; data?: unknown };
export interface RpcRequest {
  id: RpcId;
  method: string;
  params: Record<string, unknown>;
  [key: string]: unknown;
}

/** JSON-RPC 2.0 §5.1. */
export const RPC_CODE = { parseError: -32700, invalidRequest: -32600, invalidParams: -32602 } as const;

/** A2A 1.0 method names (its JSON-RPC binding): a call using one is 1.0, with or without an A2A-Version header. */
export const V1_METHODS: ReadonlySet<string> = new Set([
  'SendMessage',
  'SendStreamingMessage',
  'GetTask',
  'ListTasks',
  'CancelTask',
  'SubscribeToTask',
  'CreateTaskPushNotificationConfig',
  'GetTaskPushNotificationConfig',
  'ListTaskPushNotificationConfigs',
  'DeleteTaskPushNotificationConfig',
  'GetExtendedAgentCard',
]);

const MESSAGE_METHODS = new Set(['SendMessage', 'SendStreamingMessage', 'message/send', 'message/stream']);
const HISTORY_METHODS = new Set(['GetTask', 'ListTasks', 'tasks/get']);
const ROLES = { v1: new Set<unknown>(['ROLE_USER', 'ROLE_AGENT', 1, 2]), v03: new Set<unknown>(['user', 'agent']) };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(message: string, id: RpcId = null): { ok: false; id: RpcId; error: RpcError } {
  return { ok: false, id, error: { code: RPC_CODE.invalidRequest, message: `Invalid Request: ${message}` } };
}

/** JSON-RPC 2.0 §4: a Request object, one per call (A2A defines no batches). */
export function readRpcRequest(
  body: unknown,
): { ok: true; request: RpcRequest } | { ok: false; id: RpcId; error: RpcError } {
  if (Array.isArray(body)) return invalid(body.length ? 'batch requests are not supported' : 'empty batch');
  if (!isObject(body)) return invalid('the body must be a JSON-RPC request object');
  const rawId = body.id;
  const idOk = rawId === undefined || rawId === null || typeof rawId === 'string' || Number.isInteger(rawId);
  if (!idOk) return invalid('id must be a string, an integer or null');
  const id = (rawId ?? null) as RpcId;
  if (body.jsonrpc !== '2.0') return invalid('jsonrpc must be "2.0"', id);
  if (typeof body.method !== 'string' || !body.method) return invalid('method must be a non-empty string', id);
  // §4.2: params are structured (an object or an array); A2A names its parameters, so an array is
  // a call with the wrong parameters rather than a malformed request.
  if (Array.isArray(body.params)) {
    return {
      ok: false,
      id,
      error: { code: RPC_CODE.invalidParams, message: 'Invalid params: params must be an object' },
    };
  }
  if (body.params !== undefined && !isObject(body.params)) return invalid('params must be an object or an array', id);
  return {
    ok: true,
    request: { ...body, id, method: body.method, params: (body.params ?? {}) as Record<string, unknown> },
  };
}

function checkHistoryLength(value: unknown, name: string): string | null {
  if (value === undefined || value === null) return null;
  return Number.isInteger(value) && (value as number) >= 0 ? null : `${name} must be an integer of 0 or more`;
}

/** What is wrong with the parameters of a message or history call, or null. */
export function paramsProblem(request: RpcRequest, legacy: boolean): string | null {
  const { method, params } = request;
  if (HISTORY_METHODS.has(method)) return checkHistoryLength(params.historyLength, 'params.historyLength');
  if (!MESSAGE_METHODS.has(method)) return null;
  const config = params.configuration;
  if (isObject(config)) {
    const problem = checkHistoryLength(config.historyLength, 'params.configuration.historyLength');
    if (problem) return problem;
  }
  const message = params.message;
  if (!isObject(message)) return 'params.message is required';
  const roles = legacy ? ROLES.v03 : ROLES.v1;
  if (!roles.has(message.role)) {
    return `params.message.role must be ${[...roles].filter((r) => typeof r === 'string').join(' or ')}`;
  }
  const parts = message.parts;
  if (!Array.isArray(parts) || parts.length === 0) return 'params.message.parts must hold at least one part';
  if (!parts.every(isObject)) return 'params.message.parts must be objects';
  return null;
}
