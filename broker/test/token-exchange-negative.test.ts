import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  delegateViaCiba,
  delegationWorld,
  exchange,
  exchangeRaw,
  introspector,
  TT_ACCESS,
  TT_JWT,
} from './delegation-fixtures.js';
import {
  actorToken,
  addAgent,
  clientAssertion,
  postForm,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

const NOTES = 'https://notes.example.test/mcp';
const CALENDAR = 'https://calendar.example.test/api';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let tb: TestBroker;
let world: Awaited<ReturnType<typeof delegationWorld>>;
let a: TestAgent;
let b: TestAgent;
let c: TestAgent;
let d: TestAgent;
let introspect: Awaited<ReturnType<typeof introspector>>;

beforeAll(async () => {
  tb = await startBroker();
  world = await delegationWorld(tb, { agents: 4 });
  [a, b, c, d] = world.agents as [TestAgent, TestAgent, TestAgent, TestAgent];
  introspect = await introspector(tb, world.api, [NOTES, CALENDAR]);
});
afterAll(() => tb.close());

/** A delegation from `agent` (A by default): notes read and write, depth 2, unless the ask says otherwise. */
function delegate(
  ask: Record<string, string | string[]> = {},
  approval: Record<string, unknown> = {},
  agent: TestAgent = a,
) {
  return delegateViaCiba(
    tb,
    world.as,
    agent,
    world.user,
    { scope: 'openid notes:read notes:write', resource: NOTES, max_depth: '2', ...ask },
    approval,
  );
}

/** A root task token for `agent` from its credential. */
function startTask(agent: TestAgent, credential: string, params: Record<string, string | string[]> = {}) {
  return exchange(tb, world.as, agent, { subject_token: credential, subject_token_type: TT_JWT, ...params });
}

/** A sub-task token for `agent` from a parent task token. */
function subTask(agent: TestAgent, parent: string, params: Record<string, string | string[]> = {}) {
  return exchange(tb, world.as, agent, { subject_token: parent, subject_token_type: TT_ACCESS, ...params });
}

async function expectError(res: Response, status: number, error: string, description?: RegExp) {
  const body = (await res.json()) as { error: string; error_description?: string };
  expect({ status: res.status, error: body.error }).toEqual({ status, error });
  if (description) expect(body.error_description).toMatch(description);
  return body;
}

const denials = () => tb.broker.deps.audit.query({ type: 'exchange.denied', limit: 1000 });

/** Runs a refused exchange and checks that exactly one `exchange.denied` event was written for it. */
async function expectDenial(run: () => Promise<void>, match: Record<string, unknown>) {
  const before = (await denials()).length;
  await run();
  const after = await denials();
  expect(after.length).toBe(before + 1);
  expect(after[0]).toMatchObject({ type: 'exchange.denied', result: 'denied', userId: world.user.id, ...match });
}

/** Runs a refused exchange that must be rejected before the rules run (no denial event). */
async function expectNoDenial(run: () => Promise<void>) {
  const before = (await denials()).length;
  await run();
  expect((await denials()).length).toBe(before);
}

/** A JWT signed by `agent` in the shape of a client assertion, on the broker's clock. */
function agentJwt(agent: TestAgent, aud: string = tb.url, claims: Record<string, unknown> = {}) {
  const now = tb.clock.now();
  return clientAssertion(agent, aud, { claims: { iat: now, exp: now + 60, ...claims } });
}

/** An RFC 8693 actor token (`typ: actor+jwt`) signed by `agent`, on the broker's clock. */
function actorJwt(agent: TestAgent, aud: string = tb.url, claims: Record<string, unknown> = {}) {
  const now = tb.clock.now();
  return actorToken(agent, aud, { claims: { iat: now, exp: now + 60, ...claims } });
}

async function endTask(agent: TestAgent, taskId: string) {
  return postForm(`${tb.url}/tasks/${taskId}/end`, {
    client_id: agent.clientId,
    client_assertion_type: JWT_BEARER,
    client_assertion: await agentJwt(agent),
    state: 'completed',
  });
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('attenuation: scope', () => {
  test('a scope wider than the parent token is invalid_scope', async () => {
    const { credential } = await delegate();
    const ta = await startTask(a, credential, { scope: 'notes:read' });
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, b, {
          subject_token: ta.access_token,
          subject_token_type: TT_ACCESS,
          scope: 'notes:read notes:write',
        });
        await expectError(res, 400, 'invalid_scope', /notes:write/);
      },
      { reason: 'scope_exceeds_parent', clientId: b.clientId, taskId: ta.task_id },
    );
  });

  test('a scope outside the delegation is invalid_scope from the credential', async () => {
    const { credential } = await delegate();
    // notes:delete is offered by the resource but was not delegated.
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, a, {
          subject_token: credential,
          subject_token_type: TT_JWT,
          resource: NOTES,
          scope: 'notes:read notes:delete',
        });
        await expectError(res, 400, 'invalid_scope', /notes:delete/);
      },
      { reason: 'scope_exceeds_parent', clientId: a.clientId },
    );
    // A scope of another resource is not smuggled in at this one.
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, a, {
          subject_token: credential,
          subject_token_type: TT_JWT,
          resource: NOTES,
          scope: 'calendar:read',
        });
        await expectError(res, 400, 'invalid_scope');
      },
      { reason: 'scope_exceeds_parent' },
    );
  });
});

