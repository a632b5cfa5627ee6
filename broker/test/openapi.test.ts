import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { z } from 'zod';
import { API_OPERATIONS, type ApiOperation } from '../http/routes/api-operations.js';
import { OPENAPI_FILE, openApiDocument, openApiFileText } from '../http/routes/openapi-document.js';
import { delegateViaCiba, delegationWorld, exchange, TT_JWT, userApi } from './delegation-fixtures.js';
import { addAgent, startBroker, type TestBroker } from './fixtures.js';

/**
 * The OpenAPI document (README "Admin API"): committed and current, structurally valid OpenAPI 3.1,
 * covering every /api/* route of the real app, snake_case throughout, and true to what the API answers.
 */

type Json = Record<string, unknown>;
const doc = openApiDocument() as Json & {
  paths: Record<string, Record<string, Json>>;
  components: { schemas: Record<string, Json>; securitySchemes: Record<string, Json> };
};

let tb: TestBroker;
beforeAll(async () => {
  tb = await startBroker();
});
afterAll(() => tb.close());

describe('the committed document', () => {
  test(`${OPENAPI_FILE} is what the code generates (run \`npm run openapi\` after changing an API)`, () => {
    const committed = readFileSync(OPENAPI_FILE, 'utf8');
    expect(committed === openApiFileText(), `${OPENAPI_FILE} is out of date: run \`npm run openapi\``).toBe(true);
  });

  test('every /api/* (and AuthZEN) route of the real app is described, and nothing else', () => {
    const described = (path: string) =>
      path.startsWith('/api/') || path.startsWith('/access/') || path === '/.well-known/authzen-configuration';
    const registered = new Set(
      tb.broker.app.routes
        .filter((r) => described(r.path) && r.method !== 'ALL' && !r.path.endsWith('*'))
        .map((r) => `${r.method} ${r.path}`),
    );
    const operations = new Set(API_OPERATIONS.map((o) => `${o.method} ${o.path}`));
    const missing = [...registered].filter((r) => !operations.has(r));
    const stale = [...operations].filter((d) => !registered.has(d));
    expect(missing, 'add a line for each to broker/http/routes/api-operations.ts, then `npm run openapi`').toEqual([]);
    expect(stale, 'these are described but no longer registered').toEqual([]);
  });

  test('it is served at GET /api/openapi.json without credentials, with the issuer as server', async () => {
    const res = await fetch(`${tb.url}/api/openapi.json`);
    expect(res.status).toBe(200);
    const served = (await res.json()) as Json & { servers: { url: string }[] };
    expect(served.servers).toEqual([{ url: tb.url }]);
    expect({ ...served, servers: [] }).toEqual({ ...doc, servers: [] });
  });
});

