/**
 * Encryption at rest for secrets in the database (signing keys, upstream refresh tokens) with
 * AES-256-GCM under a single master key, plus loading or first-run creation of that key.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';

const KEY_LENGTH = 32;
// NIST SP 800-38D §8.2.2: random 96-bit IVs are safe for up to 2^32 messages under one key,
// far beyond what the broker seals.
const IV_LENGTH = 12;
// A full-length tag, pinned on decipher too: Node otherwise accepts truncated tags, which would
// make forgery much cheaper.
const TAG_LENGTH = 16;
const FORMAT_VERSION = 'v1';
const FINGERPRINT_LABEL = 'errand-master-key-check';
const ENV_KEY_ERROR = 'ERRAND_MASTER_KEY must be 32 bytes encoded as base64url or hex';
const HARD_LINK_UNSUPPORTED = ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV'];

export class CryptoBox {
  readonly #key: Buffer;
  /** Short key check value, stored beside sealed data so a wrong master key fails fast at start-up. */
  readonly fingerprint: string;

  constructor(key: Buffer) {
    if (key.length !== KEY_LENGTH) throw new Error(`master key must be ${KEY_LENGTH} bytes, got ${key.length}`);
    this.#key = Buffer.from(key);
    // An HMAC, not a hash of the key, so the check value is useless for a brute-force shortcut.
    this.fingerprint = createHmac('sha256', this.#key).update(FINGERPRINT_LABEL).digest('hex').slice(0, 16);
  }

  /** Encrypts `plaintext`, binding it to `aad` (e.g. a key id) so a ciphertext cannot be moved to another row. */
  seal(plaintext: Buffer, aad: string): string {
    const iv = randomBytes(IV_LENGTH);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_LENGTH });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const tag = cipher.getAuthTag();
    return `${FORMAT_VERSION}.${iv.toString('base64url')}.${ciphertext.toString('base64url')}.${tag.toString('base64url')}`;
  }

  /** Decrypts a value from `seal`; throws `Error('decryption failed')` on any tamper, wrong key or wrong AAD. */
  open(sealed: string, aad: string): Buffer {
    const parsed = parseSealed(sealed);
    if (!parsed) throw new Error('decryption failed');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, parsed.iv, { authTagLength: TAG_LENGTH });
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(parsed.tag);
      return Buffer.concat([decipher.update(parsed.ciphertext), decipher.final()]);
    } catch {
      // One uniform message: callers and logs must not learn which check failed.
      throw new Error('decryption failed');
    }
  }
}

/**
 * Loads the master key from the environment, else from `filePath`, else creates that file with a
 * fresh random key (callers do so only for a new database: see `readMasterKey`).
 */
export function loadMasterKey(opts: { envValue?: string; filePath: string }): {
  key: Buffer;
  source: 'env' | 'file' | 'generated';
} {
  const existing = readMasterKey(opts);
  if (existing) return existing;

  const key = randomBytes(KEY_LENGTH);
  if (writeKeyFileExclusive(opts.filePath, key)) return { key, source: 'generated' };
  // Another process created the file between our read and our write; its key wins.
  const winner = readKeyFile(opts.filePath);
  if (!winner) throw new Error(`master key file ${opts.filePath} vanished while starting`);
  return { key: winner, source: 'file' };
}

/** The master key from the environment, else from `filePath`; null when neither is there. Writes nothing. */
export function readMasterKey(opts: { envValue?: string; filePath: string }): {
  key: Buffer;
  source: 'env' | 'file';
} | null {
  if (opts.envValue !== undefined) {
    const key = decodeKey(opts.envValue);
    if (!key) throw new Error(ENV_KEY_ERROR);
    return { key, source: 'env' };
  }
  const existing = readKeyFile(opts.filePath);
  return existing ? { key: existing, source: 'file' } : null;
}

function parseSealed(sealed: string): { iv: Buffer; ciphertext: Buffer; tag: Buffer } | null {
  if (typeof sealed !== 'string') return null;
  const parts = sealed.split('.');
  if (parts.length !== 4 || parts[0] !== FORMAT_VERSION) return null;
  const iv = decodeBase64urlStrict(parts[1] ?? '');
  const ciphertext = decodeBase64urlStrict(parts[2] ?? '');
  const tag = decodeBase64urlStrict(parts[3] ?? '');
  if (!iv || !ciphertext || !tag || iv.length !== IV_LENGTH || tag.length !== TAG_LENGTH) return null;
  return { iv, ciphertext, tag };
}

// Empty is allowed because an empty plaintext seals to an empty ciphertext.
function decodeBase64urlStrict(input: string): Buffer | null {
  if (!/^[A-Za-z0-9_-]*$/.test(input)) return null;
  const bytes = Buffer.from(input, 'base64url');
  return bytes.toString('base64url') === input ? bytes : null;
}

// 64 hex digits are tested first: that string is also valid base64 but would decode to 48 bytes.
function decodeKey(text: string): Buffer | null {
  const value = text.trim();
  let key: Buffer;
  if (/^[0-9a-fA-F]{64}$/.test(value)) {
    key = Buffer.from(value, 'hex');
  } else if (/^[A-Za-z0-9_-]+={0,2}$/.test(value) || /^[A-Za-z0-9+/]+={0,2}$/.test(value)) {
    key = Buffer.from(value.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_'), 'base64url');
  } else {
    return null;
  }
  return key.length === KEY_LENGTH ? key : null;
}

function readKeyFile(filePath: string): Buffer | null {
  let fd: number;
  try {
    fd = openSync(filePath, 'r');
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT')) return null;
    throw err;
  }
  try {
    // fstat on the open descriptor, so the mode we check belongs to the file we read.
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error(`master key file ${filePath} is not a regular file`);
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      throw new Error(
        `master key file ${filePath} is accessible by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`,
      );
    }
    const key = decodeKey(readFileSync(fd, 'utf8'));
    if (!key) throw new Error(`master key file ${filePath} must contain 32 bytes encoded as base64url or hex`);
    return key;
  } finally {
    closeSync(fd);
  }
}

/**
 * Publishes the key file atomically: the key is written to a private temp file and then hard-linked
 * into place, which fails with EEXIST if another process got there first. A plain `wx` write of the
 * final path would let a racing reader see the file after creation but before its bytes land.
 * Returns false if another process won.
 */
function writeKeyFileExclusive(filePath: string, key: Buffer): boolean {
  mkdirSync(dirname(filePath), { recursive: true, mode: 0o700 });
  const contents = `${key.toString('base64url')}\n`;
  const tempPath = `${filePath}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tempPath, 'wx', 0o600);
  try {
    try {
      writeFileSync(fd, contents);
      // Data sealed under this key is unrecoverable if a crash leaves the file empty.
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tempPath, filePath);
      return true;
    } catch (err) {
      if (isErrnoCode(err, 'EEXIST')) return false;
      if (!HARD_LINK_UNSUPPORTED.some((code) => isErrnoCode(err, code))) throw err;
    }
  } finally {
    unlinkSync(tempPath);
  }
  // Some mounted volumes refuse hard links; an exclusive create is the best remaining guarantee.
  try {
    writeFileSync(filePath, contents, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    if (isErrnoCode(err, 'EEXIST')) return false;
    throw err;
  }
}

function isErrnoCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}
