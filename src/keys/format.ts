import { randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API key format: `mf_<environment>_<26 random base62><6 base62 CRC32>`, e.g.
 * `mf_live_3kT9…Qz0aB1c`. The fixed prefix lets secret scanners (and people) recognise a leaked
 * key; 26 base62 characters are 154 random bits, 131 of them after the 4 shown in `start`; the
 * CRC32 of everything before it refuses typos and truncations without touching the database.
 */
export type KeyEnvironment = 'live' | 'test';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_CHARS = 26;
const CHECKSUM_CHARS = 6; // 62^6 > 2^32
const START_RANDOM_CHARS = 4;
const KEY_SHAPE = new RegExp(`^mf_(live|test)_([0-9A-Za-z]{${RANDOM_CHARS}})([0-9A-Za-z]{${CHECKSUM_CHARS}})$`);
export const KEY_LENGTH = 'mf_live_'.length + RANDOM_CHARS + CHECKSUM_CHARS;

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (IEEE), as zlib and secret scanners compute it; zlib.crc32 needs Node 20.15+. */
export function crc32(text: string): number {
  let crc = 0xffffffff;
  for (const byte of Buffer.from(text, 'utf8')) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function base62Fixed(value: number, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = ALPHABET[value % 62]! + out;
    value = Math.floor(value / 62);
  }
  return out;
}

/** Uniform base62: bytes ≥ 248 (= 4 × 62) are discarded so no character is more likely. */
function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

const checksumOf = (body: string) => base62Fixed(crc32(body), CHECKSUM_CHARS);

export interface GeneratedKey {
  secret: string;
  /** Non-secret beginning, safe to store and display. */
  start: string;
}

export function generateKey(environment: KeyEnvironment): GeneratedKey {
  const body = `mf_${environment}_${randomBase62(RANDOM_CHARS)}`;
  return { secret: body + checksumOf(body), start: displayStart(body) };
}

const displayStart = (body: string) => body.slice(0, `mf_xxxx_`.length + START_RANDOM_CHARS);

export type ParsedKey = { ok: true; environment: KeyEnvironment; start: string } | { ok: false; reason: 'malformed_key' | 'bad_checksum' };

/** Checks shape and checksum only: everything that can be refused without a lookup. */
export function parseKey(candidate: string): ParsedKey {
  const match = KEY_SHAPE.exec(candidate);
  if (!match) return { ok: false, reason: 'malformed_key' };
  const body = candidate.slice(0, candidate.length - CHECKSUM_CHARS);
  // The checksum is public information, but comparing in constant time costs nothing and keeps
  // "compare secrets-shaped strings with timingSafeEqual" a rule without exceptions.
  if (!timingSafeEqual(Buffer.from(checksumOf(body)), Buffer.from(match[3]!))) return { ok: false, reason: 'bad_checksum' };
  return { ok: true, environment: match[1] as KeyEnvironment, start: displayStart(body) };
}
