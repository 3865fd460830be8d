// Opaque handles (authorization codes, refresh tokens, request URIs, registration access tokens,
// interaction ids, login sessions): 256 random bits, of which only a SHA-256 hash is ever stored, so a
// database leak hands out no usable handle. One hash function, so issuer and verifiers always agree.
import { createHash, randomBytes } from "node:crypto";

/** A new handle, prefixed so a leaked one is recognisable (secret scanning). */
export function opaqueHandle(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString("base64url")}`;
}

/** What the store keeps of a handle, and looks it up by. */
export function handleHash(handle: string): string {
  return createHash("sha256").update(handle).digest("base64url");
}
