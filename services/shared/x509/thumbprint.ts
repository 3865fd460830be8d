// RFC 8705 §3.1: a certificate's thumbprint, the `x5t#S256` confirmation of a certificate-bound token
// and the `x5t#S256` JWK member: the base64url (no padding) SHA-256 of the certificate's DER.
import { createHash } from "node:crypto";

export function x5tS256(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("base64url");
}
