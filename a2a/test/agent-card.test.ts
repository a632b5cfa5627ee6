import { type AgentCard, canonicalizeAgentCard, verifyAgentCardSignature } from '@a2a-js/sdk';
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import { base64url, type CryptoKey, decodeProtectedHeader, flattenedVerify, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { adminApi, startBroker, type TestBroker } from '../../broker/test/fixtures.js';

let tb: TestBroker;
let cardUrl: string;

beforeAll(async () => {
  tb = await startBroker();
  cardUrl = `${tb.url}/.well-known/agent-card.json`;
});
afterAll(() => tb.close());

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Signature = { protected: string; signature: string; header?: Record<string, unknown> };
type RawCard = Record<string, Json> & { signatures: Signature[] };

/** RFC 8785, written here from the RFC so the check does not lean on the SDK (cards hold no floats). */
function jcs(value: Json): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(jcs).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${jcs(value[k]!)}`).join(',')}}`;
}

async function fetchCard(): Promise<{ res: Response; text: string; card: RawCard }> {
  const res = await fetch(cardUrl);
  const text = await res.text();
  return { res, text, card: JSON.parse(text) as RawCard };
}

async function publishedKey(kid: string, jku?: string) {
  expect(jku).toBe(`${tb.url}/jwks.json`);
  const jwks = (await (await fetch(jku!)).json()) as { keys: (JWK & { kid: string; alg: string })[] };
  const jwk = jwks.keys.find((k) => k.kid === kid);
  if (!jwk) throw new Error(`kid ${kid} is not published`);
  return (await importJWK(jwk, jwk.alg)) as CryptoKey;
}

/** A2A §8.4.2 by hand: JWS over the JCS form of the served card without `signatures`. */
async function verifyIndependently(card: RawCard): Promise<string> {
  const { signatures, ...unsigned } = card;
  const [sig] = signatures;
  const header = decodeProtectedHeader({ protected: sig!.protected, signature: sig!.signature });
  const key = await publishedKey(header.kid!, header.jku);
  const payload = base64url.encode(jcs(unsigned));
  await flattenedVerify({ payload, protected: sig!.protected, signature: sig!.signature }, key);
  return header.kid!;
}

const sdkVerify = verifyAgentCardSignature(publishedKey);

