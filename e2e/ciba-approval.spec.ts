import * as oauth from 'oauth4webapi';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentClient, delegationWorld } from '../broker/test/delegation-fixtures.js';
import { insecure, startBroker, type TestAgent, type TestBroker } from '../broker/test/fixtures.js';
import { launchChromium, screenshot } from './fixtures/chromium.js';
import { Person } from './fixtures/person.js';

/**
 * OpenID CIBA in poll mode with the person in a real browser: the agent asks by backchannel
 * request (oauth4webapi), the person answers on /my/requests in Chromium, under the page's real
 * Content-Security-Policy, and the agent's next poll gets the credential or access_denied.
 */

const NOTES = 'https://notes.example.test/mcp';

let tb: TestBroker;
let browser: Browser;
let world: Awaited<ReturnType<typeof delegationWorld>>;
beforeAll(async () => {
  tb = await startBroker();
  browser = await launchChromium();
  world = await delegationWorld(tb, { agents: 2 });
});
afterAll(async () => {
  await browser?.close();
  await tb?.close();
});

/** The agent's backchannel authentication request, as oauth4webapi sends it. */
async function ask(agent: TestAgent, bindingMessage: string) {
  const [client, auth] = agentClient(tb, agent);
  const params = new URLSearchParams({
    scope: 'openid notes:read notes:write',
    resource: NOTES,
    login_hint: world.user.username,
    binding_message: bindingMessage,
  });
  const res = await oauth.backchannelAuthenticationRequest(world.as, client, auth, params, insecure);
  return oauth.processBackchannelAuthenticationResponse(world.as, client, res);
}

/** One poll after the interval has passed on the broker's clock. */
async function poll(agent: TestAgent, authReqId: string, interval: number) {
  tb.clock.advance(interval + 1);
  const [client, auth] = agentClient(tb, agent);
  const res = await oauth.backchannelAuthenticationGrantRequest(world.as, client, auth, authReqId, insecure);
  return oauth.processBackchannelAuthenticationGrantResponse(world.as, client, res);
}

/** The person opens Requests, finds the agent's card by its message and clicks `button` on it. */
async function answer(message: string, button: 'Approve' | 'Deny', shot: string) {
  const context = await browser.newContext();
  try {
    const person = await Person.open(context, world.user);
    await person.visit(`${tb.url}/my/requests`);
    const card = person.page.locator('article.request', { hasText: message });
    await card.waitFor({ timeout: 10_000 });
    await screenshot(person.page, `${shot}-before`);
    await card.getByRole('button', { name: button, exact: true }).click();
    await person.page.waitForURL(/\/my\/requests\?done=/, { timeout: 10_000 });
    await screenshot(person.page, `${shot}-after`);
    expect(person.console.filter((m) => m.includes('Content Security Policy'))).toEqual([]);
    return await person.page.getByRole('status').first().textContent();
  } finally {
    await context.close();
  }
}

describe('CIBA approval page in Chromium', { timeout: 60_000 }, () => {
  test('Approve: the agent’s poll gets the delegation credential', async () => {
    const agent = world.agents[0]!;
    const started = await ask(agent, 'Sort the inbox 17');
    await expect(poll(agent, started.auth_req_id, started.interval ?? 5)).rejects.toMatchObject({
      error: 'authorization_pending',
    });

    const notice = await answer('Sort the inbox 17', 'Approve', 'ciba-approve');
    expect(notice).toMatch(/Approved/);

    // The person's answer is on record; that the agent has the credential is not, until it polls.
    const events = async (type: string) =>
      (await tb.broker.deps.audit.query({ type, limit: 100 })).filter((e) => e.clientId === agent.clientId);
    expect(await events('delegation.approved')).toMatchObject([{ userId: world.user.id }]);
    expect(await events('delegation.collected')).toEqual([]);

    const tokens = await poll(agent, started.auth_req_id, started.interval ?? 5);
    expect(tokens.access_token).toBeTruthy();
    const [approved] = await events('delegation.approved');
    expect(await events('delegation.collected')).toMatchObject([
      { userId: world.user.id, delegationId: approved?.delegationId, result: 'allowed' },
    ]);
  });

  test('Deny: the agent’s poll gets access_denied', async () => {
    const agent = world.agents[1]!;
    const started = await ask(agent, 'Delete old notes 18');
    const notice = await answer('Delete old notes 18', 'Deny', 'ciba-deny');
    expect(notice).toMatch(/Denied/);
    await expect(poll(agent, started.auth_req_id, started.interval ?? 5)).rejects.toMatchObject({
      error: 'access_denied',
    });
    const denied = await tb.broker.deps.audit.query({ type: 'delegation.denied', limit: 100 });
    expect(denied.filter((e) => e.clientId === agent.clientId)).toMatchObject([
      { userId: world.user.id, reason: 'user_denied' },
    ]);
  });
});
