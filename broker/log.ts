/**
 * Operational JSON-line logs. Event names are `entity.past_tense`; fields are flat. Never log a
 * token, secret, assertion or key: log `jti`, `kid`, ids or a short hash.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  child(bindings: LogFields): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

// Field names whose values must never reach a log line, whatever a caller passes.
const SECRET_KEYS =
  /^(token|access_token|refresh_token|client_secret|secret|password|assertion|client_assertion|code|code_verifier|authorization|cookie|private_?key|subject_token|actor_token)$/i;

/** How many causes of an error are logged (drizzle → group commit → engine is three). */
const MAX_CAUSES = 5;

/**
 * An error with its cause chain (name, message, code), so that a failed query's log line carries the
 * engine's reason. drizzle's `Failed query: … params: …` message lists the query's values (client
 * ids, assertion jtis, hashes), so its `params:` part is cut from the message and the stack.
 */
function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return String(err);
  const message = withoutParams(err.message);
  const out: Record<string, unknown> = { name: err.name, message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  if (depth === 0) out.stack = err.stack?.replace(err.message, message);
  if (err.cause !== undefined && depth < MAX_CAUSES) out.cause = serializeError(err.cause, depth + 1);
  return out;
}

/** drizzle's query error message without the parameter values it appends. */
function withoutParams(message: string): string {
  const at = message.startsWith('Failed query: ') ? message.indexOf('\nparams: ') : -1;
  return at < 0 ? message : message.slice(0, at);
}

function scrub(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (SECRET_KEYS.test(k)) out[k] = '[redacted]';
    else if (k === 'err') out[k] = serializeError(v);
    else out[k] = v;
  }
  return out;
}

/** Creates a logger writing JSON lines to `write` (stdout by default). */
export function createLogger(
  opts: { level?: LogLevel; bindings?: LogFields; write?: (line: string) => void } = {},
): Logger {
  const min = RANK[opts.level ?? 'info'];
  const bindings = opts.bindings ?? {};
  const write = opts.write ?? ((line: string) => process.stdout.write(line));
  const emit = (level: LogLevel, event: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    const record = { time: new Date().toISOString(), level, event, ...bindings, ...(fields ? scrub(fields) : {}) };
    write(`${JSON.stringify(record)}\n`);
  };
  return {
    debug: (e, f) => emit('debug', e, f),
    info: (e, f) => emit('info', e, f),
    warn: (e, f) => emit('warn', e, f),
    error: (e, f) => emit('error', e, f),
    child: (b) => createLogger({ ...opts, bindings: { ...bindings, ...b } }),
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = createLogger({ write: () => {}, level: 'error' });
