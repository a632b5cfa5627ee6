import { expect } from 'vitest';
import type { adminApi } from './fixtures.js';

type Api = Awaited<ReturnType<typeof adminApi>>;

/** Registers an agent with no secret and no key through the admin API: a trusted issuer vouches for it. */
export async function addWorkloadAgent(
  api: Api,
  name: string,
  scope: string[] = ['notes:read', 'notes:write', 'vault:read'],
): Promise<string> {
  const res = await api.call('POST', '/api/admin/clients', {
    kind: 'agent',
    name,
    token_endpoint_auth_method: 'workload_federation',
    scope,
  });
  expect(res.status).toBe(201);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ credential_kind: 'workload_federation', jwks: null, jwks_uri: null });
  expect(body.client_secret).toBeUndefined();
  return body.client_id as string;
}
