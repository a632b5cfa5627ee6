import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { ConcurrencyLimit } from '../core/concurrency-limit.js';
import type { SafeFetchOptions } from './safe-fetch.js';
import { isForbiddenAddress, SafeFetchError, safeFetch } from './safe-fetch.js';

const servers: Server[] = [];

async function serve(handler: RequestListener): Promise<{ base: string; hits: () => number }> {
  let count = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    count++;
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, hits: () => count };
}

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          s.closeAllConnections();
          s.close(() => resolve());
        }),
    ),
  );
});

const strict: SafeFetchOptions & { accept: string } = {
  allowPrivate: false,
  timeoutMs: 2_000,
  maxBytes: 1024,
  accept: 'application/json',
};
const dev: SafeFetchOptions & { accept: string; expectJson: boolean } = {
  allowPrivate: true,
  timeoutMs: 2_000,
  maxBytes: 64,
  accept: 'application/json',
  expectJson: true,
};

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SafeFetchError);
    return (err as SafeFetchError).reason;
  }
  throw new Error('expected safeFetch to reject');
}

describe('isForbiddenAddress', () => {
  test.each([
    ['0.0.0.0', true],
    ['0.1.2.3', true],
    ['10.0.0.1', true],
    ['10.255.255.255', true],
    ['100.64.0.1', true],
    ['100.127.255.255', true],
    ['100.128.0.1', false],
    ['127.0.0.1', true],
    ['127.255.255.254', true],
    ['169.254.169.254', true],
    ['172.16.0.1', true],
    ['172.31.255.255', true],
    ['172.32.0.1', false],
    ['172.15.255.255', false],
    ['192.0.0.8', true],
    ['192.0.2.1', true],
    ['192.88.99.1', true],
    ['192.168.1.1', true],
    ['198.18.0.1', true],
    ['198.19.255.255', true],
    ['198.20.0.1', false],
    ['198.51.100.7', true],
    ['203.0.113.9', true],
    ['224.0.0.1', true],
    ['239.255.255.250', true],
    ['240.0.0.1', true],
    ['255.255.255.255', true],
    ['93.184.215.14', false],
    ['8.8.8.8', false],
    ['1.1.1.1', false],
    ['::', true],
    ['::1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['fc00::1', true],
    ['fd12:3456::1', true],
    ['fe80::1', true],
    ['fe80::1%eth0', true],
    ['febf:ffff::1', true],
    ['ff02::1', true],
    ['2001:db8::1', true],
    ['64:ff9b::7f00:1', true],
    ['64:ff9b::808:808', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:7f00:1', true],
    ['::FFFF:169.254.169.254', true],
    ['::ffff:10.1.2.3', true],
    ['::ffff:93.184.215.14', false],
    ['::127.0.0.1', true],
    ['2002:7f00:1::1', true],
    ['2606:4700::1111', false],
    ['2606:4700:4700::1001', false],
    ['2a00:1450:4001:82a::200e', false],
    ['not-an-ip', true],
    ['', true],
    ['1.2.3', true],
    ['1.2.3.256', true],
    ['01.2.3.4', true],
    ['1::2::3', true],
    ['1:2:3:4:5:6:7:8:9', true],
  ])('%s forbidden=%s', (ip, forbidden) => {
    expect(isForbiddenAddress(ip)).toBe(forbidden);
  });
});

describe('safeFetch refuses unsafe targets (allowPrivate=false)', () => {
  test('plain http to loopback is refused without connecting', async () => {
    const { base, hits } = await serve((_req, res) => res.end('{}'));
    expect(['invalid_url', 'forbidden_address']).toContain(await reasonOf(safeFetch(`${base}/x`, strict)));
    expect(hits()).toBe(0);
  });

  test('https to an IPv4 loopback literal is forbidden_address', async () => {
    expect(await reasonOf(safeFetch('https://127.0.0.1/', strict))).toBe('forbidden_address');
  });

  test('https to IPv6 literals that reach loopback is forbidden_address', async () => {
    expect(await reasonOf(safeFetch('https://[::1]/', strict))).toBe('forbidden_address');
    expect(await reasonOf(safeFetch('https://[::ffff:127.0.0.1]/', strict))).toBe('forbidden_address');
  });

  test('cloud metadata endpoint is forbidden_address', async () => {
    expect(await reasonOf(safeFetch('https://169.254.169.254/latest/meta-data/', strict))).toBe('forbidden_address');
  });

  test('a hostname resolving to loopback is forbidden_address', async () => {
    expect(await reasonOf(safeFetch('https://localhost/', strict))).toBe('forbidden_address');
  });

  test('userinfo is invalid_url', async () => {
    expect(await reasonOf(safeFetch('https://user:pw@example.com/', strict))).toBe('invalid_url');
  });

  test('non-http schemes and garbage are invalid_url', async () => {
    expect(await reasonOf(safeFetch('ftp://example.com/file', strict))).toBe('invalid_url');
    expect(await reasonOf(safeFetch('file:///etc/passwd', strict))).toBe('invalid_url');
    expect(await reasonOf(safeFetch('not a url', strict))).toBe('invalid_url');
  });

  test('error messages are safe to show', async () => {
    await expect(safeFetch('https://127.0.0.1/', strict)).rejects.toThrow('URL resolves to a forbidden address');
  });
});

describe('safeFetch against a local server (allowPrivate=true)', () => {
  test('200 JSON is returned with lowercased, joined headers', async () => {
    const { base } = await serve((req, res) => {
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.setHeader('X-Multi', ['a', 'b']);
      res.end(JSON.stringify({ accept: req.headers.accept, method: req.method }));
    });
    const out = await safeFetch(`${base}/doc?x=1`, dev);
    expect(out.status).toBe(200);
    expect(out.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(out.headers['x-multi']).toBe('a, b');
    expect(JSON.parse(out.body.toString('utf8'))).toEqual({ accept: 'application/json', method: 'GET' });
  });

  test('+json media types are accepted', async () => {
    const { base } = await serve((_req, res) => {
      res.setHeader('Content-Type', 'application/jwk-set+json');
      res.end('{"keys":[]}');
    });
    const out = await safeFetch(`${base}/jwks`, dev);
    expect(out.body.toString()).toBe('{"keys":[]}');
  });

  test('a body of exactly maxBytes is accepted', async () => {
    const { base } = await serve((_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(`"${'a'.repeat(dev.maxBytes - 2)}"`);
    });
    expect((await safeFetch(`${base}/`, dev)).body.length).toBe(dev.maxBytes);
  });

  test('redirects are not followed', async () => {
    const target = await serve((_req, res) => res.end('{}'));
    const { base } = await serve((_req, res) => {
      res.writeHead(302, { Location: `${target.base}/secret` });
      res.end();
    });
    expect(await reasonOf(safeFetch(`${base}/`, dev))).toBe('redirect');
    expect(target.hits()).toBe(0);
  });

  test('non-200 is status', async () => {
    const { base } = await serve((_req, res) => {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"secret":"internal detail"}');
    });
    const err = await safeFetch(`${base}/`, dev).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafeFetchError);
    expect((err as SafeFetchError).reason).toBe('status');
    expect((err as SafeFetchError).message).not.toContain('secret');
  });

  test('oversized body with Content-Length is too_large', async () => {
    const { base } = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(dev.maxBytes + 1) });
      res.end('x'.repeat(dev.maxBytes + 1));
    });
    expect(await reasonOf(safeFetch(`${base}/`, dev))).toBe('too_large');
  });

  test('oversized chunked body is too_large', async () => {
    const { base } = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('x'.repeat(dev.maxBytes));
      setTimeout(() => res.end('x'), 20);
    });
    expect(await reasonOf(safeFetch(`${base}/`, dev))).toBe('too_large');
  });

  test('a server that never answers is timeout within about timeoutMs', async () => {
    const { base } = await serve(() => {});
    const started = Date.now();
    expect(await reasonOf(safeFetch(`${base}/`, { ...dev, timeoutMs: 200 }))).toBe('timeout');
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(1_500);
  });

  test('a body that stalls is timeout too', async () => {
    const { base } = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{');
    });
    expect(await reasonOf(safeFetch(`${base}/`, { ...dev, timeoutMs: 200 }))).toBe('timeout');
  });

  test('wrong content type with expectJson is content_type', async () => {
    const { base } = await serve((_req, res) => {
      res.setHeader('Content-Type', 'text/html');
      res.end('<html></html>');
    });
    expect(await reasonOf(safeFetch(`${base}/`, dev))).toBe('content_type');
    const out = await safeFetch(`${base}/`, { ...dev, expectJson: false });
    expect(out.body.toString()).toBe('<html></html>');
  });

  test('plain http to a non-loopback host is refused even in dev', async () => {
    expect(await reasonOf(safeFetch('http://10.0.0.1/', dev))).toBe('invalid_url');
  });

  test('connection failures are network', async () => {
    const { base } = await serve((req) => req.socket.destroy());
    expect(await reasonOf(safeFetch(`${base}/`, dev))).toBe('network');
  });

  test('beyond the per-host cap a fetch is busy at once, without connecting; a finished fetch frees its slot', async () => {
    const waiting: ServerResponse[] = [];
    const { base, hits } = await serve((_req, res) => {
      waiting.push(res);
    });
    const limit = new ConcurrencyLimit({ perKey: 1, total: 10 });
    const first = safeFetch(`${base}/a`, { ...dev, limit });
    expect(await reasonOf(safeFetch(`${base}/b`, { ...dev, limit }))).toBe('busy');
    await expect.poll(() => waiting.length).toBe(1);
    waiting[0]!.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    expect((await first).status).toBe(200);
    expect(limit.inUse()).toBe(0);
    expect(hits()).toBe(1);
  });

  test('a POST sends its body and headers; statuses other than 200 can be accepted; Errand keeps its own host header', async () => {
    let seen: Record<string, string | undefined> = {};
    const { base } = await serve((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        seen = {
          method: req.method,
          body,
          auth: req.headers.authorization,
          host: req.headers.host,
          ua: req.headers['user-agent'],
        };
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_token"}');
      });
    });
    const out = await safeFetch(`${base}/rpc`, {
      ...dev,
      method: 'POST',
      headers: { authorization: 'Bearer t', host: 'evil.example', 'content-type': 'application/json' },
      body: Buffer.from('{"jsonrpc":"2.0"}'),
      acceptStatus: () => true,
    });
    expect(out.status).toBe(401);
    expect(seen).toEqual({
      method: 'POST',
      body: '{"jsonrpc":"2.0"}',
      auth: 'Bearer t',
      host: new URL(base).host,
      ua: 'Errand-AuthorizationServer',
    });
    // Without acceptStatus only 200 resolves.
    expect(await reasonOf(safeFetch(`${base}/rpc`, { ...dev, method: 'POST', body: Buffer.from('{}') }))).toBe(
      'status',
    );
  });
});
