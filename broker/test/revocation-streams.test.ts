import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readServerSentEvents } from '../../packages/guard/src/sse.js';
import { addAgent, adminApi, clientAssertion, startBroker, type TestAgent, type TestBroker } from './fixtures.js';

/** Caps on open revocation push streams: per resource-server client and in total. */

const NOTES = 'https://notes.example.test/mcp';
const FILES = 'https://files.example.test/api';

let tb: TestBroker;
let notes: TestAgent;
let files: TestAgent;
const open: AbortController[] = [];

beforeAll(async () => {
  tb = await startBroker({ ERRAND_STREAM_MAX_PER_CLIENT: '2', ERRAND_STREAM_MAX_TOTAL: '3' });
  const api = await adminApi(tb);
  const rs = (resource: string) =>
    addAgent(api, {
      kind: 'resource_server',
      name: resource,
      resources: [resource],
      grant_types: ['client_credentials'],
    });
  notes = await rs(NOTES);
  files = await rs(FILES);
});
afterAll(async () => {
  for (const a of open) a.abort();
  await tb?.close();
});

/** Opens a stream; a 200 is read up to its `ready` event and kept open until `close`. */
async function openStream(rs: TestAgent, audience: string) {
  const abort = new AbortController();
  open.push(abort);
  const res = await fetch(`${tb.url}/events/revocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(rs, tb.url),
      audience,
    }).toString(),
    signal: abort.signal,
  });
  if (res.status === 200) {
    const first = await readServerSentEvents(res.body!).next();
    expect(first.value).toMatchObject({ event: 'ready' });
  }
  return { res, close: () => abort.abort() };
}

async function expectRefused(res: Response) {
  expect(res.status).toBe(429);
  expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
  const body = (await res.json()) as { error: string; error_description: string };
  expect(body.error).toBe('rate_limited');
  expect(body.error_description).toContain('too many open streams');
}

const closedCount = () => tb.logs.filter((l) => l.includes('revocation_stream.closed')).length;

describe('revocation push streams are capped per client and in total', () => {
  test('a client beyond its cap gets 429 with Retry-After; the total cap holds for everyone; closing frees a slot', async () => {
    const a = await openStream(notes, NOTES);
    const b = await openStream(notes, NOTES);
    expect([a.res.status, b.res.status]).toEqual([200, 200]);
    await expectRefused((await openStream(notes, NOTES)).res);

    // Another client still has room, up to the total.
    const c = await openStream(files, FILES);
    expect(c.res.status).toBe(200);
    await expectRefused((await openStream(files, FILES)).res);

    // A closed stream gives its slot back.
    const closed = closedCount();
    a.close();
    await expect.poll(closedCount, { timeout: 2000 }).toBe(closed + 1);
    const again = await openStream(notes, NOTES);
    expect(again.res.status).toBe(200);
    expect(tb.logs.some((l) => l.includes('revocation_stream.refused'))).toBe(true);
  });
});
