// JWKS publication: a tenant purpose's published keys as a JWK Set (RFC 7517 §5), in the order
// publishedKeys gives (the signing key first), each with the parameters a verifier selects by.
import type { JWK } from "jose";
import { type KeyRecord, publishedKeys } from "./schedule.ts";

export interface JwkSet {
  keys: JWK[];
}

export function jwkSet(keys: readonly KeyRecord[], now: number): JwkSet {
  return {
    keys: publishedKeys(keys, now).map((key) => ({ ...key.publicJwk, kid: key.kid, use: "sig", alg: key.alg })),
  };
}
