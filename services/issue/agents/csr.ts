// The agent's certificate signing request (PKCS#10, RFC 2986): the only thing Mandate takes from it
// is the public key, after checking that the request is signed by that key (proof of possession)
// and that the key is one we issue for. Its subject, SANs and requested extensions are ignored.
import "reflect-metadata";
import { createPublicKey, type KeyObject, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** PEM CSRs larger than this are not requests any agent needs to send (an RSA 8192 one is ~2.5 KB). */
const MAX_CSR_BYTES = 16 * 1024;
const CURVES: Record<string, string> = { prime256v1: "P-256", secp384r1: "P-384" };
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 8192;

/** Why a CSR is refused; the endpoint answers invalid_request with the message. */
export class CsrRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CsrRefused";
  }
}

export interface CheckedCsr {
  /** SubjectPublicKeyInfo DER: all the certificate takes from the request. */
  publicKeySpki: Uint8Array;
  /** e.g. "EC P-256", "RSA 3072", "Ed25519". */
  keyDescription: string;
}

/** Parses a PEM or DER CSR, checks its key and its self-signature, and returns its public key. */
export async function checkCsr(input: string | Uint8Array): Promise<CheckedCsr> {
  const request = parse(input);
  const spki = new Uint8Array(request.publicKey.rawData);
  const keyDescription = acceptedKey(spki);
  // RFC 2986 §3: the request is signed with the private key of the public key it carries, which
  // proves the requester holds it. A CSR whose signature does not verify buys nothing.
  let valid = false;
  try {
    valid = await request.verify();
  } catch (error) {
    throw new CsrRefused(`the CSR's signature cannot be verified: ${(error as Error).message}`);
  }
  if (!valid) throw new CsrRefused("the CSR's signature does not verify with its public key (RFC 2986 §3)");
  return { publicKeySpki: spki, keyDescription };
}

function parse(input: string | Uint8Array): x509.Pkcs10CertificateRequest {
  const size = typeof input === "string" ? Buffer.byteLength(input) : input.byteLength;
  if (size === 0) throw new CsrRefused("the CSR is empty");
  if (size > MAX_CSR_BYTES) throw new CsrRefused(`the CSR is larger than ${MAX_CSR_BYTES} bytes`);
  if (typeof input === "string" && !input.includes("-----BEGIN CERTIFICATE REQUEST-----")) {
    throw new CsrRefused('the CSR must be PEM ("-----BEGIN CERTIFICATE REQUEST-----")');
  }
  try {
    return new x509.Pkcs10CertificateRequest(typeof input === "string" ? input : new Uint8Array(input));
  } catch {
    throw new CsrRefused("the CSR is not a PKCS#10 certification request (RFC 2986)");
  }
}

/** The key's description when it is a type and size we issue for; else CsrRefused saying which are. */
function acceptedKey(spki: Uint8Array): string {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch {
    throw new CsrRefused("the CSR's public key is not a key this server can read");
  }
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === "ec") {
    const curve = CURVES[details.namedCurve ?? ""];
    if (!curve)
      throw new CsrRefused(`EC keys must be on P-256 or P-384, not ${details.namedCurve ?? "an unnamed curve"}`);
    return `EC ${curve}`;
  }
  if (type === "rsa") {
    const bits = details.modulusLength ?? 0;
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
      throw new CsrRefused(`RSA keys must have ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits, not ${bits}`);
    }
    return `RSA ${bits}`;
  }
  if (type === "ed25519") return "Ed25519";
  throw new CsrRefused(`${type ?? "this"} keys are not accepted: use EC P-256/P-384, Ed25519 or RSA 2048-8192`);
}
