// Event and decision ids: UUID version 7 (RFC 9562 §5.7), so ids sort by the time they were made and
// land at the end of the audit log's request-id index instead of at random places in it.
import { randomUUID } from "node:crypto";

/**
 * A UUIDv7: 48-bit Unix time in ms, version 7, then random bits under the RFC 4122 variant. The
 * random part comes from randomUUID (a v4 UUID: 122 random bits, the variant already set), which
 * Node draws from a pooled buffer — far cheaper per id than randomBytes(16).
 */
export function uuidV7(nowMs: number = Date.now()): string {
  const random = randomUUID(); // xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx
  // §5.7: unix_ts_ms, big-endian, in the first 48 bits; then ver = 0b0111 and 12 random bits.
  const time = (Math.max(0, Math.floor(nowMs)) % 2 ** 48).toString(16).padStart(12, "0");
  return `${time.slice(0, 8)}-${time.slice(8)}-7${random.slice(15)}`;
}