describe('OpenAPI 3.1 structure', () => {
  test('required fields, unique operation ids, declared path parameters, resolvable references', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    const ids = new Set<string>();
    const refs: string[] = [];
    const collectRefs = (x: unknown): void => {
      if (Array.isArray(x)) {
        for (const v of x) collectRefs(v);
      } else if (x && typeof x === 'object') {
        for (const [k, v] of Object.entries(x)) {
          if (k === '$ref' && typeof v === 'string') refs.push(v);
          else collectRefs(v);
        }
      }
    };
    for (const [path, item] of Object.entries(doc.paths)) {
      expect(path.startsWith('/')).toBe(true);
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map(([, n]) => n);
      for (const [method, op] of Object.entries(item)) {
        expect(['get', 'put', 'post', 'delete', 'patch']).toContain(method);
        const o = op as { operationId: string; responses: Json; parameters?: Json[]; security: Json[] };
        expect(ids.has(o.operationId), o.operationId).toBe(false);
        ids.add(o.operationId);
        expect(Object.keys(o.responses).length).toBeGreaterThan(0);
        for (const [status, r] of Object.entries(o.responses)) {
          expect(status).toMatch(/^([1-5]\d\d|[1-5]XX|default)$/);
          expect((r as Json).description).toEqual(expect.any(String));
        }
        const pathParams = (o.parameters ?? []).filter((p) => p.in === 'path');
        expect(pathParams.map((p) => p.name).sort()).toEqual([...templated].sort());
        for (const p of pathParams) expect(p.required).toBe(true);
        for (const req of o.security) {
          for (const scheme of Object.keys(req)) expect(doc.components.securitySchemes).toHaveProperty(scheme);
        }
      }
    }
    collectRefs(doc);
    expect(refs.length).toBeGreaterThan(0);
    for (const r of refs) {
      expect(r).toMatch(/^#\/components\/schemas\//);
      expect(doc.components.schemas, r).toHaveProperty(r.slice('#/components/schemas/'.length));
    }
  });

  test('every schema is valid JSON Schema 2020-12 (the OpenAPI 3.1 dialect)', () => {
    const ajv = new Ajv2020({ strict: false });
    for (const [name, schema] of Object.entries(doc.components.schemas)) {
      expect(ajv.validateSchema(schema), `${name}: ${ajv.errorsText()}`).toBe(true);
    }
  });

  test('every property name of every body and query is snake_case', () => {
    const camel: string[] = [];
    const walk = (x: unknown, where: string): void => {
      if (Array.isArray(x)) {
        for (const [i, v] of x.entries()) walk(v, `${where}[${i}]`);
      } else if (x && typeof x === 'object') {
        const o = x as Json;
        // A schema's `properties` (an AuthZEN member named `properties` is itself a property, not this).
        if (o.type === 'object' && o.properties && typeof o.properties === 'object') {
          for (const k of Object.keys(o.properties)) if (!/^[a-z][a-z0-9_]*$/.test(k)) camel.push(`${where}.${k}`);
        }
        for (const [k, v] of Object.entries(o)) walk(v, `${where}/${k}`);
      }
    };
    walk(doc.components.schemas, 'schemas');
    for (const item of Object.values(doc.paths)) {
      for (const op of Object.values(item)) {
        for (const p of (op.parameters as Json[] | undefined) ?? []) {
          if (!/^[a-z][a-z0-9_]*$/.test(String(p.name))) camel.push(`parameter ${String(p.name)}`);
        }
      }
    }
    expect(camel).toEqual([]);
  });

  test('the admin scope and both ways in are declared', () => {
    const { admin_token, session } = doc.components.securitySchemes as Record<string, Json>;
    expect(admin_token).toMatchObject({ type: 'oauth2', flows: { clientCredentials: { tokenUrl: '/token' } } });
    expect(JSON.stringify(admin_token)).toContain('errand:admin');
    expect(session).toMatchObject({ type: 'apiKey', in: 'cookie' });
  });
});

