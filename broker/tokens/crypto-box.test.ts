import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { CryptoBox, loadMasterKey } from './crypto-box.js';

const here = dirname(fileURLToPath(import.meta.url));
const tempRoot = mkdtempSync(join(tmpdir(), 'errand-crypto-box-'));
afterAll(() => rmSync(tempRoot, { recursive: true, force: true }));

let counter = 0;
function freshPath(): string {
  counter += 1;
  return join(tempRoot, `case-${counter}`, 'nested', 'master.key');
}

// Flips one bit in one base64url part of a sealed value, keeping the encoding canonical.
function flipBit(sealed: string, part: number): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[part] ?? '', 'base64url');
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  parts[part] = bytes.toString('base64url');
  return parts.join('.');
}

describe('CryptoBox', () => {
  const key = randomBytes(32);
  const box = new CryptoBox(key);

  test('round-trips, including empty and binary plaintexts', () => {
    for (const plaintext of [Buffer.from('refresh-token-xyz'), Buffer.alloc(0), randomBytes(4096)]) {
      const sealed = box.seal(plaintext, 'kid-1');
      expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/);
      expect(box.open(sealed, 'kid-1')).toEqual(plaintext);
    }
  });

  test('uses a fresh IV each time', () => {
    const a = box.seal(Buffer.from('same'), 'aad');
    const b = box.seal(Buffer.from('same'), 'aad');
    expect(a).not.toBe(b);
    expect(a.split('.')[1]).not.toBe(b.split('.')[1]);
  });

  test('does not leak the plaintext into the sealed string', () => {
    const sealed = box.seal(Buffer.from('super-secret-value'), 'aad');
    expect(sealed).not.toContain('super-secret');
    expect(Buffer.from(sealed.split('.')[2] ?? '', 'base64url').toString()).not.toContain('super-secret');
  });

  test.each([
    ['iv', 1],
    ['ciphertext', 2],
    ['tag', 3],
  ])('tampered %s throws "decryption failed"', (_name, part) => {
    const sealed = box.seal(Buffer.from('hello world'), 'aad');
    expect(() => box.open(flipBit(sealed, part), 'aad')).toThrow(/^decryption failed$/);
  });

  test('malformed sealed values throw "decryption failed"', () => {
    const sealed = box.seal(Buffer.from('x'), 'aad');
    const [, iv, ct, tag = ''] = sealed.split('.');
    const bad = [
      '',
      'v2' + sealed.slice(2),
      `v1.${iv}.${ct}`,
      `${sealed}.extra`,
      // A truncated but otherwise genuine tag: GCM would accept it unless the length is pinned.
      `v1.${iv}.${ct}.${Buffer.from(tag, 'base64url').subarray(0, 12).toString('base64url')}`,
      `v1.${iv}.${ct}.${tag}=`,
    ];
    for (const value of bad) expect(() => box.open(value, 'aad'), value).toThrow(/^decryption failed$/);
  });

  test('wrong AAD throws', () => {
    const sealed = box.seal(Buffer.from('hello'), 'kid-1');
    expect(() => box.open(sealed, 'kid-2')).toThrow('decryption failed');
    expect(() => box.open(sealed, '')).toThrow('decryption failed');
  });

  test('wrong key throws', () => {
    const sealed = box.seal(Buffer.from('hello'), 'aad');
    expect(() => new CryptoBox(randomBytes(32)).open(sealed, 'aad')).toThrow('decryption failed');
  });

  test('the caller mutating its key buffer does not change the box', () => {
    const k = randomBytes(32);
    const b = new CryptoBox(k);
    const sealed = b.seal(Buffer.from('hi'), 'a');
    k.fill(0);
    expect(b.open(sealed, 'a').toString()).toBe('hi');
  });

  test('fingerprint is stable per key, differs across keys, and is not the key', () => {
    expect(box.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(new CryptoBox(Buffer.from(key)).fingerprint).toBe(box.fingerprint);
    expect(new CryptoBox(randomBytes(32)).fingerprint).not.toBe(box.fingerprint);
    expect(key.toString('hex')).not.toContain(box.fingerprint);
  });

  test('rejects keys that are not 32 bytes', () => {
    expect(() => new CryptoBox(randomBytes(16))).toThrow();
    expect(() => new CryptoBox(randomBytes(33))).toThrow();
  });
});

