import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  agentClient,
  delegationWorld,
  exchange,
  exchangeRaw,
  TT_ACCESS,
  TT_JWT,
  userApi,
} from './delegation-fixtures.js';
import { insecure, startBroker, type TestAgent, type TestBroker } from './fixtures.js';

/**
 * Tool-level grants (RFC 9396 `mcp_tool`) from the request to the task token: a resource asked for
 * with named tools stays restricted when approved, and no exchange lifts the restriction.
 */

const NOTES = 'https://notes.example.test/mcp';
const FILES = 'https://files.example.test/api';
const NOTES_TOOLS = { type: 'mcp_tool', locations: [NOTES], actions: ['list_notes', 'read_note'] };
const FILES_TOOLS = { type: 'mcp_tool', locations: [FILES], actions: ['get_file'] };

let tb: TestBroker;
let world: Awaited<ReturnType<typeof delegationWorld>>;
let a: TestAgent;
let b: TestAgent;
let me: Awaited<ReturnType<typeof userApi>>;

beforeAll(async () => {
  tb = await startBroker();
  world = await delegationWorld(tb, {
    agents: 2,
    resources: { [NOTES]: ['notes:read', 'notes:write'], [FILES]: ['files:read'] },
  });
  [a, b] = world.agents as [TestAgent, TestAgent];
  me = await userApi(tb, world.user);
});
afterAll(() => tb.close());

/** Agent A asks over CIBA for both resources, with named tools at each; returns the pending delegation. */
async function ask() {
  const [client, auth] = agentClient(tb, a);
  const params = new URLSearchParams({
    login_hint: world.user.username,
    scope: 'openid notes:read notes:write files:read',
    authorization_details: JSON.stringify([NOTES_TOOLS, FILES_TOOLS]),
    max_depth: '1',
  });
  params.append('resource', NOTES);
  params.append('resource', FILES);
  const res = await oauth.backchannelAuthenticationRequest(world.as, client, auth, params, insecure);
  const started = await oauth.processBackchannelAuthenticationResponse(world.as, client, res);
  const list = (await (await me.call('GET', '/api/me/delegations?status=pending')).json()) as {
    delegations: { delegation_id: string }[];
  };
  const id = list.delegations[0]!.delegation_id;
  const approve = (body: unknown) => me.call('POST', `/api/me/delegations/${id}/approve`, body);
  /** The credential, once approved. */
  const collect = async () => {
    tb.clock.advance(started.interval ?? 5);
    const polled = await oauth.backchannelAuthenticationGrantRequest(
      world.as,
      client,
      auth,
      started.auth_req_id,
      insecure,
    );
    return (await oauth.processBackchannelAuthenticationGrantResponse(world.as, client, polled)).access_token;
  };
  return { id, approve, collect };
}

async function expectError(res: Response, status: number, error: string) {
  const body = (await res.json()) as { error: string; error_description?: string };
  expect({ status: res.status, error: body.error }).toEqual({ status, error });
  return body;
}

const toolsOf = (token: string) => decodeJwt(token).authorization_details;

describe('approving a request for named tools', () => {
  test('authorization_details: [] is refused with what to do; the request stays pending', async () => {
    const { id, approve } = await ask();
    const err = await expectError(await approve({ authorization_details: [] }), 400, 'invalid_request');
    expect(err.error_description).toBe(
      `cannot approve: no tool is granted at ${NOTES}: keep at least one of its tools, or leave out its scopes to grant nothing there`,
    );
    expect((await tb.broker.deps.delegations.get(id))?.status).toBe('pending');
    await me.call('POST', `/api/me/delegations/${id}/deny`);
  });

  test('dropping one location’s tools while keeping its scopes is refused', async () => {
    const { id, approve } = await ask();
    const err = await expectError(await approve({ authorization_details: [NOTES_TOOLS] }), 400, 'invalid_request');
    expect(err.error_description).toContain(`no tool is granted at ${FILES}`);
    expect((await tb.broker.deps.delegations.get(id))?.status).toBe('pending');
    await me.call('POST', `/api/me/delegations/${id}/deny`);
  });

  test('leaving a resource out with its scopes drops its tools; the rest stays restricted to the kept tools', async () => {
    const { approve, collect } = await ask();
    const res = await approve({
      scopes: { [NOTES]: ['notes:read', 'notes:write'] },
      authorization_details: [{ ...NOTES_TOOLS, actions: ['read_note'] }],
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      scopes: { [NOTES]: ['notes:read', 'notes:write'] },
      authorization_details: [{ type: 'mcp_tool', locations: [NOTES], actions: ['read_note'] }],
    });
    const credential = await collect();
    const task = await exchange(tb, world.as, a, { subject_token: credential, subject_token_type: TT_JWT });
    expect(toolsOf(task.access_token)).toEqual([{ type: 'mcp_tool', locations: [NOTES], actions: ['read_note'] }]);
    const files = await exchangeRaw(tb, world.as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: FILES,
    });
    await expectError(files, 400, 'invalid_target');
  });
});

describe('exchanging under a tool restriction', () => {
  let credential: string;
  beforeAll(async () => {
    const { approve, collect } = await ask();
    expect((await approve({})).status).toBe(200);
    credential = await collect();
  });

  test('every task token carries the tools of its audience', async () => {
    for (const [resource, tools] of [
      [NOTES, NOTES_TOOLS],
      [FILES, FILES_TOOLS],
    ] as const) {
      const t = await exchange(tb, world.as, a, { subject_token: credential, subject_token_type: TT_JWT, resource });
      expect(toolsOf(t.access_token)).toEqual([tools]);
    }
  });

  test('details without an mcp_tool entry keep the parent’s tools, from the credential and from a task token', async () => {
    const details = JSON.stringify([{ type: 'errand_task', ttl: 600 }]);
    const task = await exchange(tb, world.as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      authorization_details: details,
    });
    expect(toolsOf(task.access_token)).toEqual([NOTES_TOOLS]);
    const sub = await exchange(tb, world.as, b, {
      subject_token: task.access_token,
      subject_token_type: TT_ACCESS,
      authorization_details: details,
    });
    expect(toolsOf(sub.access_token)).toEqual([NOTES_TOOLS]);
  });

  test('an empty authorization_details list is invalid_authorization_details', async () => {
    const res = await exchangeRaw(tb, world.as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
      authorization_details: '[]',
    });
    await expectError(res, 400, 'invalid_authorization_details');
  });

  test('tools narrow from a task token, and never widen', async () => {
    const task = await exchange(tb, world.as, a, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: NOTES,
    });
    const one = { type: 'mcp_tool', locations: [NOTES], actions: ['read_note'] };
    const sub = await exchange(tb, world.as, b, {
      subject_token: task.access_token,
      subject_token_type: TT_ACCESS,
      authorization_details: JSON.stringify([one]),
    });
    expect(toolsOf(sub.access_token)).toEqual([one]);
    for (const wider of [
      { type: 'mcp_tool', locations: [NOTES], actions: ['read_note', 'write_note'] },
      { type: 'mcp_tool', locations: [FILES], actions: ['get_file'] },
    ]) {
      const res = await exchangeRaw(tb, world.as, b, {
        subject_token: task.access_token,
        subject_token_type: TT_ACCESS,
        authorization_details: JSON.stringify([wider]),
      });
      await expectError(res, 400, 'invalid_authorization_details');
    }
  });
});
