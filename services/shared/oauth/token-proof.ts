// The DPoP proof a resource server receives with a DPoP-bound access token (RFC 9449 §7.1), checked
// on its behalf: by Introspect (when the caller passes the proof) and by Authorize (access-token
// mode, where a bound token without its proof is refused). One check, shared.
import { type DpopProof, DpopProofError, verifyDpopProof } from "./dpop.ts";
import type { ReplayCache } from "./replay.ts";

/** The proof as the protected request carried it: the `DPoP` header, the request's method and URI. */
export interface PresentedProof {
  proof: string;
  httpMethod: string;
  httpUri: string;
}

export interface TokenProofCheck {
  presented: PresentedProof;
  /** The access token the proof was sent with (its hash must be the proof's `ath`, §4.3 check 11). */
  accessToken: string;
  /** The thumbprint the token is bound to (`cnf.jkt`, §6.1). */
  boundJkt: string;
  replay: ReplayCache;
  skewMs: number;
  now: number;
}

/**
 * §7.1: the proof holds (§4.3: signature, `htm`, `htu`, `iat`, `ath`, first use) and its key is the
 * one the token is bound to. Throws DpopProofError (or DpopNonceRequired, ReplayStoreUnavailable).
 */
export async function verifyTokenProof(check: TokenProofCheck): Promise<DpopProof> {
  const proof = await verifyDpopProof({
    headers: check.presented.proof,
    method: check.presented.httpMethod,
    url: check.presented.httpUri,
    accessToken: check.accessToken,
    replay: check.replay,
    skewMs: check.skewMs,
    now: check.now,
  });
  if (proof.jkt !== check.boundJkt) throw new DpopProofError("the DPoP proof key is not the key the token is bound to");
  return proof;
}
