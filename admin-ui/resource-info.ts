import type { ClientStore } from '../db/stores/client-store.js';
import type { ResourceInfo } from './components/delegation-controls.js';

/** The names and scope descriptions of the resources a request names (unknown ones are left out). */
export async function resourceInfo(
  clients: Pick<ClientStore, 'getResource'>,
  urls: string[],
): Promise<Record<string, ResourceInfo>> {
  const out: Record<string, ResourceInfo> = {};
  for (const url of new Set(urls)) {
    const r = await clients.getResource(url);
    if (r) out[url] = { name: r.name, scopeDescriptions: r.scopeDescriptions ?? {} };
  }
  return out;
}