describe('loadMasterKey', () => {
  test('accepts an env value as base64url, base64 or hex', () => {
    const key = randomBytes(32);
    const filePath = freshPath();
    for (const envValue of [
      key.toString('base64url'),
      key.toString('base64'),
      key.toString('hex'),
      key.toString('hex').toUpperCase(),
      `  ${key.toString('base64url')}\n`,
    ]) {
      const loaded = loadMasterKey({ envValue, filePath });
      expect(loaded.source).toBe('env');
      expect(loaded.key).toEqual(key);
    }
  });

  test('refuses an env value of the wrong length, naming the variable', () => {
    const filePath = freshPath();
    for (const envValue of [
      randomBytes(16).toString('base64url'),
      randomBytes(31).toString('hex'),
      randomBytes(33).toString('base64'),
      'not a key!',
      '',
    ]) {
      expect(() => loadMasterKey({ envValue, filePath }), envValue).toThrow(
        'ERRAND_MASTER_KEY must be 32 bytes encoded as base64url or hex',
      );
    }
  });

  test('generates a 0600 file in a 0700 directory on first run, then reads it back', () => {
    const filePath = freshPath();
    const first = loadMasterKey({ filePath });
    expect(first.source).toBe('generated');
    expect(first.key).toHaveLength(32);
    if (process.platform !== 'win32') {
      expect(statSync(filePath).mode & 0o777).toBe(0o600);
      expect(statSync(dirname(filePath)).mode & 0o077).toBe(0);
    }
    expect(readdirSync(dirname(filePath))).toEqual(['master.key']); // temp file cleaned up

    const second = loadMasterKey({ filePath });
    expect(second.source).toBe('file');
    expect(second.key).toEqual(first.key);
  });

  test('reads a hex file with surrounding whitespace', () => {
    const filePath = join(tempRoot, 'hex.key');
    const key = randomBytes(32);
    writeFileSync(filePath, `\n${key.toString('hex')}  \n`, { mode: 0o600 });
    expect(loadMasterKey({ filePath })).toEqual({ key, source: 'file' });
  });

  test.skipIf(process.platform === 'win32')('refuses a group- or world-readable file, naming the path', () => {
    for (const mode of [0o644, 0o640, 0o604]) {
      const filePath = join(tempRoot, `loose-${mode.toString(8)}.key`);
      writeFileSync(filePath, randomBytes(32).toString('base64url'));
      chmodSync(filePath, mode);
      expect(() => loadMasterKey({ filePath })).toThrow(filePath);
    }
  });

  test('refuses a file with a malformed key, naming the path', () => {
    const filePath = join(tempRoot, 'short.key');
    writeFileSync(filePath, randomBytes(16).toString('base64url'), { mode: 0o600 });
    expect(() => loadMasterKey({ filePath })).toThrow(filePath);
  });

  test('the env value wins over an existing file', () => {
    const filePath = freshPath();
    const generated = loadMasterKey({ filePath });
    const envKey = randomBytes(32);
    const loaded = loadMasterKey({ envValue: envKey.toString('base64url'), filePath });
    expect(loaded).toEqual({ key: envKey, source: 'env' });
    expect(loaded.key).not.toEqual(generated.key);
  });

  test('sequential loads of a fresh path agree', async () => {
    const filePath = freshPath();
    const [a, b] = await Promise.all([
      Promise.resolve().then(() => loadMasterKey({ filePath })),
      Promise.resolve().then(() => loadMasterKey({ filePath })),
    ]);
    expect(a?.key).toEqual(b?.key);
    expect([a?.source, b?.source].sort()).toEqual(['file', 'generated']);
  });

  test('concurrent processes loading a fresh path all agree on one key', async () => {
    const filePath = freshPath();
    const modulePath = resolve(here, 'crypto-box.ts');
    const tsx = resolve(here, '../../node_modules/.bin/tsx');
    const script = `
      import { loadMasterKey } from ${JSON.stringify(modulePath)};
      // Start together so the processes really race for the file.
      while (Date.now() < ${Date.now() + 2500}) {}
      const { key, source } = loadMasterKey({ filePath: ${JSON.stringify(filePath)} });
      process.stdout.write(JSON.stringify({ key: key.toString('hex'), source }));
    `;
    const runs = Array.from({ length: 6 }, () => runScript(tsx, script));
    const results = (await Promise.all(runs)).map((out) => JSON.parse(out) as { key: string; source: string });

    const keys = new Set(results.map((r) => r.key));
    expect(keys.size).toBe(1);
    expect(results.filter((r) => r.source === 'generated')).toHaveLength(1);
    const onDisk = readFileSync(filePath, 'utf8').trim();
    expect(Buffer.from(onDisk, 'base64url').toString('hex')).toBe([...keys][0]);
    expect(readdirSync(dirname(filePath))).toEqual(['master.key']);
  });
});

function runScript(tsx: string, script: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(tsx, ['--eval', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise(stdout);
      else reject(new Error(`child exited ${code}: ${stderr}`));
    });
  });
}
