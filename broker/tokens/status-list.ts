import { deflateSync, inflateSync } from 'node:zlib';

/**
 * Token Status List encoding (draft-ietf-oauth-status-list §4): one status per token, `bits` wide,
 * packed from the least significant bit of each byte, DEFLATE in ZLIB format, base64url.
 */
export type StatusBits = 1 | 2 | 4 | 8;

/** Encodes statuses (index → value) into the compressed `lst` value of `size` entries. */
export function encodeStatusList(size: number, set: Iterable<[number, number]>, bits: StatusBits = 1): string {
  const bytes = Buffer.alloc(Math.max(1, Math.ceil((size * bits) / 8)));
  const mask = (1 << bits) - 1;
  for (const [idx, value] of set) {
    if (idx < 0 || idx >= size) throw new RangeError(`status index ${idx} outside the list of ${size}`);
    const bit = idx * bits;
    const byte = bit >> 3;
    const shift = bit & 7;
    bytes[byte] = (bytes[byte]! & ~(mask << shift)) | ((value & mask) << shift);
  }
  return deflateSync(bytes, { level: 9 }).toString('base64url');
}

/** Reads the status at `idx` from an `lst` value; null when `idx` is beyond the list (§8.3 step 6). */
export function readStatus(lst: string, idx: number, bits: StatusBits = 1): number | null {
  const bytes = inflateSync(Buffer.from(lst, 'base64url'));
  const bit = idx * bits;
  const byte = bit >> 3;
  if (idx < 0 || byte >= bytes.length) return null;
  return (bytes[byte]! >> (bit & 7)) & ((1 << bits) - 1);
}
