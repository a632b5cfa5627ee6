import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startBroker, type TestBroker } from './fixtures.js';

/** A client that sends its headers and then trickles the body: ERRAND_BODY_TIMEOUT bounds it. */

const BODY_TIMEOUT = 2;

let tb: TestBroker;
const sockets: Socket[] = [];

beforeAll(async () => {
  tb = await startBroker({ ERRAND_BODY_TIMEOUT: String(BODY_TIMEOUT) });
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await tb?.close();
});

interface RawExchange {
  /** Everything the server sent before it closed the connection (or before we gave up). */
  text: string;
  closed: boolean;
  ms: number;
}

/**
 * Writes `head`, then one byte of `body` every `everyMs` until it is all sent; resolves when the
 * server closes the connection, or after `giveUpMs`.
 */
function trickle(head: string, body: string, everyMs: number, giveUpMs: number): Promise<RawExchange> {
  const { port } = new URL(tb.url);
  const socket = connect(Number(port), '127.0.0.1');
  sockets.push(socket);
  const started = Date.now();
  let text = '';
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  return new Promise((resolve) => {
    const finish = (closed: boolean) => {
      clearInterval(timer);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ text, closed, ms: Date.now() - started });
    };
    const giveUp = setTimeout(() => finish(false), giveUpMs);
    socket.on('data', (d) => {
      text += d.toString();
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => undefined);
    socket.on('connect', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (sent < body.length && !socket.destroyed) socket.write(body[sent++]!);
      }, everyMs);
    });
  });
}

function parseAnswer(text: string) {
  const [head = '', ...rest] = text.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  return { status, head: head.toLowerCase(), body: rest.join('\r\n\r\n') };
}

const host = () => new URL(tb.url).host;

describe('request bodies that arrive too slowly', () => {
  test('a form body trickled to /token is answered 408 with the error envelope and the connection is closed', async () => {
    const body = 'grant_type=client_credentials&client_id=nobody&resource=https%3A%2F%2Fnotes.example.test';
    const head =
      `POST /token HTTP/1.1\r\nHost: ${host()}\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
      `Content-Length: ${body.length}\r\n\r\n`;
    // One byte every 500 ms: the body would take about 45 s; the server's own limit was 300 s.
    const res = await trickle(head, body, 500, 20_000);
    console.log(`slow form body: answered and closed after ${res.ms} ms (limit ${BODY_TIMEOUT} s)`);
    const answer = parseAnswer(res.text);
    expect(answer.status).toBe(408);
    expect(answer.head).toContain('connection: close');
    expect(JSON.parse(answer.body)).toEqual({
      error: 'invalid_request',
      error_description: `the request body did not arrive within ${BODY_TIMEOUT} s`,
    });
    expect(res.closed).toBe(true);
    expect(res.ms).toBeLessThan(15_000);
    expect(tb.logs.some((l) => l.includes('request.rejected') && l.includes('did not arrive'))).toBe(true);
  }, 30_000);

  test('a chunked JSON body trickled to an API is answered the same way', async () => {
    const json = JSON.stringify({ username: 'someone', password: 'something long enough to trickle' });
    const chunked = [...json].map((ch) => `1\r\n${ch}\r\n`).join('') + '0\r\n\r\n';
    const head =
      `POST /api/session HTTP/1.1\r\nHost: ${host()}\r\nContent-Type: application/json\r\n` +
      'Transfer-Encoding: chunked\r\n\r\n';
    // Each chunk is sent a piece at a time, so the body never completes within the limit.
    const res = await trickle(head, chunked, 100, 20_000);
    const answer = parseAnswer(res.text);
    expect(answer.status).toBe(408);
    expect(answer.head).toContain('connection: close');
    expect(JSON.parse(answer.body.replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n\r\n$/, ''))).toMatchObject({
      error: 'invalid_request',
    });
    expect(res.closed).toBe(true);
  }, 30_000);

  test('a body that arrives slowly but within the limit is handled as usual', async () => {
    const body = 'grant_type=client_credentials&client_id=nobody';
    const head =
      `POST /token HTTP/1.1\r\nHost: ${host()}\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    // About 0.5 s in all, well inside the 2 s limit.
    const res = await trickle(head, body, 10, 20_000);
    const answer = parseAnswer(res.text);
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'invalid_client' });
  }, 30_000);
});