describe('attenuation: audience', () => {
  test('another audience than the parent token is invalid_target', async () => {
    const { credential } = await delegate({
      scope: 'openid notes:read calendar:read',
      resource: [NOTES, CALENDAR],
    });
    const ta = await startTask(a, credential, { resource: NOTES });
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, b, {
          subject_token: ta.access_token,
          subject_token_type: TT_ACCESS,
          resource: CALENDAR,
        });
        await expectError(res, 400, 'invalid_target');
      },
      { reason: 'audience_not_in_parent', audience: CALENDAR, clientId: b.clientId },
    );
    // `audience` means the same as `resource`.
    const viaAudience = await exchangeRaw(tb, world.as, b, {
      subject_token: ta.access_token,
      subject_token_type: TT_ACCESS,
      audience: CALENDAR,
    });
    await expectError(viaAudience, 400, 'invalid_target');
    // The credential covers two resources, so it needs one named.
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, a, { subject_token: credential, subject_token_type: TT_JWT });
        await expectError(res, 400, 'invalid_target', /resource is required/);
      },
      { reason: 'audience_required' },
    );
  });

  test('an audience the delegation does not cover is invalid_target', async () => {
    const { credential } = await delegate();
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, a, {
          subject_token: credential,
          subject_token_type: TT_JWT,
          resource: CALENDAR,
        });
        await expectError(res, 400, 'invalid_target', /not covered by the delegation/);
      },
      { reason: 'audience_not_delegated', audience: CALENDAR },
    );
  });

  test('an unknown or malformed resource is invalid_target', async () => {
    const { credential } = await delegate();
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, a, {
          subject_token: credential,
          subject_token_type: TT_JWT,
          resource: 'https://unknown.example.test/mcp',
        });
        await expectError(res, 400, 'invalid_target');
      },
      { reason: 'audience_not_delegated' },
    );
    for (const bad of ['not a url', 'https://notes.example.test/mcp#frag', 'ftp://notes.example.test/mcp', '/mcp']) {
      await expectNoDenial(async () => {
        const res = await exchangeRaw(tb, world.as, a, {
          subject_token: credential,
          subject_token_type: TT_JWT,
          resource: bad,
        });
        await expectError(res, 400, 'invalid_target');
      });
    }
  });

  test('two resources are invalid_target', async () => {
    const { credential } = await delegate({
      scope: 'openid notes:read calendar:read',
      resource: [NOTES, CALENDAR],
    });
    const both = await exchangeRaw(tb, world.as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: [NOTES, CALENDAR],
    });
    await expectError(both, 400, 'invalid_target', /one resource/);
    const mixed = await exchangeRaw(tb, world.as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      audience: CALENDAR,
    });
    await expectError(mixed, 400, 'invalid_target', /one resource/);
  });
});

