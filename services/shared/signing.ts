// How services sign: through the Signer, whose private keys never leave it. Every service gets a
// SigningClient — the Signer's key manager itself when it runs in the same process (no
// serialisation on the hot path), or a client of its gRPC API when it runs elsewhere
// (services/signer/client.ts). Both fail with the same gRPC status codes, so callers do not care.
import type { JWK } from "jose";

/** What a key signs: access and ID tokens, or audit-log checkpoints. */
export const KEY_PURPOSES = ["token_signing", "audit_checkpoint"] as const;
export type KeyPurposeName = (typeof KEY_PURPOSES)[number];

export interface SigningClient {
  signJwt(
    tenant: string,
    claims: Record<string, unknown>,
    typ?: string,
  ): Promise<{ jwt: string; kid: string; alg: string }>;
  sign(
    tenant: string,
    purpose: KeyPurposeName,
    payload: Uint8Array,
  ): Promise<{ signature: Uint8Array; kid: string; alg: string }>;
  jwks(tenant: string, purpose: KeyPurposeName): Promise<{ jwks: { keys: JWK[] }; maxAgeSeconds: number }>;
}
