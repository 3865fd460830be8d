// PKCE (RFC 7636), S256 only: OAuth 2.1 §4.1.1 requires PKCE and forbids `plain` where S256 works.
import { createHash, timingSafeEqual } from "node:crypto";
import { InvalidGrant, InvalidRequest } from "./errors.ts";

/** RFC 7636 §4.1: 43-128 unreserved characters. */
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
/** BASE64URL(SHA-256(verifier)) is always 43 characters. */
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

/** Validates the challenge of an authorization request. */
export function requireS256Challenge(challenge: string | undefined, method: string | undefined): string {
  if (!challenge) throw new InvalidRequest("code_challenge is required (PKCE, RFC 7636)");
  // RFC 7636 §4.3: an absent method means "plain", which we refuse (PKCE downgrade).
  if (method !== "S256") throw new InvalidRequest("code_challenge_method must be S256");
  if (!CHALLENGE.test(challenge)) throw new InvalidRequest("code_challenge is not a base64url SHA-256 value");
  return challenge;
}

/** RFC 7636 §4.6: the verifier must hash to the stored challenge. */
export function verifyCodeVerifier(verifier: string | undefined, challenge: string): void {
  if (!verifier) throw new InvalidGrant("code_verifier is required");
  if (!VERIFIER.test(verifier)) throw new InvalidGrant("code_verifier is malformed");
  const computed = Buffer.from(createHash("sha256").update(verifier).digest("base64url"));
  const expected = Buffer.from(challenge);
  if (computed.length !== expected.length || !timingSafeEqual(computed, expected)) {
    throw new InvalidGrant("code_verifier does not match the code_challenge");
  }
}
