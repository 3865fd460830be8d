// Signing with a chosen key: what may be signed, the JWS compact serialisation of a JWT (RFC 7515
// §7.1) with a cached protected header, and the backend call.

import { invalidArgument } from "../shared/errors.ts";
import type { KeyPurposeName } from "../shared/signing.ts";
import { backendFailure } from "./backend-readiness.ts";
import type { KeyBackend } from "./backends/backend.ts";
import type { KeyRecord } from "./schedule.ts";

/** The agent CA's purposes: their keys sign only certificates and CRLs, through the CA (services/signer/ca/). */
export function isAgentCaPurpose(purpose: KeyPurposeName): purpose is "agent_ca_root" | "agent_ca" {
  return purpose === "agent_ca_root" || purpose === "agent_ca";
}

/** CA keys are published only as certificates, in the agent trust bundle. */
export function requireJwksPurpose(purpose: KeyPurposeName): void {
  if (isAgentCaPurpose(purpose)) {
    throw invalidArgument(
      [{ field: "purpose", description: "agent CA keys are published through GetAgentTrustBundle" }],
      "agent CA keys are published as certificates, through GetAgentTrustBundle",
    );
  }
}

/**
 * Token keys sign only JWTs, whose lifetime the Signer bounds (see requireTokenLifetime); agent CA
 * keys only certificates and CRLs the CA builds, so no one can get arbitrary bytes signed with them.
 */
export function requireRawSigningPurpose(purpose: KeyPurposeName): void {
  if (isAgentCaPurpose(purpose)) {
    throw invalidArgument(
      [{ field: "purpose", description: "agent CA keys sign only through IssueAgentCertificate and SignAgentCrls" }],
      "agent CA keys sign only certificates and CRLs, through IssueAgentCertificate and SignAgentCrls",
    );
  }
  if (purpose === "token_signing") {
    throw invalidArgument(
      [{ field: "purpose", description: "token keys sign only through SignJwt" }],
      "token keys sign only through SignJwt, which enforces the token lifetime",
    );
  }
}

/**
 * `exp` is required and may not be later than now + overlap: the key stays published at least that
 * long after it stops signing, so every token it signs verifies against the JWKS for its whole life
 * (RFC 7519 §4.1.4).
 */
export function requireTokenLifetime(claims: Record<string, unknown>, now: number, overlapMs: number): void {
  const exp = claims.exp;
  if (typeof exp !== "number" || !Number.isFinite(exp)) {
    throw invalidArgument([{ field: "claims", description: "a numeric exp (seconds since the epoch) is required" }]);
  }
  const longest = Math.floor((now + overlapMs) / 1000);
  if (exp > longest) {
    throw invalidArgument([
      {
        field: "claims",
        description: `exp is ${exp - Math.floor(now / 1000)} s away; the longest lifetime signed is ${Math.floor(overlapMs / 1000)} s (signer.overlap)`,
      },
    ]);
  }
}

export class KeySigner {
  readonly #backend: KeyBackend;
  readonly #headers = new Map<string, string>();

  constructor(backend: KeyBackend) {
    this.#backend = backend;
  }

  signWith(key: KeyRecord, data: Uint8Array): Promise<Uint8Array> {
    return this.#backend.sign(key.ref, key.alg, data).catch((error: unknown) => {
      throw backendFailure(error);
    });
  }

  /** The JWT with `claims`, signed by `key`, in compact serialisation. */
  async signJwt(key: KeyRecord, claims: Record<string, unknown>, typ: string | undefined): Promise<string> {
    const input = `${this.#encodedHeader(key, typ)}.${b64(JSON.stringify(claims))}`;
    const signature = await this.signWith(key, Buffer.from(input));
    const encoded = Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString("base64url");
    return `${input}.${encoded}`;
  }

  /** Only the Signer sets the header parameters that pick a key (RFC 8725 §3.1): alg, kid, typ. */
  #encodedHeader(key: KeyRecord, typ: string | undefined): string {
    const cacheKey = `${key.kid}|${typ ?? ""}`;
    let encoded = this.#headers.get(cacheKey);
    if (encoded === undefined) {
      const header: Record<string, string> = { alg: key.alg, kid: key.kid };
      if (typ) header.typ = typ;
      encoded = b64(JSON.stringify(header));
      if (this.#headers.size >= 256) this.#headers.clear(); // a few kids × a few typs in practice
      this.#headers.set(cacheKey, encoded);
    }
    return encoded;
  }
}

function b64(text: string): string {
  return Buffer.from(text).toString("base64url");
}
