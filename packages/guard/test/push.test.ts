import { generateKeyPair } from 'jose';
import { describe, expect, test } from 'vitest';
import { CAEP_SESSION_REVOKED, RevocationPush, type RevokedNotice } from '../src/push.js';
import { readServerSentEvents } from '../src/sse.js';

const ISSUER = 'https://as.example.test';
const RESOURCE = 'https://tools.example.test/mcp';

const revoked = (jti: string, over: Record<string, unknown> = {}) =>
  `event: revoked\ndata: ${JSON.stringify({
    iss: ISSUER,
    iat: 1,
    aud: RESOURCE,
    jti: `evt_${jti}`,
    events: {
      [CAEP_SESSION_REVOKED]: { subject: { format: 'opaque', id: jti }, task_id: 'tsk_1', event_timestamp: 1 },
    },
    ...over,
  })}\n\n`;

/** A stream that sends `chunks` and then ends (or stays open when `hold`). */
function sse(chunks: string[], hold = false): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(enc.encode(c));
      if (!hold) controller.close();
    },
  });
}

describe('server-sent event parsing', () => {
  test('events, multi-line data, comments and CRLF split across chunks', async () => {
    const out = [];
    for await (const e of readServerSentEvents(
      sse([': hi\r', '\nevent: a\r\ndata: 1\ndata:', ' 2\n', '\n', 'data: x\n\n']),
    ))
      out.push(e);
    expect(out).toEqual([
      { event: 'a', data: '1\n2' },
      { event: 'message', data: 'x' },
    ]);
  });
});

describe('the push channel client', () => {
  test('authenticates with a client assertion, records revocations, ignores foreign events, reconnects', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const bodies: URLSearchParams[] = [];
    const responses = [
      // First connection: ready, then the broker goes away.
      () => sse(['event: ready\ndata: {}\n\n', revoked('at_1')]),
      // Second: an event for another audience and one from another issuer (both ignored), then a real one.
      () =>
        sse(
          [
            'event: ready\ndata: {}\n\n',
            revoked('at_x', { aud: 'https://other.example.test/' }),
            revoked('at_y', { iss: 'https://evil.example.test' }),
            ': heartbeat\n\n',
            revoked('at_2'),
          ],
          true,
        ),
    ];
    const fetchImpl: typeof fetch = async (_url, init) => {
      bodies.push(new URLSearchParams(String(init?.body)));
      const next = responses.shift();
      if (!next) return new Response('gone', { status: 503 });
      return new Response(next(), { headers: { 'content-type': 'text/event-stream' } });
    };
    const push = new RevocationPush(
      {
        issuer: ISSUER,
        resource: RESOURCE,
        fetch: fetchImpl,
        now: () => Date.now() / 1000,
        clockSkew: 30,
        retain: 3600,
      },
      { clientId: 'rs_1', privateKey, kid: 'k1' },
    );
    const seen: RevokedNotice[] = [];
    push.onRevoked((n) => seen.push(n));
    await push.connect();
    await expect.poll(() => seen.map((n) => n.jti), { timeout: 3000 }).toEqual(['at_1', 'at_2']);
    expect(push.connected).toBe(true);
    expect(bodies).toHaveLength(2);
    expect(bodies[0]!.get('audience')).toBe(RESOURCE);
    expect(bodies[0]!.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    expect(bodies[0]!.get('client_assertion')).not.toBe(bodies[1]!.get('client_assertion'));
    expect(push.isRevoked('at_1')).toBe(true);
    expect(push.isRevoked('at_x')).toBe(false);
    expect(push.isRevoked('at_y')).toBe(false);
    expect(seen[0]).toEqual({ jti: 'at_1', taskId: 'tsk_1', at: 1 });
    push.close();
    expect(push.connected).toBe(false);
  });
});
