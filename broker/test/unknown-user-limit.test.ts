import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { a2aClient, replyData, skillRequest } from '../../a2a/test/a2a-fixtures.js';
import { agentToken, modernClient, refusalOf } from '../../mcp-server/errand/test/mcp-fixtures.js';
import { agentClient } from './delegation-fixtures.js';
import {
  addAgent,
  addResource,
  adminApi,
  createUser,
  discover,
  insecure,
  startBroker,
  type TestAgent,
  type TestBroker,
} from './fixtures.js';

/**
 * CIBA's `unknown_user_id` (CIBA Core §13) tells an agent whether a username exists, so each client
 * gets only a few such answers per window; past them every lookup it makes is refused, known
 * usernames included, so that the refusal itself tells nothing.
 */

const NOTES = 'https://notes.example.test/mcp';
const LIMIT = 3;

let tb: TestBroker;
let as: oauth.AuthorizationServer;
let known: { username: string };
let agents: TestAgent[];

beforeAll(async () => {
  tb = await startBroker({ ERRAND_UNKNOWN_USER_LIMIT: String(LIMIT) });
  const api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read']);
  agents = [];
  for (let i = 0; i < 4; i++) {
    const scope = ['errand:delegate', 'errand:tasks', 'notes:read'];
    agents.push(await addAgent(api, { name: `agent ${i}`, scope, grant_types: undefined }));
  }
  known = await createUser(tb);
  as = await discover(tb);
});
afterAll(() => tb.close());

/** A backchannel authentication request (CIBA Core §7.1) for `username`. */
function backchannel(agent: TestAgent, username: string) {
  const [client, auth] = agentClient(tb, agent);
  const params = new URLSearchParams({ login_hint: username, scope: 'openid notes:read', resource: NOTES });
  return oauth.backchannelAuthenticationRequest(as, client, auth, params, insecure);
}

const unknownName = (i: number) => `nobody-${i}-${Date.now()}`;

describe('answers about unknown users are limited per client', () => {
  test('at /bc-authorize, past the limit even a known user is 429 rate_limited; another client is unaffected', async () => {
    const [agent, other] = agents as [TestAgent, TestAgent];
    for (let i = 0; i < LIMIT; i++) {
      const res = await backchannel(agent, unknownName(i));
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'unknown_user_id' });
    }
    const limited = await backchannel(agent, known.username);
    expect(limited.status).toBe(429);
    expect(await limited.json()).toMatchObject({ error: 'rate_limited' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);

    expect((await backchannel(other, known.username)).status).toBe(200);
  });

  test('the MCP request_delegation tool answers rate_limited past the limit, for a known user too', async () => {
    const agent = agents[2]!;
    const client = await modernClient(tb, await agentToken(tb, as, agent, `${tb.url}/mcp`, 'errand:delegate'));
    const ask = (user: string) =>
      client.callTool({ name: 'request_delegation', arguments: { user, resources: [NOTES], scopes: ['notes:read'] } });
    for (let i = 0; i < LIMIT; i++) {
      const res = await ask(unknownName(i));
      expect(res.isError).toBe(true);
      expect(refusalOf(res)?.error).toBe('unknown_user_id');
    }
    const limited = await ask(known.username);
    expect(limited.isError).toBe(true);
    expect(refusalOf(limited)?.error).toBe('rate_limited');
    await client.close();
  });

  test('the A2A request_delegation skill answers rate_limited past the limit, for a known user too', async () => {
    const agent = agents[3]!;
    const client = await a2aClient(tb, await agentToken(tb, as, agent, `${tb.url}/a2a`, 'errand:delegate'));
    const ask = async (user: string) =>
      replyData(
        await client.sendMessage(
          skillRequest('request_delegation', { user, resources: [NOTES], scopes: ['notes:read'] }),
        ),
      );
    for (let i = 0; i < LIMIT; i++) expect((await ask(unknownName(i))).error).toBe('unknown_user_id');
    expect((await ask(known.username)).error).toBe('rate_limited');
  });
});
