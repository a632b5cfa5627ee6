import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { savePolicyDraft, setPolicyStatus } from '../services/policy/policy-admin.js';
import { DEFAULT_POLICIES } from '../services/policy/schema.js';
import { TT_JWT, userApi } from './delegation-fixtures.js';
import { addResource, adminApi, createUser, postForm, startBroker, type TestBroker } from './fixtures.js';
import { addWorkloadAgent } from './workload-fixtures.js';
import { startWorkloadIssuer, type WorkloadIssuer } from './workload-issuer.js';

/**
 * Policies on what a workload token attests (README "Organisation policies"): the claims of the
 * token the agent authenticated with in this request, never what an earlier request showed.
 */

const NOTES = 'https://notes.example.test/mcp';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const GRANT_CIBA = 'urn:openid:params:grant-type:ciba';
const GRANT_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

let tb: TestBroker;
let wi: WorkloadIssuer;
let bot: string;

/** A fresh CI token for the bot (single use), from the given deployment environment. */
const ciToken = (environment: string) =>
  wi.sign({ sub: 'repo:acme/agent:environment', aud: tb.url, repository: 'acme/agent', environment });

const auth = async (environment: string) => ({
  client_assertion_type: JWT_BEARER,
  client_assertion: await ciToken(environment),
});

beforeAll(async () => {
  tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true', ERRAND_CIBA_INTERVAL: '1' });
  wi = await startWorkloadIssuer({ now: () => tb.clock.now() });
  const api = await adminApi(tb);
  await addResource(api, NOTES, ['notes:read']);
  bot = await addWorkloadAgent(api, 'release bot', ['notes:read']);
  const ci = await api.call('POST', '/api/admin/trusted-issuers', {
    kind: 'ci',
    name: 'CI',
    issuer: wi.url,
    rules: [{ match: { repository: 'acme/agent' }, agent_id: bot }],
  });
  expect(ci.status).toBe(201);
  const admin = { adminId: (await createUser(tb, 'admin')).id, requestId: 'req_test' };
  const deps = { ...tb.broker.deps };
  const saved = await savePolicyDraft(
    deps,
    {
      text: `${DEFAULT_POLICIES}
@id("notes-from-production")
forbid (principal is Errand::Agent, action == Errand::Action::"exchange", resource == Errand::Resource::"${NOTES}")
unless { principal.workload has environment && principal.workload.environment == "production" };`,
      tests: [],
    },
    admin,
  );
  await setPolicyStatus(deps, saved.version, 'published', admin);
});
afterAll(async () => {
  await wi?.close();
  await tb?.close();
});

describe('workload claims in policies', () => {
  test('the same agent gets a task token from production, and is refused naming the policy from staging', async () => {
    const user = await createUser(tb);
    const bc = await postForm(`${tb.url}/bc-authorize`, {
      login_hint: user.username,
      scope: 'openid notes:read',
      resource: NOTES,
      ...(await auth('staging')),
    });
    expect(bc.status).toBe(200);
    const { auth_req_id } = (await bc.json()) as { auth_req_id: string };
    const me = await userApi(tb, user);
    const pending = (await (await me.call('GET', '/api/me/delegations?status=pending')).json()) as {
      delegations: { delegation_id: string }[];
    };
    expect(
      (await me.call('POST', `/api/me/delegations/${pending.delegations[0]!.delegation_id}/approve`, {})).status,
    ).toBe(200);
    tb.clock.advance(2);
    const collected = await postForm(`${tb.url}/token`, {
      grant_type: GRANT_CIBA,
      auth_req_id,
      ...(await auth('staging')),
    });
    expect(collected.status).toBe(200);
    const credential = ((await collected.json()) as { access_token: string }).access_token;

    const exchange = async (environment: string) =>
      postForm(`${tb.url}/token`, {
        grant_type: GRANT_EXCHANGE,
        subject_token: credential,
        subject_token_type: TT_JWT,
        resource: NOTES,
        ...(await auth(environment)),
      });
    const fromStaging = await exchange('staging');
    expect(fromStaging.status).toBe(400);
    const refused = (await fromStaging.json()) as { error: string; error_description: string };
    expect(refused).toMatchObject({ error: 'access_denied' });
    expect(refused.error_description).toContain('"notes-from-production"');
    expect((await exchange('production')).status).toBe(200);
    // What production showed before does not carry over to a request from staging.
    expect((await exchange('staging')).status).toBe(400);
  });
});
