/**
 * The per-stage breakdown of a token exchange, from a sampled V8 CPU profile (`node --cpu-prof`) of a
 * broker that served only exchanges while it was measured (README "Performance").
 *
 * Each sample is attributed by walking its stack from the leaf towards the root and taking the
 * first (innermost) frame that a rule of STAGE_RULES matches; a sample whose stack goes through
 * module loading is start-up and left out, `(idle)` is not CPU, `(garbage collector)` is its own
 * stage, and a sample no frame matches is "framework, event loop and other".
 */

/** The subset of the `.cpuprofile` format (Chrome DevTools protocol `Profiler.Profile`) read here. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber?: number };
    children?: number[];
  }[];
  /** Microseconds, on the profiled process's monotonic clock. */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export const STAGE = {
  parse: 'HTTP parse',
  clientAuth: 'client authentication',
  dpop: 'DPoP proof',
  subject: 'subject verification',
  decision: 'decision',
  storage: 'storage',
  signing: 'signing',
  response: 'response',
  logging: 'logging and audit formatting',
  telemetry: 'telemetry',
  gc: 'garbage collector',
  other: 'framework, event loop and other',
} as const;
export type Stage = (typeof STAGE)[keyof typeof STAGE];

/** A rule matches a call frame on its file (`url`) and/or its function name; both must match when both are given. */
export interface StageRule {
  stage: Stage;
  url?: RegExp;
  fn?: RegExp;
}

/**
 * The rule table, in one place. For one frame the first rule that matches decides; for one sample
 * the innermost frame that any rule matches decides. Storage is matched wherever it runs (writes are
 * group-committed, so their CPU happens outside the request's own stack). Rules mapping to `other`
 * stop the walk where a frame is known to be glue (a route handler's own code), so an outer
 * wrapper (tracing, the observe middleware) does not claim it.
 */
