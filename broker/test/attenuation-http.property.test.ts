import fc from 'fast-check';
import { createLocalJWKSet, decodeJwt, type JSONWebKeySet, type JWTPayload, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  agentClient,
  delegateViaCiba,
  delegationWorld,
  exchangeRaw,
  TT_ACCESS,
  TT_JWT,
} from './delegation-fixtures.js';
import { startBroker, type TestAgent, type TestBroker } from './fixtures.js';

/**
 * The attenuation invariants (README "Invariants", 1–2) over real HTTP: random chains of token exchanges
 * under one CIBA delegation, among a pool of agents, with random (sometimes wrong) audiences and
 * scopes. Every issued token is verified with the published JWKS and compared with its parent;
 * every refusal must carry the error code of the fault the step introduced.
 */

const NOTES = 'https://notes.example.test/mcp';
const CALENDAR = 'https://calendar.example.test/api';
const FILES = 'https://files.example.test/api'; // registered, never delegated
const UNKNOWN = 'https://nowhere.example.test/x'; // not registered at all
const DELEGATED: Record<string, string[]> = {
  [NOTES]: ['notes:read', 'notes:write', 'notes:delete'],
  [CALENDAR]: ['calendar:read', 'calendar:write'],
};

type Code = 'invalid_request' | 'invalid_target' | 'invalid_scope';

/** What a step exchanges from: the delegation credential or a task token. */
type Parent =
  | { kind: 'delegation'; token: string; exp: number }
  | { kind: 'task'; token: string; exp: number; aud: string; scope: string[]; chain: string[] };

let tb: TestBroker;
let agents: TestAgent[];
let as: oauth.AuthorizationServer;
let userId: string;
let credential: string;
let jwks: ReturnType<typeof createLocalJWKSet>;

beforeAll(async () => {
  tb = await startBroker();
  const world = await delegationWorld(tb, {
    agents: 4,
    resources: { ...DELEGATED, [FILES]: ['files:read'] },
  });
  agents = world.agents;
  as = world.as;
  userId = world.user.id;
  const delegated = await delegateViaCiba(tb, as, agents[0]!, world.user, {
    scope: `openid ${Object.values(DELEGATED).flat().join(' ')}`,
    resource: Object.keys(DELEGATED),
    binding_message: 'Property run',
    max_depth: '3',
  });
  credential = delegated.credential;
  jwks = createLocalJWKSet((await (await fetch(as.jwks_uri!)).json()) as JSONWebKeySet);
});
afterAll(() => tb?.close());

const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });
const pick = <T>(xs: readonly T[], n: number): T => xs[n % xs.length]!;
const byMask = <T>(xs: readonly T[], mask: number): T[] => xs.filter((_, i) => (mask >> i) & 1);

const stepArb = fc.record({
  actor: fc.oneof(w(5, fc.constant('expected' as const)), w(1, fc.integer({ min: 0, max: 3 }))),
  actorPick: fc.nat(),
  audience: fc.constantFrom(
    ...(['held', 'held', 'held', 'held', 'held', 'held', 'omit', 'omit', 'other', 'unknown'] as const),
  ),
  audPick: fc.nat(),
  scope: fc.constantFrom(...(['omit', 'omit', 'subset', 'subset', 'subset', 'subset', 'wider', 'foreign'] as const)),
  scopeMask: fc.integer({ min: 0, max: 7 }),
});
type Step = typeof stepArb extends fc.Arbitrary<infer S> ? S : never;

/** The RFC 8693 nested `act` claim for actor ids, current actor outermost. */
function nestedAct(chain: readonly string[]): Record<string, unknown> {
  const [first, ...rest] = chain;
  return rest.length ? { sub: first, act: nestedAct(rest) } : { sub: first };
}

/** Turns a step's raw choices into a request, the acting agent and the faults it carries. */
function plan(step: Step, parent: Parent) {
  const held = parent.kind === 'task' ? [parent.aud] : Object.keys(DELEGATED);
  const actor =
    step.actor !== 'expected'
      ? agents[step.actor]!
      : parent.kind === 'delegation'
        ? agents[0]!
        : pick(agents, step.actorPick);
  const faults = new Set<Code>();
  // Only the delegated agent may use the delegation credential; any agent may act below it.
  if (parent.kind === 'delegation' && actor !== agents[0]) faults.add('invalid_request');

  let audience: string | null;
  switch (step.audience) {
    case 'held':
      audience = pick(held, step.audPick);
      break;
    case 'omit':
      audience = null;
      break;
    case 'other':
      audience = parent.kind === 'task' ? (parent.aud === NOTES ? CALENDAR : NOTES) : FILES;
      break;
    case 'unknown':
      audience = UNKNOWN;
      break;
  }
  const resolved = audience ?? (held.length === 1 ? held[0]! : null);
  if (resolved === null || !held.includes(resolved)) faults.add('invalid_target');

  const parentScopes = resolved && held.includes(resolved) ? parentScopesAt(parent, resolved) : [];
  let scope: string[] | null;
  switch (step.scope) {
    case 'omit':
      scope = null;
      break;
    case 'subset': {
      const chosen = byMask(parentScopes, step.scopeMask);
      scope = chosen.length ? chosen : parentScopes.slice(0, 1);
      break;
    }
    case 'wider': {
      // A scope the delegation holds (elsewhere, perhaps) that the parent lacks at this audience.
      const all = Object.values(DELEGATED).flat();
      const extra = pick(
        all.filter((s) => !parentScopes.includes(s)),
        step.scopeMask,
      );
      scope = [...byMask(parentScopes, step.scopeMask), extra];
      break;
    }
    case 'foreign':
      scope = [...byMask(parentScopes, step.scopeMask), 'bogus:scope'];
      break;
  }
  // Scope is judged only once the audience is settled.
  if (!faults.has('invalid_target') && scope !== null && scope.some((s) => !parentScopes.includes(s))) {
    faults.add('invalid_scope');
  }
  const params: Record<string, string> = {
    subject_token: parent.token,
    subject_token_type: parent.kind === 'delegation' ? TT_JWT : TT_ACCESS,
  };
  if (audience !== null) params.resource = audience;
  if (scope !== null) params.scope = scope.join(' ');
  return { actor, params, faults, resolved, scope, parentScopes };
}

