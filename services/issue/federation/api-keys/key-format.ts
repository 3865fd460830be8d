// The text of a Mandate API key: `mdk_<id>_<secret><checksum>`. `mdk_` says what it is (a Mandate
// key) to people and secret scanners; the id (16 hex digits, random) is public and finds the stored
// row without a scan; the secret is 32 random bytes (base64url, 43 characters); the checksum (CRC-32
// of everything before it, 6 base62 digits, as GitHub's token format) lets a scanner tell a real key
// from a look-alike without asking Mandate. Only the SHA-256 of the whole key is stored.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { crc32 } from "node:zlib";

export const API_KEY_PREFIX = "mdk_";
const KEY_SHAPE = /^mdk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})([0-9A-Za-z]{6})$/;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

export interface NewApiKey {
  id: string;
  /** The key itself: handed to the caller once, never stored or logged. */
  key: string;
  /** SHA-256 of the key (base64url), what is stored. */
  hash: string;
}

export function newApiKey(): NewApiKey {
  const id = randomBytes(8).toString("hex");
  const key = withChecksum(`${API_KEY_PREFIX}${id}_${randomBytes(32).toString("base64url")}`);
  return { id, key, hash: apiKeyHash(key) };
}

/** `body` followed by its checksum: a key when `body` is `mdk_<id>_<secret>`. */
export function withChecksum(body: string): string {
  return `${body}${checksum(body)}`;
}

/** The id a well-formed key names (its checksum agrees), or undefined for anything else. */
export function apiKeyId(key: string): string | undefined {
  const match = KEY_SHAPE.exec(key);
  if (!match) return undefined;
  const body = key.slice(0, -6);
  return checksum(body) === match[3] ? match[1] : undefined;
}

/** The public start of a key with this id, shown in lists to recognise it. */
export function apiKeyPrefix(id: string): string {
  return `${API_KEY_PREFIX}${id}_`;
}

export function apiKeyHash(key: string): string {
  return createHash("sha256").update(key).digest("base64url");
}

/** Constant-time comparison of the presented key's hash with the stored one. */
export function hashMatches(key: string, storedHash: string): boolean {
  const presented = Buffer.from(apiKeyHash(key));
  const stored = Buffer.from(storedHash);
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

function checksum(body: string): string {
  let value = crc32(body);
  let digits = "";
  for (let i = 0; i < 6; i++) {
    digits = BASE62[value % 62] + digits;
    value = Math.floor(value / 62);
  }
  return digits;
}