describe('attenuation: depth, tasks and lifetimes', () => {
  test('depth beyond max_depth is invalid_request', async () => {
    const { credential } = await delegate({ max_depth: '1' });
    const ta = await startTask(a, credential);
    const tbTok = await subTask(b, ta.access_token);
    expect(tbTok.task_id).not.toBe(ta.task_id);
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, c, {
          subject_token: tbTok.access_token,
          subject_token_type: TT_ACCESS,
        });
        await expectError(res, 400, 'invalid_request', /depth/);
      },
      { reason: 'depth_exceeded', clientId: c.clientId, taskId: tbTok.task_id },
    );
  });

  test('exchange from an ended task is invalid_request', async () => {
    const { credential } = await delegate();
    const ta = await startTask(a, credential);
    const ended = await endTask(a, ta.task_id);
    expect(ended.status).toBe(200);
    expect(await ended.json()).toMatchObject({ state: 'completed', end_reason: 'finished' });
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, b, {
          subject_token: ta.access_token,
          subject_token_type: TT_ACCESS,
        });
        await expectError(res, 400, 'invalid_request', /has ended/);
      },
      { reason: 'task_ended', taskId: ta.task_id },
    );
    // Naming the ended task again from the credential is refused too.
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, a, {
          subject_token: credential,
          subject_token_type: TT_JWT,
          authorization_details: JSON.stringify([{ type: 'errand_task', task_id: ta.task_id }]),
        });
        await expectError(res, 400, 'invalid_request', /has ended/);
      },
      { reason: 'task_ended' },
    );
  });

  test("a sub-agent token's exp never exceeds the parent's, and the task deadline caps it", async () => {
    const { credential } = await delegate();
    const ta = await startTask(a, credential);
    const ca = decodeJwt(ta.access_token);
    tb.clock.advance(50);
    const tbTok = await subTask(b, ta.access_token);
    const cb = decodeJwt(tbTok.access_token);
    expect(cb.exp).toBeLessThanOrEqual(ca.exp!);
    // Issued 50 s later with the same token lifetime, the sub-token is capped by its parent.
    expect(cb.exp).toBe(ca.exp);
    expect(cb.iat).toBeGreaterThanOrEqual(ca.iat! + 50);

    // A task asked for 120 s: its tokens end with it, however long the token lifetime.
    const short = await startTask(a, credential, {
      authorization_details: JSON.stringify([{ type: 'errand_task', ttl: 120 }]),
    });
    const cs = decodeJwt(short.access_token);
    expect(cs.exp!).toBeLessThanOrEqual(cs.iat! + 120);
    const task = await tb.broker.deps.tasks.get(short.task_id);
    expect(task!.deadline).toBeLessThanOrEqual(cs.iat! + 120);
    expect(cs.exp).toBeLessThanOrEqual(task!.deadline);
    tb.clock.advance(100);
    const late = await subTask(b, short.access_token);
    const cl = decodeJwt(late.access_token);
    expect(cl.exp!).toBeLessThanOrEqual(task!.deadline);
    expect(cl.exp!).toBeLessThanOrEqual(cs.iat! + 120);
    expect(cl.exp! - cl.iat!).toBeLessThanOrEqual(20);
    expect(late.expires_in).toBeLessThanOrEqual(20);
    // The sub-task's own deadline is within its parent's.
    expect((await tb.broker.deps.tasks.get(late.task_id))!.deadline).toBeLessThanOrEqual(task!.deadline);
  });
});

