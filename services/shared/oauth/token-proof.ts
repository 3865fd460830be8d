// The DPoP proof a resource server receives with a DPoP-bound access token (RFC 9449 §7.1), checked
// on its behalf: by Introspect (when the caller passes the proof) and by Authorize (access-token
// mode, where a bound token without its proof is refused). One check, shared.
// Likewise the client certificate of a certificate-bound token (RFC 8705 §3, `cnf.x5t#S256`):
// verifyCertificateBinding is the one check Introspect, Authorize, the resource-server library and
// the RPC gate run, on every token (it also refuses confirmation methods nobody here checks).
import { timingSafeEqual } from "node:crypto";
import { x5tS256 } from "../x509/thumbprint.ts";
import type { PresentedCertificate } from "../x509/types.ts";
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

/**
 * The confirmation methods (RFC 7800 §3.1 `cnf` members) Mandate's tokens use: `jkt` (DPoP, RFC 9449
 * §6.1) and `x5t#S256` (mTLS, RFC 8705 §3.1). A token confirmed by any other method is refused
 * everywhere: whatever that method requires, no check here proves it (fail closed). A token with both
 * members (Mandate mints none) must satisfy both: each binding is checked on its own.
 */
export const CONFIRMATION_METHODS = ["jkt", "x5t#S256"] as const;

/** Why a token's certificate binding does not hold. */
export type CertificateBindingProblem = "certificate_required" | "certificate_mismatch" | "unsupported_confirmation";

export class CertificateBindingError extends Error {
  readonly problem: CertificateBindingProblem;
  constructor(problem: CertificateBindingProblem, message: string) {
    super(message);
    this.name = "CertificateBindingError";
    this.problem = problem;
  }
}

/** The client certificate a resource server received: its leaf's DER, or as presented-certificate.ts reads it. */
export type PresentedClientCertificate = Uint8Array | Pick<PresentedCertificate, "leaf">;

/**
 * RFC 8705 §3: a token whose `cnf` carries `x5t#S256` is good only with the client certificate whose
 * SHA-256 DER thumbprint (§3.1) it names — presented on the mutual-TLS connection that carried the
 * token (or by a configured TLS-terminating proxy). Without one, or with another, it is refused
 * (§3: "the protected resource MUST ... reject the request"); the chain is not this check's concern
 * (§3: the binding is to the certificate itself, self-signed ones included). Also refuses a `cnf`
 * that is not an object or names a confirmation method Mandate does not check (RFC 7800 §3.1).
 * Returns the certificate's thumbprint when the token is certificate-bound, undefined when not.
 */
export function verifyCertificateBinding(
  cnf: unknown,
  presented: PresentedClientCertificate | undefined,
): string | undefined {
  if (cnf === undefined) return undefined;
  requireKnownConfirmation(cnf);
  const bound = (cnf as Record<string, unknown>)["x5t#S256"];
  if (bound === undefined) return undefined;
  const expected = typeof bound === "string" ? thumbprintBytes(bound) : undefined;
  if (!expected) {
    throw new CertificateBindingError(
      "unsupported_confirmation",
      "the access token's cnf.x5t#S256 is not a SHA-256 thumbprint",
    );
  }
  if (!presented) {
    throw new CertificateBindingError(
      "certificate_required",
      "the access token is bound to a client certificate (cnf.x5t#S256): present it over mutual TLS",
    );
  }
  const leaf = presented instanceof Uint8Array ? presented : presented.leaf;
  const actual = x5tS256(leaf);
  // Constant time: the comparison must not tell an attacker how much of a thumbprint matched.
  if (!timingSafeEqual(Buffer.from(actual, "base64url"), expected)) {
    throw new CertificateBindingError(
      "certificate_mismatch",
      "the client certificate presented is not the one the access token is bound to",
    );
  }
  return actual;
}

function requireKnownConfirmation(cnf: unknown): void {
  if (typeof cnf !== "object" || cnf === null || Array.isArray(cnf)) {
    throw new CertificateBindingError("unsupported_confirmation", "the access token's cnf claim is not an object");
  }
  const unknown = Object.keys(cnf).filter((member) => !(CONFIRMATION_METHODS as readonly string[]).includes(member));
  if (unknown.length > 0) {
    throw new CertificateBindingError(
      "unsupported_confirmation",
      `the access token is bound by a confirmation method this server does not check (cnf.${unknown[0]})`,
    );
  }
}

/** The 32 bytes a base64url SHA-256 thumbprint (RFC 8705 §3.1: no padding) spells, or undefined. */
function thumbprintBytes(thumbprint: string): Buffer | undefined {
  const bytes = Buffer.from(thumbprint, "base64url");
  // Node decodes leniently: only the canonical spelling of 32 bytes is a thumbprint.
  return bytes.length === 32 && bytes.toString("base64url") === thumbprint ? bytes : undefined;
}
