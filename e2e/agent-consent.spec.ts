import * as oauth from 'oauth4webapi';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentClient } from '../broker/test/delegation-fixtures.js';
import {
  addAgent,
  adminApi,
  createUser,
  discover,
  insecure,
  startBroker,
  type TestBroker,
} from '../broker/test/fixtures.js';
import { type CallbackListener, startCallbackListener } from './fixtures/callback-listener.js';
import { launchChromium, screenshot } from './fixtures/chromium.js';
import { Person } from './fixtures/person.js';

/**
 * An agent asks for a delegation through the authorization code flow (oauth4webapi builds the
 * request and redeems the code): the person narrows it on the consent page in Chromium, clicks
 * Allow, and the browser carries the code to the agent's real loopback listener.
 */

const NOTES = 'https://notes.example.test/mcp';

let tb: TestBroker;
let browser: Browser;
let listener: CallbackListener;
beforeAll(async () => {
  tb = await startBroker();
  browser = await launchChromium();
  listener = await startCallbackListener();
});
afterAll(async () => {
  await browser?.close();
  await listener?.close();
  await tb?.close();
});

describe('delegation consent in Chromium', { timeout: 60_000 }, () => {
  test('the person unticks a scope and allows; the agent’s listener gets the code for the narrowed delegation', async () => {
    const api = await adminApi(tb);
    const created = await api.call('POST', '/api/admin/resources', {
      url: NOTES,
      name: 'Team notes',
      scopes: [{ name: 'notes:read', description: 'Read your notes' }, 'notes:write'],
    });
    expect(created.status).toBe(201);
    const agent = await addAgent(api, {
      name: 'Inbox agent',
      redirect_uris: [listener.redirectUri],
      grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:token-exchange'],
    });
    const user = await createUser(tb);
    const as = await discover(tb);
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: agent.clientId,
      redirect_uri: listener.redirectUri,
      scope: 'notes:read notes:write',
      resource: NOTES,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();

    const context = await browser.newContext();
    try {
      const person = await Person.open(context, user);
      const arrived = listener.next(15_000, () => person.explain());
      await person.visit(url.toString());
      // The consent page names the resource and describes its scopes (the scope itself when undescribed).
      await person.page.getByRole('checkbox', { name: /Read your notes/ }).waitFor({ timeout: 10_000 });
      expect(await person.page.getByText('Team notes').first().isVisible()).toBe(true);
      expect(
        await person.page.getByText(/nobody answers for this agent|who answers for what this agent does/).isVisible(),
      ).toBe(true);
      await person.page.getByRole('checkbox', { name: 'notes:write' }).uncheck();
      await screenshot(person.page, 'agent-consent-narrowed');
      await person.page.getByRole('button', { name: 'Allow', exact: true }).click();
      const callback = await arrived;

      const [client, auth] = agentClient(tb, agent);
      const params = oauth.validateAuthResponse(as, client, callback, state);
      const res = await oauth.authorizationCodeGrantRequest(
        as,
        client,
        auth,
        params,
        listener.redirectUri,
        verifier,
        insecure,
      );
      const credential = await oauth.processAuthorizationCodeResponse(as, client, res);
      expect(credential.scope).toBe('notes:read');
      const [redeemed] = (await tb.broker.deps.audit.query({ type: 'authorization_code.redeemed', limit: 10 })).filter(
        (e) => e.clientId === agent.clientId,
      );
      expect(redeemed?.delegationId).toMatch(/^dlg_/);
    } finally {
      await context.close();
    }
  });
});
