import { readFileSync } from 'node:fs';
import { type ServerType, serve } from '@hono/node-server';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { userApi } from '../../../broker/test/delegation-fixtures.js';
import {
  addResource,
  adminApi,
  createUser,
  freePort,
  startBroker,
  type TestBroker,
} from '../../../broker/test/fixtures.js';
import { startWorkloadIssuer, type WorkloadIssuer } from '../../../broker/test/workload-issuer.js';
import { newId } from '../../../broker/tokens/random.js';
import { createNotesServer, type NotesServer } from '../../../mcp-server/example/notes-server.js';
import { tidyNotes } from '../example.js';

const TD = 'spiffe://example.test';

let tb: TestBroker;
let wi: WorkloadIssuer;
let notes: NotesServer;
let notesServer: ServerType;
let notesUrl: string;
let agentId: string;

beforeAll(async () => {
  tb = await startBroker({ ERRAND_FETCH_ALLOW_PRIVATE: 'true', ERRAND_CIBA_INTERVAL: '1' });
  // The workload platform: a SPIFFE-style issuer serving its trust bundle and signing JWT-SVIDs.
  wi = await startWorkloadIssuer({ now: () => tb.clock.now() });
  const api = await adminApi(tb);
  const port = await freePort();
  notesUrl = `http://127.0.0.1:${port}/mcp`;
  await addResource(api, notesUrl, ['notes:read', 'notes:write', 'notes:delete']);
  const agent = await api.call('POST', '/api/admin/clients', {
    kind: 'agent',
    name: 'notes tidier',
    token_endpoint_auth_method: 'workload_federation',
  });
  agentId = ((await agent.json()) as { client_id: string }).client_id;
  const issuer = await api.call('POST', '/api/admin/trusted-issuers', {
    kind: 'spiffe',
    name: 'agents mesh',
    issuer: TD,
    jwks_uri: wi.bundleUri,
    max_lifetime: 300,
    rules: [{ match: { sub: `${TD}/agents/**` }, agent_id: agentId }],
  });
  expect(issuer.status).toBe(201);
  // The example tool server, protected by the guard, with Errand's revocation push channel.
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = newId('k');
  const rs = await api.call('POST', '/api/admin/clients', {
    kind: 'resource_server',
    name: 'example notes',
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] },
    grant_types: ['client_credentials'],
    resources: [notesUrl],
  });
  const { client_id: rsId } = (await rs.json()) as { client_id: string };
  notes = createNotesServer({ issuer: tb.url, resource: notesUrl, push: { clientId: rsId, privateKey, kid } });
  notesServer = await new Promise((resolve) => {
    const s = serve({ fetch: notes.app.fetch, hostname: '127.0.0.1', port }, () => resolve(s));
  });
  await notes.guard.connect();
});
afterAll(async () => {
  notes?.guard.close();
  await new Promise<void>((r) => notesServer?.close(() => r()));
  await wi?.close();
  await tb?.close();
});

describe('the agent SDK example in the README', () => {
  test('the README shows packages/agent/example.ts exactly', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const example = readFileSync(new URL('../example.ts', import.meta.url), 'utf8');
    const block = /<!-- agent-sdk-example: packages\/agent\/example\.ts -->\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBe(example);
  });

  test('it runs: no secret, a workload token, a delegation, DPoP-bound task tokens, the tool server, the end', async () => {
    const user = await createUser(tb);
    const me = await userApi(tb, user);
    // The person approves the request in Errand while the agent waits (CIBA poll).
    let approved: string | null = null;
    const approver = (async () => {
      for (let i = 0; i < 100 && !approved; i++) {
        const pending = (await (await me.call('GET', '/api/me/delegations?status=pending')).json()) as {
          delegations: { delegation_id: string; agent_id: string; binding_message: string }[];
        };
        const mine = pending.delegations.find((d) => d.agent_id === agentId);
        if (mine) {
          expect(mine.binding_message).toBe('Tidy up my notes');
          const res = await me.call('POST', `/api/me/delegations/${mine.delegation_id}/approve`, {});
          expect(res.status).toBe(200);
          approved = mine.delegation_id;
        } else await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let svids = 0;
    const result = await tidyNotes({
      issuer: tb.url,
      notes: notesUrl,
      user: user.username,
      workloadToken: async () => {
        svids++;
        return wi.svid(`${TD}/agents/tidier`, tb.url);
      },
    });
    await approver;
    expect(approved).not.toBeNull();
    expect(result).toMatchObject({ wrote: 200, listed: 200 });
    expect(svids).toBeGreaterThanOrEqual(5); // a fresh workload token for every request
    expect(notes.notebook.list(user.id).map((n) => n.title)).toEqual(['Plan']);

    // The task tokens were DPoP-bound and stated the agent's attested level.
    const audit = (await (await me.call('GET', '/api/me/audit?type=token.exchanged')).json()) as {
      events: { task_id: string; client_id: string; details: { dpopBound: boolean; assurance: string } }[];
    };
    const issued = audit.events.filter((e) => e.task_id === result.taskId || e.task_id === result.subTaskId);
    expect(issued.length).toBe(2);
    for (const e of issued) expect(e.details).toMatchObject({ dpopBound: true, assurance: 'NHI-AAL2' });

    // Ending the task ended the sub-task with it.
    const task = (await (await me.call('GET', `/api/me/tasks/${result.taskId}`)).json()) as {
      state: string;
      tree: { task_id: string; state: string; agent_id: string; depth: number }[];
    };
    expect(task.state).toBe('completed');
    const sub = task.tree.find((t) => t.task_id === result.subTaskId);
    expect(sub).toMatchObject({ depth: 1, agent_id: agentId });
    expect(sub?.state).not.toBe('working');
  });
});