export const STAGE_RULES: readonly StageRule[] = [
  { stage: STAGE.gc, fn: /^\(garbage collector\)$/ },
  { stage: STAGE.storage, url: /\/db\/|\/node_modules\/(?:libsql|@libsql|drizzle-orm|pg|pg-protocol)\// },
  // packages/protocol/src/jws.ts both signs and verifies: only signing is a stage of its own; a
  // verification belongs to whoever asked for it (client authentication, DPoP, subject).
  { stage: STAGE.signing, url: /\/packages\/protocol\/src\/jws\.ts$/, fn: /^signJwt$/ },
  { stage: STAGE.signing, url: /\/broker\/tokens\/access-token\.ts$/, fn: /^(?:mint|sign|signLongLived)$/ },
  { stage: STAGE.signing, url: /\/broker\/tokens\/key-ring\.ts$/ },
  { stage: STAGE.subject, url: /\/broker\/tokens\/access-token\.ts$/, fn: /verify/i },
  {
    stage: STAGE.subject,
    url: /\/broker\/services\/(?:exchange-token|on-behalf-of)\.ts$/,
    fn: /^(?:readSubject|readUserSubject|foreignIssuer|tokenParent|delegationParent|taskHoldings)$/,
  },
  { stage: STAGE.dpop, url: /\/broker\/identity\/dpop\.ts$/ },
  {
    stage: STAGE.clientAuth,
    url: /\/broker\/(?:identity\/(?:client-auth|client-directory|client-keys|workload)|http\/middleware\/client-auth)\.ts$/,
  },
  { stage: STAGE.clientAuth, url: /\/node_modules\/jose\// },
  { stage: STAGE.logging, url: /\/broker\/log\.ts$|\/broker\/services\/audit-events\.ts$/ },
  {
    stage: STAGE.telemetry,
    url: /\/broker\/telemetry\/|\/broker\/http\/middleware\/observe\.ts$|\/broker\/core\/metrics\.ts$|\/node_modules\/(?:@opentelemetry|prom-client)\//,
  },
  {
    stage: STAGE.decision,
    url: /\/broker\/(?:grants|services|core)\/|\/packages\/protocol\/src\/(?:scopes|act-chain|resource|tool-grants|protocol)\.ts$/,
  },
  { stage: STAGE.parse, url: /\/broker\/http\/params\.ts$|\/node_modules\/zod\// },
  { stage: STAGE.parse, url: /\/node_modules\/hono\/dist\/(?:request|utils\/body)\.js$/ },
  { stage: STAGE.parse, url: /\/node_modules\/@hono\/node-server\/dist\/.*request\.m?js$/ },
  // Node's HTTP parser calls the whole application from parserOnIncoming: that frame is framework,
  // so that only the parsing of the request line and headers themselves is "HTTP parse".
  { stage: STAGE.other, url: /^node:_http_server$/, fn: /^parserOnIncoming$/ },
  { stage: STAGE.parse, url: /^node:_http_(?:common|incoming)$/ },
  { stage: STAGE.response, url: /\/node_modules\/hono\/dist\/context\.js$/, fn: /^(?:json|body|newResponse)$/ },
  {
    stage: STAGE.response,
    url: /\/node_modules\/@hono\/node-server\/dist\//,
    fn: /^(?:responseViaCache|responseViaResponseObject|writeFromReadableStream|buildOutgoingHttpHeaders)$/,
  },
  { stage: STAGE.response, url: /^node:(?:_http_outgoing|internal\/stream_base_commons|internal\/streams\/writable)$/ },
  {
    stage: STAGE.response,
    url: /^node:net$/,
    fn: /^(?:Socket\._writeGeneric|Socket\._writev|Socket\._write|Socket\._final)$/,
  },
  { stage: STAGE.other, url: /\/broker\/http\/routes\// },
];

/** The order stages are printed in. */
export const STAGE_ORDER: readonly Stage[] = Object.values(STAGE);

const MODULE_LOADING = /^node:internal\/modules\//;

export interface StageFigure {
  stage: Stage;
  /** CPU microseconds per request answered. */
  us: number;
  share: number;
}

export interface StageBreakdown {
  stages: StageFigure[];
  /** CPU microseconds per request, all stages. */
  totalUs: number;
  requests: number;
  /** Samples counted (non-idle, not start-up, inside the window). */
  samples: number;
  idleSamples: number;
  startupSamples: number;
  outsideWindow: number;
  /** The median gap between samples, µs (the sampling interval as achieved). */
  intervalUs: number;
}

export interface Window {
  /** Microseconds on the profile's clock; samples outside [from, to] are left out. */
  from?: number;
  to?: number;
  /** Requests answered during the window, to divide by. */
  requests: number;
}

type Frame = CpuProfile['nodes'][number];

function stageOfFrame(frame: Frame, rules: readonly StageRule[]): Stage | null {
  const { url, functionName } = frame.callFrame;
  for (const r of rules) {
    if (r.url && !r.url.test(url)) continue;
    if (r.fn && !r.fn.test(functionName)) continue;
    return r.stage;
  }
  return null;
}

/** Each sample's node, time (µs on the profile clock) and weight (µs since the previous sample). */
function* timedSamples(p: CpuProfile): Generator<{ node: number; at: number; us: number }> {
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const us = p.timeDeltas[i] ?? 0;
    at += us;
    yield { node: p.samples[i]!, at, us };
  }
}

/** What each node of the profile is: idle, start-up, or a stage (memoised per node: a node is one stack). */
function classifier(p: CpuProfile, rules: readonly StageRule[]) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const startup = new Map<number, boolean>();
  const isStartup = (id: number): boolean => {
    const known = startup.get(id);
    if (known !== undefined) return known;
    const n = byId.get(id);
    const up = parent.get(id);
    const v = !!n && (MODULE_LOADING.test(n.callFrame.url) || (up !== undefined && isStartup(up)));
    startup.set(id, v);
    return v;
  };
  const stage = new Map<number, Stage>();
  const stageOf = (id: number): Stage => {
    const known = stage.get(id);
    if (known) return known;
    const n = byId.get(id);
    const up = parent.get(id);
    const v = (n && stageOfFrame(n, rules)) ?? (up !== undefined ? stageOf(up) : STAGE.other);
    stage.set(id, v);
    return v;
  };
  const isIdle = (id: number) => byId.get(id)?.callFrame.functionName === '(idle)';
  return { byId, isStartup, stageOf, isIdle };
}

/** CPU per request by stage, over the samples inside the window. */
export function stageBreakdown(
  p: CpuProfile,
  window: Window,
  rules: readonly StageRule[] = STAGE_RULES,
): StageBreakdown {
  const { isStartup, stageOf, isIdle } = classifier(p, rules);
  const us = new Map<Stage, number>(STAGE_ORDER.map((s) => [s, 0]));
  let samples = 0;
  let idleSamples = 0;
  let startupSamples = 0;
  let outsideWindow = 0;
  for (const s of timedSamples(p)) {
    if ((window.from !== undefined && s.at < window.from) || (window.to !== undefined && s.at > window.to)) {
      outsideWindow += 1;
      continue;
    }
    if (isIdle(s.node)) {
      idleSamples += 1;
      continue;
    }
    if (isStartup(s.node)) {
      startupSamples += 1;
      continue;
    }
    samples += 1;
    const stage = stageOf(s.node);
    us.set(stage, us.get(stage)! + s.us);
  }
  const total = [...us.values()].reduce((a, b) => a + b, 0);
  const per = (v: number) => (window.requests > 0 ? v / window.requests : 0);
  const deltas = [...p.timeDeltas].filter((d) => d > 0).sort((a, b) => a - b);
  return {
    stages: STAGE_ORDER.map((stage) => ({
      stage,
      us: round(per(us.get(stage)!), 1),
      share: total > 0 ? round(us.get(stage)! / total, 3) : 0,
    })),
    totalUs: round(per(total), 1),
    requests: window.requests,
    samples,
    idleSamples,
    startupSamples,
    outsideWindow,
    intervalUs: deltas.length ? deltas[Math.floor(deltas.length / 2)]! : 0,
  };
}

export interface SelfTime {
  functionName: string;
  /** The file (path from the repository or package, or the `node:` module) and line. */
  where: string;
  stage: Stage;
  /** CPU microseconds per request spent in the function itself. */
  us: number;
  share: number;
}

/** The `n` functions with the most self time inside the window (start-up and idle left out). */
export function topSelfTime(
  p: CpuProfile,
  window: Window,
  n = 15,
  rules: readonly StageRule[] = STAGE_RULES,
): SelfTime[] {
  const { byId, isStartup, stageOf, isIdle } = classifier(p, rules);
  const self = new Map<string, { frame: Frame; us: number }>();
  let total = 0;
  for (const s of timedSamples(p)) {
    if ((window.from !== undefined && s.at < window.from) || (window.to !== undefined && s.at > window.to)) continue;
    if (isIdle(s.node) || isStartup(s.node)) continue;
    const frame = byId.get(s.node);
    if (!frame) continue;
    const { functionName, url, lineNumber } = frame.callFrame;
    const key = `${functionName}\u0000${url}\u0000${lineNumber ?? -1}`;
    const entry = self.get(key) ?? { frame, us: 0 };
    entry.us += s.us;
    self.set(key, entry);
    total += s.us;
  }
  return [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map(({ frame, us }) => ({
      functionName: frame.callFrame.functionName || '(anonymous)',
      where: shortUrl(frame.callFrame.url, frame.callFrame.lineNumber),
      stage: stageOf(frame.id),
      us: round(window.requests > 0 ? us / window.requests : 0, 1),
      share: total > 0 ? round(us / total, 3) : 0,
    }));
}

function shortUrl(url: string, line: number | undefined): string {
  if (!url) return '';
  const path = url.replace(/^file:\/\//, '');
  const inPackage = /\/node_modules\/(.*)$/.exec(path)?.[1];
  const inRepo = /\/(?:broker|db|packages|e2e)\/.*$/.exec(path)?.[0]?.slice(1);
  const where = inPackage ?? inRepo ?? path;
  // V8's line numbers count from 0; tsx's transpiled modules report 0 for every function (left out).
  return line !== undefined && line > 0 ? `${where}:${line + 1}` : where;
}

function round(v: number, digits: number): number {
  return Math.round(v * 10 ** digits) / 10 ** digits;
}