describe('revocation and disabled agents', () => {
  test('after the user revokes the delegation, nothing exchanges and the task tokens are inactive', async () => {
    const { credential, delegationId, me } = await delegate();
    const ta = await startTask(a, credential);
    const tbTok = await subTask(b, ta.access_token);
    expect((await introspect(ta.access_token)).active).toBe(true);
    const revoked = await me.call('POST', `/api/me/delegations/${delegationId}/revoke`);
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ status: 'revoked' });

    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, a, { subject_token: credential, subject_token_type: TT_JWT });
        await expectError(res, 400, 'invalid_request', /revoked/);
      },
      { reason: 'delegation_inactive', delegationId },
    );
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, b, {
          subject_token: ta.access_token,
          subject_token_type: TT_ACCESS,
        });
        await expectError(res, 400, 'invalid_request');
      },
      { reason: 'delegation_inactive', delegationId },
    );
    for (const t of [ta, tbTok]) expect(await introspect(t.access_token)).toEqual({ active: false });
  });

  test('after an admin revokes the delegation, exchange is invalid_request', async () => {
    const { credential, delegationId } = await delegate();
    const ta = await startTask(a, credential);
    const res = await world.api.call('POST', `/api/admin/delegations/${delegationId}/revoke`);
    expect(res.status).toBe(200);
    const again = await exchangeRaw(tb, world.as, a, { subject_token: credential, subject_token_type: TT_JWT });
    await expectError(again, 400, 'invalid_request');
    expect(await introspect(ta.access_token)).toEqual({ active: false });
  });

  test('after an admin disables agent A, its tokens die, it cannot authenticate, and B cannot use its task', async () => {
    const doomed = await addAgent(world.api, { name: 'doomed agent', grant_types: undefined });
    const { credential } = await delegate({}, {}, doomed);
    const ta = await startTask(doomed, credential);
    const tbTok = await subTask(b, ta.access_token);
    expect((await introspect(ta.access_token)).active).toBe(true);

    const disabled = await world.api.call('PATCH', `/api/admin/clients/${doomed.clientId}`, { status: 'disabled' });
    expect(disabled.status).toBe(200);

    for (const t of [ta, tbTok]) expect(await introspect(t.access_token)).toEqual({ active: false });
    await expectNoDenial(async () => {
      const res = await exchangeRaw(tb, world.as, doomed, { subject_token: credential, subject_token_type: TT_JWT });
      await expectError(res, 401, 'invalid_client');
    });
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, b, {
          subject_token: ta.access_token,
          subject_token_type: TT_ACCESS,
        });
        await expectError(res, 400, 'invalid_request', /has ended/);
      },
      { reason: 'task_ended', taskId: ta.task_id, clientId: b.clientId },
    );
    const task = await tb.broker.deps.tasks.get(ta.task_id);
    expect(task).toMatchObject({ state: 'canceled', endReason: 'agent_disabled' });
  });
});

describe('the subject token', () => {
  test("agent B using agent A's delegation credential is invalid_request", async () => {
    const { credential } = await delegate();
    const res = await exchangeRaw(tb, world.as, b, { subject_token: credential, subject_token_type: TT_JWT });
    await expectError(res, 400, 'invalid_request', /another agent/);
  });

  test('forged, tampered and alg:none subject tokens are invalid_request', async () => {
    const { credential } = await delegate();
    const ta = await startTask(a, credential);
    const { privateKey } = await generateKeyPair('ES256');

    const forge = (token: string) =>
      new SignJWT(decodeJwt(token))
        .setProtectedHeader(decodeProtectedHeader(token) as { alg: string })
        .sign(privateKey);
    const tamper = (token: string, claims: Record<string, unknown>) => {
      const [h, , s] = token.split('.');
      return `${h}.${b64({ ...decodeJwt(token), ...claims })}.${s}`;
    };
    const unsigned = (token: string) =>
      `${b64({ ...decodeProtectedHeader(token), alg: 'none' })}.${b64(decodeJwt(token))}.`;

    const cases: [TestAgent, string, string][] = [
      [a, await forge(credential), TT_JWT],
      [b, tamper(credential, { client_id: b.clientId }), TT_JWT],
      [a, tamper(credential, { exp: decodeJwt(credential).exp! + 86_400 }), TT_JWT],
      [a, unsigned(credential), TT_JWT],
      [b, await forge(ta.access_token), TT_ACCESS],
      [b, tamper(ta.access_token, { scope: 'notes:read notes:write notes:delete' }), TT_ACCESS],
      [b, unsigned(ta.access_token), TT_ACCESS],
      [a, 'not-a-jwt', TT_JWT],
    ];
    for (const [agent, token, type] of cases) {
      await expectNoDenial(async () => {
        const res = await exchangeRaw(tb, world.as, agent, { subject_token: token, subject_token_type: type });
        await expectError(res, 400, 'invalid_request', /subject_token/);
      });
    }
    // The genuine tokens still work.
    await startTask(a, credential);
    await subTask(b, ta.access_token);
  });

  test('the wrong or a missing subject_token_type is invalid_request', async () => {
    const { credential } = await delegate();
    const ta = await startTask(a, credential);
    const asAccess = await exchangeRaw(tb, world.as, a, { subject_token: credential, subject_token_type: TT_ACCESS });
    await expectError(asAccess, 400, 'invalid_request');
    const asJwt = await exchangeRaw(tb, world.as, b, { subject_token: ta.access_token, subject_token_type: TT_JWT });
    await expectError(asJwt, 400, 'invalid_request');
    const idToken = await exchangeRaw(tb, world.as, a, {
      subject_token: credential,
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
    });
    await expectError(idToken, 400, 'invalid_request', /subject_token_type/);
    const missing = await exchangeRaw(tb, world.as, a, { subject_token: credential });
    await expectError(missing, 400, 'invalid_request', /subject_token_type/);
    const noSubject = await exchangeRaw(tb, world.as, a, { subject_token_type: TT_JWT });
    await expectError(noSubject, 400, 'invalid_request', /subject_token/);
  });
});