describe('the API answers what the document says', () => {
  /** Parses a response body with the operation's response schema (strict: no undocumented field). */
  async function conforms(method: ApiOperation['method'], path: string, res: Response) {
    const o = API_OPERATIONS.find(
      (x) => x.method === method && new RegExp(`^${x.path.replace(/:\w+/g, '[^/]+')}$`).test(path.split('?')[0]!),
    );
    expect(o, `${method} ${path} is described`).toBeDefined();
    expect(res.status, `${method} ${path}: ${await res.clone().text()}`).toBe(o!.status ?? 200);
    const parsed = (o!.response as z.ZodType).safeParse(await res.json());
    expect(parsed.success, `${method} ${path}: ${parsed.success ? '' : JSON.stringify(parsed.error.issues)}`).toBe(
      true,
    );
  }

  test('admin and user endpoints, with real data in every list', async () => {
    const world = await delegationWorld(tb, { agents: 1 });
    const { api, user, as } = world;
    const [agent] = world.agents as [(typeof world.agents)[0]];
    const call = async (method: ApiOperation['method'], path: string, body?: unknown) =>
      conforms(method, path, await api.call(method, path, body));

    const { delegationId, credential } = await delegateViaCiba(tb, as, agent, user, {
      scope: 'openid notes:read',
      resource: 'https://notes.example.test/mcp',
    });
    const task = await exchange(tb, as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: 'https://notes.example.test/mcp',
    });

    await call('GET', '/api/admin/clients');
    await call('GET', `/api/admin/clients/${agent.clientId}`);
    await call('PATCH', `/api/admin/clients/${agent.clientId}`, { name: 'renamed' });
    const secretClient = await api.call('POST', '/api/admin/clients', {
      kind: 'admin_service',
      name: 'ci',
      token_endpoint_auth_method: 'client_secret_basic',
      allow_static_secret: true,
    });
    await conforms('POST', '/api/admin/clients', secretClient);
    await call('GET', '/api/admin/resources');
    await call('POST', '/api/admin/resources', { url: 'https://conform.example.test', name: 'c', scopes: ['c:r'] });
    await call('GET', '/api/admin/users');
    await call('POST', '/api/admin/users', { username: `conform-${Date.now()}`, password: 'long enough password' });
    await call('GET', '/api/admin/keys');
    await call('POST', '/api/admin/keys/rotate');
    await call('GET', '/api/admin/audit?limit=500');
    await call('POST', '/api/admin/initial-access-tokens', { name: 'conform' });
    await call('GET', '/api/admin/initial-access-tokens');
    const issuer = await api.call('POST', '/api/admin/trusted-issuers', {
      kind: 'oidc',
      name: 'ci',
      issuer: 'https://ci.conform.example.test',
      jwks: { keys: [agent.publicJwk] },
      rules: [
        {
          match: { sub: 'repo:x' },
          agent_id: (await addAgent(api, { token_endpoint_auth_method: 'workload_federation', jwks: undefined }))
            .clientId,
        },
      ],
    });
    await conforms('POST', '/api/admin/trusted-issuers', issuer);
    await call('GET', '/api/admin/trusted-issuers');

    // Organisation policies: a version in shadow that denies the notes, so every list has a row.
    const policy = `@id("default")
permit (principal, action in Errand::Action::"delegated", resource);
@id("no-notes")
forbid (principal, action == Errand::Action::"exchange", resource == Errand::Resource::"https://notes.example.test/mcp");`;
    const tests = [
      {
        name: 'notes closed',
        action: 'exchange',
        agent: { id: 'a' },
        user: { id: 'u' },
        resource: { url: 'https://notes.example.test/mcp' },
        expect: 'deny',
      },
    ];
    await call('POST', '/api/admin/policies/check', { text: policy, tests });
    const saved = await api.call('POST', '/api/admin/policies', { text: policy, tests, comment: 'conform' });
    const { version } = (await saved.clone().json()) as { version: number };
    await conforms('POST', '/api/admin/policies', saved);
    await call('GET', '/api/admin/policies');
    await call('GET', '/api/admin/policies/0');
    await call('GET', `/api/admin/policies/${version}`);
    await call('GET', '/api/admin/policies/schema');
    await call('POST', `/api/admin/policies/${version}/status`, { status: 'shadow' });
    await exchange(tb, as, agent, {
      subject_token: credential,
      subject_token_type: TT_JWT,
      resource: 'https://notes.example.test/mcp',
    });
    await call('GET', '/api/admin/policies/shadow-decisions');
    await call('GET', `/api/admin/access/agent?agent_id=${agent.clientId}&user=${user.username}`);
    await call('GET', `/api/admin/access/resource?resource=${encodeURIComponent('https://notes.example.test/mcp')}`);
    await call('PUT', `/api/admin/users/${user.id}/groups`, { groups: ['staff'] });

    const me = await userApi(tb, user);
    const mine = async (method: ApiOperation['method'], path: string) =>
      conforms(method, path, await me.call(method, path));
    await mine('GET', '/api/me');
    await mine('GET', '/api/me/delegations');
    await mine('GET', `/api/me/delegations/${delegationId}`);
    await mine('GET', '/api/me/tasks');
    await mine('GET', `/api/me/tasks/${task.task_id}`);
    await mine('GET', '/api/me/audit');
    await call('POST', `/api/admin/tasks/${task.task_id}/end`);
    await mine('POST', `/api/me/delegations/${delegationId}/revoke`);
  });
});