function parentScopesAt(parent: Parent, audience: string): string[] {
  return parent.kind === 'task' ? parent.scope : (DELEGATED[audience] ?? []);
}

describe('token exchange over HTTP: random chains keep the invariants', () => {
  test('every issued token is attenuated from its parent; every refusal names the fault', async () => {
    const credentialExp = decodeJwt(credential).exp!;
    const stats = { steps: 0, allowed: 0, deepest: 0, codes: {} as Record<string, number> };
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 4 }), async (steps) => {
        let parent: Parent = { kind: 'delegation', token: credential, exp: credentialExp };
        let depth = 0;
        for (const step of steps) {
          const { actor, params, faults, resolved, scope, parentScopes } = plan(step, parent);
          const res = await exchangeRaw(tb, as, actor, params);
          stats.steps++;
          if (faults.size > 0) {
            const body = (await res.json()) as { error: string; error_description: string };
            expect(res.status, JSON.stringify(body)).toBe(400);
            expect([...faults]).toContain(body.error);
            if (faults.size === 1) expect(body.error).toBe([...faults][0]);
            stats.codes[body.error] = (stats.codes[body.error] ?? 0) + 1;
            continue;
          }
          if (res.status !== 200) expect.fail(`step without a fault refused: ${res.status} ${await res.text()}`);
          const [client] = agentClient(tb, actor);
          const tokens = (await oauth.processGenericTokenEndpointResponse(
            as,
            client,
            res,
          )) as oauth.TokenEndpointResponse;
          const aud = resolved!;
          const { payload } = await jwtVerify(tokens.access_token, jwks, {
            issuer: tb.url,
            audience: aud,
            typ: 'at+jwt',
          });
          const claims = payload as JWTPayload & { scope: string; client_id: string; act: unknown };
          const granted = claims.scope.split(' ');
          const parentChain: string[] = parent.kind === 'task' ? parent.chain : [];

          // aud: the parent's own, or one the delegation covers for the first step.
          expect(claims.aud).toBe(parent.kind === 'task' ? parent.aud : aud);
          expect(Object.keys(DELEGATED)).toContain(claims.aud);
          // scope ⊆ the parent's; exactly what was asked, or all the parent held when omitted.
          expect(granted.every((s) => parentScopes.includes(s))).toBe(true);
          expect([...granted].sort()).toEqual([...(scope ?? parentScopes)].sort());
          expect(tokens.scope).toBe(claims.scope);
          // exp never outlives the parent.
          expect(claims.exp!).toBeLessThanOrEqual(parent.exp);
          expect(claims.exp!).toBeGreaterThan(tb.clock.now());
          // act: the current actor outermost, the parent's chain nested inside.
          const chain: string[] = [actor.clientId, ...parentChain];
          expect(claims.act).toEqual(nestedAct(chain));
          expect(claims.client_id).toBe(actor.clientId);
          expect(claims.sub).toBe(userId);

          stats.allowed++;
          stats.deepest = Math.max(stats.deepest, depth);
          depth++;
          parent = { kind: 'task', token: tokens.access_token, exp: claims.exp!, aud, scope: granted, chain };
        }
      }),
      { numRuns: 25, seed: 0xe44a_4d },
    );
    console.info(
      `attenuation over HTTP: ${stats.steps} exchanges, ${stats.allowed} issued, deepest depth ${stats.deepest},` +
        ` refusals ${JSON.stringify(stats.codes)}`,
    );
    expect(stats.allowed / stats.steps).toBeGreaterThanOrEqual(0.3);
    expect(stats.deepest).toBeGreaterThanOrEqual(2);
    for (const code of ['invalid_request', 'invalid_target', 'invalid_scope'])
      expect(stats.codes[code]).toBeGreaterThan(0);
  });
});
