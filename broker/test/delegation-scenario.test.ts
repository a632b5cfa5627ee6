import { createLocalJWKSet, decodeJwt, type JSONWebKeySet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readStatus } from '../tokens/status-list.js';
import {
  delegateViaCiba,
  delegationWorld,
  exchange,
  exchangeRaw,
  introspector,
  TT_ACCESS,
  TT_JWT,
} from './delegation-fixtures.js';
import { startBroker, type TestBroker } from './fixtures.js';

const NOTES = 'https://notes.example.test/mcp';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startBroker();
});
afterAll(() => tb.close());

describe('a user delegates, agents exchange down a chain, the task ends', () => {
  test('end to end over HTTP', async () => {
    const { api, agents, user, as } = await delegationWorld(tb);
    const [a, b, c] = agents as [(typeof agents)[0], (typeof agents)[0], (typeof agents)[0]];
    const introspect = await introspector(tb, api, [NOTES]);

    // 1. Agent A asks asynchronously (CIBA); the user narrows (drops notes:delete) and approves.
    const { credential, tokens, delegationId } = await delegateViaCiba(
      tb,
      as,
      a,
      user,
      {
        scope: 'openid notes:read notes:write notes:delete',
        resource: NOTES,
        binding_message: 'Triage inbox 42',
        max_depth: '2',
      },
      { scopes: { [NOTES]: ['notes:read', 'notes:write'] } },
    );
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.id_token).toBeTruthy();
    expect(tokens.refresh_token).toBeUndefined();
    // The credential opens no resource: introspection by the resource server says inactive.
    expect(await introspect(credential)).toEqual({ active: false });

    // 2. A starts a task and gets a token for the notes server; and a sibling task too.
    const ta = await exchange(tb, as, a, { subject_token: credential, subject_token_type: TT_JWT, resource: NOTES });
    expect(ta.issued_token_type).toBe(TT_ACCESS);
    expect(ta.token_type).toBe('bearer');
    expect(ta.scope).toBe('notes:read notes:write');
    const sibling = await exchange(tb, as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      scope: 'notes:read',
    });
    expect(sibling.task_id).not.toBe(ta.task_id);

    // 3. A hands its token to B (B authenticates itself), B hands a narrower one to C.
    const tb_ = await exchange(tb, as, b, {
      subject_token: ta.access_token,
      subject_token_type: TT_ACCESS,
      scope: 'notes:read notes:write',
    });
    const tc = await exchange(tb, as, c, {
      subject_token: tb_.access_token,
      subject_token_type: TT_ACCESS,
      scope: 'notes:read',
    });

    // The act chains read C→B→A, outermost = current actor; sub is always the user.
    const jwks = createLocalJWKSet((await (await fetch(as.jwks_uri!)).json()) as JSONWebKeySet);
    const claimsOf = async (t: string) =>
      (await jwtVerify(t, jwks, { issuer: tb.url, audience: NOTES, typ: 'at+jwt' })).payload;
    const [ca, cb, cc] = await Promise.all([
      claimsOf(ta.access_token),
      claimsOf(tb_.access_token),
      claimsOf(tc.access_token),
    ]);
    const userId = ca.sub;
    expect(cb.sub).toBe(userId);
    expect(cc.sub).toBe(userId);
    expect(ca.act).toEqual({ sub: a.clientId });
    expect(cb.act).toEqual({ sub: b.clientId, act: { sub: a.clientId } });
    expect(cc.act).toEqual({ sub: c.clientId, act: { sub: b.clientId, act: { sub: a.clientId } } });
    expect(cc.client_id).toBe(c.clientId);
    expect(cc.scope).toBe('notes:read');
    expect(cc.exp as number).toBeLessThanOrEqual(cb.exp as number);
    expect(cb.exp as number).toBeLessThanOrEqual(ca.exp as number);
    expect(cc.task_id).not.toBe(ca.task_id);
    for (const t of [ta, tb_, tc, sibling]) expect((await introspect(t.access_token)).active).toBe(true);

    // 4. The user ends the task (the root of the chain).
    const me = await (await import('./delegation-fixtures.js')).userApi(tb, user);
    const ended = await me.call('POST', `/api/me/tasks/${ta.task_id}/end`);
    expect(ended.status).toBe(200);
    expect(await ended.json()).toMatchObject({ state: 'canceled', end_reason: 'ended_by_user' });

    // Every token of the task and its sub-tasks is inactive at once; the sibling task's is not.
    for (const t of [ta, tb_, tc]) expect(await introspect(t.access_token)).toEqual({ active: false });
    expect((await introspect(sibling.access_token)).active).toBe(true);

    // The status list marks exactly those tokens.
    const status = (cc.status as { status_list: { idx: number; uri: string } }).status_list;
    const listRes = await fetch(status.uri);
    expect(listRes.status).toBe(200);
    expect(listRes.headers.get('content-type')).toBe('application/statuslist+jwt');
    expect(listRes.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const list = await jwtVerify(await listRes.text(), jwks, { issuer: tb.url, typ: 'statuslist+jwt' });
    expect(list.payload.sub).toBe(status.uri);
    const lst = (list.payload.status_list as { lst: string; bits: 1 }).lst;
    const idxOf = (t: string) => (decodeJwt(t).status as { status_list: { idx: number } }).status_list.idx;
    for (const t of [ta, tb_, tc]) expect(readStatus(lst, idxOf(t.access_token))).toBe(1);
    expect(readStatus(lst, idxOf(sibling.access_token))).toBe(0);

    // The next exchange from the ended task is refused, with the reason.
    const again = await exchangeRaw(tb, as, b, { subject_token: ta.access_token, subject_token_type: TT_ACCESS });
    expect(again.status).toBe(400);
    expect(await again.json()).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringContaining('has ended'),
    });
    const fromCredential = await exchangeRaw(tb, as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      authorization_details: JSON.stringify([{ type: 'errand_task', task_id: ta.task_id }]),
    });
    expect(fromCredential.status).toBe(400);
    expect(await fromCredential.json()).toMatchObject({ error: 'invalid_request' });

    // 5. Audit: the scenario's events carry both attributions.
    const events = (await (await api.call('GET', `/api/admin/audit?user_id=${userId}&limit=200`)).json()) as {
      events: {
        type: string;
        user_id: string;
        client_id: string;
        actor_chain: string[];
        task_id: string | null;
        result: string;
        reason: string | null;
        delegation_id: string | null;
      }[];
    };
    const types = events.events.map((e) => e.type);
    for (const t of ['delegation.requested', 'delegation.approved', 'token.exchanged', 'task.ended', 'exchange.denied'])
      expect(types).toContain(t);
    const cExchange = events.events.find((e) => e.type === 'token.exchanged' && e.client_id === c.clientId)!;
    expect(cExchange).toMatchObject({
      user_id: userId,
      actor_chain: [c.clientId, b.clientId, a.clientId],
      delegation_id: delegationId,
      result: 'allowed',
    });
    const denied = events.events.find((e) => e.type === 'exchange.denied')!;
    expect(denied).toMatchObject({ result: 'denied', reason: 'task_ended', user_id: userId });
    const byAgent = (await (
      await api.call('GET', `/api/admin/audit?agent=${b.clientId}&type=token.exchanged`)
    ).json()) as { events: { client_id: string }[] };
    expect(byAgent.events.length).toBeGreaterThanOrEqual(2); // B's own exchange and C's (B is in C's chain)
    const byTask = (await (await api.call('GET', `/api/admin/audit?task_id=${ta.task_id}`)).json()) as {
      events: { type: string }[];
    };
    expect(byTask.events.map((e) => e.type)).toEqual(expect.arrayContaining(['token.exchanged', 'task.ended']));
  });
});