describe('the Agent Card at /.well-known/agent-card.json', () => {
  test('has the A2A 1.0 fields, the 0.3 interface mirror, the OAuth schemes and the four skills', async () => {
    const { res, card } = await fetchCard();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(card).toMatchObject({
      name: 'Errand',
      version: expect.any(String),
      provider: { organization: 'Errand', url: tb.url },
      capabilities: { streaming: true, extendedAgentCard: true },
      defaultInputModes: expect.arrayContaining(['application/json']),
      defaultOutputModes: expect.arrayContaining(['application/json']),
    });
    expect(card.description).toEqual(expect.any(String));
    expect(card.supportedInterfaces).toEqual([
      { url: `${tb.url}/a2a`, protocolBinding: 'JSONRPC', protocolVersion: '1.0' },
      { url: `${tb.url}/a2a`, protocolBinding: 'JSONRPC', protocolVersion: '0.3' },
    ]);
    const metadataUrl = `${tb.url}/.well-known/oauth-authorization-server`;
    // 0.3 clients (A2A 0.3 §5.5): endpoint, transport, version, and typed schemes beside the 1.0 oneof.
    expect(card).toMatchObject({
      url: `${tb.url}/a2a`,
      preferredTransport: 'JSONRPC',
      additionalInterfaces: [{ url: `${tb.url}/a2a`, transport: 'JSONRPC' }],
      protocolVersion: '0.3.0',
      supportsAuthenticatedExtendedCard: true,
      security: [
        { errand_agent: ['errand:delegate', 'errand:tasks'] },
        { errand_user: ['errand:delegate', 'errand:tasks'] },
      ],
    });
    expect(card.securitySchemes).toMatchObject({
      errand_agent: {
        type: 'oauth2',
        flows: { clientCredentials: { tokenUrl: `${tb.url}/token` } },
        oauth2MetadataUrl: metadataUrl,
      },
      errand_user: { type: 'oauth2', flows: { authorizationCode: { authorizationUrl: `${tb.url}/authorize` } } },
    });
    expect(card.securitySchemes).toMatchObject({
      errand_agent: {
        oauth2SecurityScheme: {
          description: expect.stringContaining('client_credentials'),
          flows: {
            clientCredentials: {
              tokenUrl: `${tb.url}/token`,
              scopes: { 'errand:delegate': expect.any(String), 'errand:tasks': expect.any(String) },
            },
          },
          oauth2MetadataUrl: metadataUrl,
        },
      },
      errand_user: {
        oauth2SecurityScheme: {
          description: expect.stringContaining('PKCE'),
          flows: {
            authorizationCode: {
              authorizationUrl: `${tb.url}/authorize`,
              tokenUrl: `${tb.url}/token`,
              refreshUrl: `${tb.url}/token`,
              scopes: { 'errand:delegate': expect.any(String), 'errand:tasks': expect.any(String) },
              pkceRequired: true,
            },
          },
          oauth2MetadataUrl: metadataUrl,
        },
      },
    });
    expect(card.securityRequirements).toEqual([
      { schemes: { errand_agent: { list: ['errand:delegate', 'errand:tasks'] } } },
      { schemes: { errand_user: { list: ['errand:delegate', 'errand:tasks'] } } },
    ]);
    const skills = card.skills as Record<string, Json>[];
    expect(skills.map((s) => s.id)).toEqual([
      'request_delegation',
      'issue_task_token',
      'delegate_to_subagent',
      'end_task',
    ]);
    for (const s of skills) {
      expect(s).toMatchObject({
        name: expect.any(String),
        description: expect.any(String),
        tags: expect.any(Array),
        examples: [expect.stringContaining(`"skill":"${s.id}"`)],
        inputModes: ['application/json', 'text/plain'],
        outputModes: ['application/json', 'text/plain'],
      });
    }
    // Token exchange has no flow type in A2A: the skills that perform one say so.
    expect(skills.find((s) => s.id === 'issue_task_token')?.description).toContain('RFC 8693');
  });

  test('signatures[0] verifies with the published key over the JCS form of exactly the served JSON', async () => {
    const { card } = await fetchCard();
    // [0] over the whole served card; [1] over the 1.0 form the SDK's verifier re-derives.
    expect(card.signatures).toHaveLength(2);
    const header = decodeProtectedHeader(card.signatures[0]!);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'JOSE', jku: `${tb.url}/jwks.json` });
    expect(await verifyIndependently(card)).toBe(header.kid);
    // The SDK's verifier agrees, on the raw fetched JSON (through [1]; it logs [0]'s miss with console.debug).
    const debug = vi.spyOn(console, 'debug').mockImplementation(() => {});
    await expect(sdkVerify(card as unknown as AgentCard)).resolves.toBeUndefined();
    debug.mockRestore();
    // The SDK re-derives a 1.0-only payload (0.3 fields dropped), which [1] signs; [0] covers every
    // served byte, securitySchemes included (a2aproject/a2a-js#663).
    const { signatures: _, ...unsigned } = card;
    const sdkPayload = canonicalizeAgentCard(card as unknown as AgentCard);
    expect(sdkPayload).not.toBe(jcs(unsigned));
    expect(sdkPayload).toContain('"oauth2SecurityScheme"');
    const second = card.signatures[1]!;
    await flattenedVerify(
      { payload: base64url.encode(sdkPayload), protected: second.protected, signature: second.signature },
      await publishedKey(header.kid!, header.jku),
    );
  });

  test('a tampered card fails verification, whichever field is changed', async () => {
    const { card } = await fetchCard();
    // The SDK's verifier logs each failed entry with console.debug.
    const debug = vi.spyOn(console, 'debug').mockImplementation(() => {});
    const tamperings: ((c: RawCard) => void)[] = [
      (c) => {
        c.name = 'Errand (totally)';
      },
      (c) => {
        const schemes = c.securitySchemes as Record<string, Record<string, Record<string, Json>>>;
        const flows = schemes.errand_agent!.oauth2SecurityScheme!.flows as Record<string, Record<string, Json>>;
        flows.clientCredentials!.tokenUrl = 'https://evil.example/token';
      },
      (c) => {
        (c.supportedInterfaces as Record<string, Json>[])[0]!.url = 'https://evil.example/a2a';
      },
    ];
    // A 0.3-only field is covered by signatures[0] (the SDK's 1.0 verifier does not read it).
    const legacy = structuredClone(card);
    legacy.url = 'https://evil.example/a2a';
    await expect(verifyIndependently(legacy)).rejects.toThrow();
    for (const tamper of tamperings) {
      const bad = structuredClone(card);
      tamper(bad);
      await expect(verifyIndependently(bad)).rejects.toThrow();
      await expect(sdkVerify(bad as unknown as AgentCard)).rejects.toThrow();
    }
    debug.mockRestore();
  });

  test('is cacheable: max-age, a strong ETag, the same signed bytes, and 304 for If-None-Match', async () => {
    const first = await fetchCard();
    const second = await fetchCard();
    expect(first.res.headers.get('cache-control')).toBe('public, max-age=300');
    const etag = first.res.headers.get('etag')!;
    expect(etag).toMatch(/^"[^"]+"$/);
    // Signed once per key: ES256 signatures are randomised, so a second signing would differ.
    expect(second.text).toBe(first.text);
    expect(second.res.headers.get('etag')).toBe(etag);

    const cached = await fetch(cardUrl, { headers: { 'if-none-match': etag } });
    expect(cached.status).toBe(304);
    expect(cached.headers.get('etag')).toBe(etag);
    expect(await cached.text()).toBe('');
    expect((await fetch(cardUrl, { headers: { 'if-none-match': `"other", W/${etag}` } })).status).toBe(304);
    expect((await fetch(cardUrl, { headers: { 'if-none-match': '"other"' } })).status).toBe(200);
  });

  test('the SDK client resolves the card and picks the 1.0 JSON-RPC interface', async () => {
    const factory = new ClientFactory(
      ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
        transports: [new JsonRpcTransportFactory({ legacyCompat: { enabled: true } })],
      }),
    );
    const client = await factory.createFromUrl(tb.url);
    expect(client.protocolVersion).toBe('1.0');
  });

  test('a new current signing key re-signs the card (new kid, new ETag)', async () => {
    const before = await fetchCard();
    const oldKid = decodeProtectedHeader(before.card.signatures[0]!).kid;
    const api = await adminApi(tb);
    const res = await api.call('POST', '/api/admin/keys/rotate');
    expect(res.status).toBe(202);
    const { kid, activates_at: activatesAt } = (await res.json()) as { kid: string; activates_at: number };
    tb.clock.advance(activatesAt - tb.clock.now() + 1);
    await tb.broker.maintain();

    const after = await fetchCard();
    expect(decodeProtectedHeader(after.card.signatures[0]!).kid).toBe(kid);
    expect(kid).not.toBe(oldKid);
    expect(after.res.headers.get('etag')).not.toBe(before.res.headers.get('etag'));
    expect(await verifyIndependently(after.card)).toBe(kid);
    const stale = await fetch(cardUrl, { headers: { 'if-none-match': before.res.headers.get('etag')! } });
    expect(stale.status).toBe(200);
  });
});
