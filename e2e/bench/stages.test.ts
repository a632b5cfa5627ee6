import { describe, expect, test } from 'vitest';
import { type CpuProfile, STAGE, stageBreakdown, topSelfTime } from './stages.js';

const REPO = 'file:///repo';

/** A synthetic profile: each sample lasts 100 µs; node ids are given by the stacks below. */
function profile(stacks: { fn: string; url: string }[][], samples: number[], startTime = 1_000): CpuProfile {
  const nodes: CpuProfile['nodes'] = [{ id: 1, callFrame: { functionName: '(root)', url: '' }, children: [] }];
  const leaves: number[] = [];
  for (const stack of stacks) {
    let parent = nodes[0]!;
    for (const f of stack) {
      const id = nodes.length + 1;
      const node = { id, callFrame: { functionName: f.fn, url: f.url }, children: [] as number[] };
      parent.children!.push(id);
      nodes.push(node);
      parent = node;
    }
    leaves.push(parent.id);
  }
  return {
    nodes,
    startTime,
    endTime: startTime + samples.length * 100,
    samples: samples.map((i) => leaves[i]!),
    timeDeltas: samples.map(() => 100),
  };
}

const route = { fn: 'handler', url: `${REPO}/broker/http/routes/token.ts` };
const STACKS = [
  // 0: a libsql call made while authenticating the client: storage, the innermost rule.
  [
    route,
    { fn: 'authenticate', url: `${REPO}/broker/identity/client-auth.ts` },
    { fn: 'get', url: `${REPO}/db/prepared.ts` },
    { fn: 'native', url: '' },
  ],
  // 1: an ES256 verification asked for by client authentication (jws.ts verifies: not signing).
  [
    route,
    { fn: 'viaAssertion', url: `${REPO}/broker/identity/client-auth.ts` },
    { fn: 'verifyJwtSignature', url: `${REPO}/packages/protocol/src/jws.ts` },
  ],
  // 2: minting: signing.
  [
    route,
    { fn: 'issue', url: `${REPO}/broker/services/exchange-token.ts` },
    { fn: 'mint', url: `${REPO}/broker/tokens/access-token.ts` },
    { fn: 'signJwt', url: `${REPO}/packages/protocol/src/jws.ts` },
  ],
  // 3: module loading, then a broker file: start-up.
  [
    { fn: 'loadESM', url: 'node:internal/modules/esm/loader' },
    { fn: 'issue', url: `${REPO}/broker/services/exchange-token.ts` },
  ],
  // 4: idle.
  [{ fn: '(idle)', url: '' }],
  // 5: the garbage collector.
  [{ fn: '(garbage collector)', url: '' }],
  // 6: nothing matches.
  [{ fn: 'processTicksAndRejections', url: 'node:internal/process/task_queues' }],
];

describe('the per-stage breakdown of a CPU profile', () => {
  test('attributes each sample to the innermost matching frame, per request', () => {
    const p = profile(STACKS, [0, 0, 1, 2, 2, 2, 5, 6]);
    const b = stageBreakdown(p, { requests: 2 });
    const us = Object.fromEntries(b.stages.map((s) => [s.stage, s.us]));
    expect(us[STAGE.storage]).toBe(100); // 2 samples × 100 µs ÷ 2 requests
    expect(us[STAGE.clientAuth]).toBe(50);
    expect(us[STAGE.signing]).toBe(150);
    expect(us[STAGE.decision]).toBe(0);
    expect(us[STAGE.gc]).toBe(50);
    expect(us[STAGE.other]).toBe(50);
    expect(b.totalUs).toBe(400);
    expect(b.samples).toBe(8);
  });

  test('leaves out idle samples and start-up (module loading)', () => {
    const p = profile(STACKS, [3, 3, 4, 4, 4, 2]);
    const b = stageBreakdown(p, { requests: 1 });
    expect(b.idleSamples).toBe(3);
    expect(b.startupSamples).toBe(2);
    expect(b.samples).toBe(1);
    expect(b.totalUs).toBe(100);
    expect(b.stages.find((s) => s.stage === STAGE.decision)?.us).toBe(0);
  });

  test('counts only the samples inside the window', () => {
    // Samples at 1100, 1200, …, 1600 µs.
    const p = profile(STACKS, [0, 0, 2, 2, 2, 2]);
    const b = stageBreakdown(p, { from: 1_250, to: 1_450, requests: 1 });
    expect(b.outsideWindow).toBe(4);
    expect(b.samples).toBe(2);
    expect(b.stages.find((s) => s.stage === STAGE.signing)?.us).toBe(200);
    expect(b.stages.find((s) => s.stage === STAGE.storage)?.us).toBe(0);
  });

  test('lists self time by function with its stage', () => {
    const p = profile(STACKS, [2, 2, 2, 0, 4]);
    const [first, second] = topSelfTime(p, { requests: 1 }, 2);
    expect(first).toMatchObject({ functionName: 'signJwt', stage: STAGE.signing, us: 300, share: 0.75 });
    expect(first?.where).toBe('packages/protocol/src/jws.ts');
    expect(second).toMatchObject({ functionName: 'native', stage: STAGE.storage, us: 100 });
  });
});