describe('the actor token', () => {
  test('A presents B as the actor: the token is for B, acting for A', async () => {
    const { credential } = await delegate();
    const ta = await startTask(a, credential);
    const actor = await actorJwt(b);
    const t = await exchange(tb, world.as, a, {
      subject_token: ta.access_token,
      subject_token_type: TT_ACCESS,
      actor_token: actor,
      actor_token_type: TT_JWT,
      scope: 'notes:read',
    });
    const claims = decodeJwt(t.access_token);
    expect(claims.client_id).toBe(b.clientId);
    expect(claims.act).toEqual({ sub: b.clientId, act: { sub: a.clientId } });
    expect(claims.sub).toBe(world.user.id);
    expect(claims.scope).toBe('notes:read');
    expect(t.task_id).not.toBe(ta.task_id);

    // The same actor token again is a replay.
    const replay = await exchangeRaw(tb, world.as, a, {
      subject_token: ta.access_token,
      subject_token_type: TT_ACCESS,
      actor_token: actor,
      actor_token_type: TT_JWT,
    });
    await expectError(replay, 400, 'invalid_request', /actor_token.*already been used/);
  });

  test('actor_token and actor_token_type go together', async () => {
    const { credential } = await delegate();
    const ta = await startTask(a, credential);
    const without = await exchangeRaw(tb, world.as, a, {
      subject_token: ta.access_token,
      subject_token_type: TT_ACCESS,
      actor_token: await actorJwt(b),
    });
    await expectError(without, 400, 'invalid_request', /actor_token_type/);
    const typeOnly = await exchangeRaw(tb, world.as, a, {
      subject_token: ta.access_token,
      subject_token_type: TT_ACCESS,
      actor_token_type: TT_JWT,
    });
    await expectError(typeOnly, 400, 'invalid_request', /actor_token/);
    const wrongType = await exchangeRaw(tb, world.as, a, {
      subject_token: ta.access_token,
      subject_token_type: TT_ACCESS,
      actor_token: await actorJwt(b),
      actor_token_type: TT_ACCESS,
    });
    await expectError(wrongType, 400, 'invalid_request', /actor_token_type/);
  });

  test('an actor token whose aud is not the issuer, or signed by another key, is invalid_request', async () => {
    const { credential } = await delegate();
    const ta = await startTask(a, credential);
    for (const aud of [`${tb.url}/token`, 'https://elsewhere.example.test/', [tb.url, 'https://x.example.test/']]) {
      const res = await exchangeRaw(tb, world.as, a, {
        subject_token: ta.access_token,
        subject_token_type: TT_ACCESS,
        actor_token: await actorJwt(b, tb.url, { aud }),
        actor_token_type: TT_JWT,
      });
      await expectError(res, 400, 'invalid_request', /actor_token/);
    }
    const { privateKey } = await generateKeyPair('ES256');
    const now = tb.clock.now();
    const forged = await actorToken(b, tb.url, { key: privateKey, claims: { iat: now, exp: now + 60 } });
    const res = await exchangeRaw(tb, world.as, a, {
      subject_token: ta.access_token,
      subject_token_type: TT_ACCESS,
      actor_token: forged,
      actor_token_type: TT_JWT,
    });
    await expectError(res, 400, 'invalid_request', /actor_token/);
  });
});

