// Event and decision ids: UUID version 7 (RFC 9562 §5.7), so ids sort by the time they were made and
// land at the end of the audit log's request-id index instead of at random places in it.
import { randomBytes } from "node:crypto";

/** A UUIDv7: 48-bit Unix time in ms, version 7, then random bits under the RFC 4122 variant. */
export function uuidV7(nowMs: number = Date.now()): string {
  const bytes = randomBytes(16);
  // §5.7: unix_ts_ms, big-endian, in the first 48 bits.
  bytes.writeUIntBE(Math.max(0, Math.floor(nowMs)) % 2 ** 48, 0, 6);
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x70; // ver = 0b0111
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80; // var = 0b10
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