describe('delegation restrictions and authorization_details', () => {
  test("sub_agents: an agent not approved cannot act under A's task", async () => {
    const { credential } = await delegate({ sub_agents: `${b.clientId} ${c.clientId}` }, { sub_agents: [b.clientId] });
    const ta = await startTask(a, credential);
    await subTask(b, ta.access_token);
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, c, {
          subject_token: ta.access_token,
          subject_token_type: TT_ACCESS,
        });
        const body = await expectError(res, 400, 'invalid_request');
        expect(body.error_description).toContain(c.clientId);
      },
      { reason: 'actor_not_allowed', clientId: c.clientId },
    );
    // Nor as an actor token presented by A.
    const res = await exchangeRaw(tb, world.as, a, {
      subject_token: ta.access_token,
      subject_token_type: TT_ACCESS,
      actor_token: await actorJwt(c),
      actor_token_type: TT_JWT,
    });
    await expectError(res, 400, 'invalid_request');
  });

  test('an unknown authorization_details type is invalid_authorization_details', async () => {
    const { credential } = await delegate();
    for (const details of [
      [{ type: 'payment_initiation', instructedAmount: { amount: 1 } }],
      [{ locations: [NOTES] }],
      { type: 'errand_task' },
      'not json',
    ]) {
      const res = await exchangeRaw(tb, world.as, a, {
        subject_token: credential,
        subject_token_type: TT_JWT,
        authorization_details: typeof details === 'string' ? details : JSON.stringify(details),
      });
      await expectError(res, 400, 'invalid_authorization_details');
    }
  });

  test("naming another agent's task via errand_task is invalid_request", async () => {
    const { credential } = await delegate();
    const ta = await startTask(a, credential);
    const tbTok = await subTask(b, ta.access_token);
    // A names B's sub-task from its credential.
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, a, {
          subject_token: credential,
          subject_token_type: TT_JWT,
          authorization_details: JSON.stringify([{ type: 'errand_task', task_id: tbTok.task_id }]),
        });
        await expectError(res, 400, 'invalid_request', /not a task this agent holds/);
      },
      { reason: 'task_not_found', clientId: a.clientId },
    );
    // C, under A's task, names B's task.
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, c, {
          subject_token: ta.access_token,
          subject_token_type: TT_ACCESS,
          authorization_details: JSON.stringify([{ type: 'errand_task', task_id: tbTok.task_id }]),
        });
        await expectError(res, 400, 'invalid_request', /not a task this agent holds/);
      },
      { reason: 'task_not_found', clientId: c.clientId },
    );
    // D, with a delegation of its own, names A's task.
    const other = await delegate({}, {}, d);
    await expectDenial(
      async () => {
        const res = await exchangeRaw(tb, world.as, d, {
          subject_token: other.credential,
          subject_token_type: TT_JWT,
          authorization_details: JSON.stringify([{ type: 'errand_task', task_id: ta.task_id }]),
        });
        await expectError(res, 400, 'invalid_request');
      },
      { reason: 'task_not_found', clientId: d.clientId },
    );
    // A may name its own task and gets a token for it.
    const own = await startTask(a, credential, {
      authorization_details: JSON.stringify([{ type: 'errand_task', task_id: ta.task_id }]),
    });
    expect(own.task_id).toBe(ta.task_id);
  });
});

describe('clients', () => {
  test('a non-agent client is unauthorized_client', async () => {
    const { credential } = await delegate();
    const rs = await addAgent(world.api, {
      kind: 'resource_server',
      name: 'a resource server',
      resources: [NOTES],
      grant_types: ['client_credentials'],
    });
    const res = await exchangeRaw(tb, world.as, rs, { subject_token: credential, subject_token_type: TT_JWT });
    await expectError(res, 400, 'unauthorized_client');
    // An agent registered for client_credentials only is refused the same way.
    const ccOnly = await addAgent(world.api, { name: 'cc only' });
    const res2 = await exchangeRaw(tb, world.as, ccOnly, { subject_token: credential, subject_token_type: TT_JWT });
    await expectError(res2, 400, 'unauthorized_client');
  });
});
