// What every check of an agent's certificate shares: the certificate as a request presented it, the
// identity a verified one proves, and why one is refused. Verification is certificate-chain.ts;
// reading the presented certificate from TLS or a proxy header is presented-certificate.ts.

/** A client certificate as it reached us, with the intermediates the client sent along. */
export interface PresentedCertificate {
  /** The leaf, DER. */
  leaf: Uint8Array;
  /** Further certificates the client sent (DER), leaf excluded; may be empty. */
  chain: Uint8Array[];
  /** Where it came from: the TLS handshake, or a header set by a configured proxy. */
  source: "tls" | "client-cert-header" | "xfcc-header";
}

/** An agent certificate that verified against its tenant's trust bundle and deny list. */
export interface VerifiedAgentCertificate {
  spiffeId: string;
  trustDomain: string;
  /** The agent's client id: the SPIFFE ID's path is /agent/<client id>. */
  clientId: string;
  /** Hex, upper case, no separators. */
  serial: string;
  /** RFC 8705 §3.1: base64url SHA-256 of the DER, the `cnf.x5t#S256` of tokens bound to it. */
  x5tS256: string;
  notBefore: number;
  notAfter: number;
}

/** Why a certificate is refused; each is logged with its detail, the caller sees a standard error. */
export const CERTIFICATE_REFUSALS = [
  "malformed",
  "unknown_ca",
  "unknown_intermediate",
  "expired",
  "not_yet_valid",
  "key_usage",
  "extended_key_usage",
  "trust_domain",
  "spiffe_id",
  "ca_certificate",
  "revoked",
  "bad_signature",
] as const;
export type CertificateRefusalReason = (typeof CERTIFICATE_REFUSALS)[number];

export class CertificateRefused extends Error {
  readonly reason: CertificateRefusalReason;
  constructor(reason: CertificateRefusalReason, message: string) {
    super(message);
    this.name = "CertificateRefused";
    this.reason = reason;
  }
}

/** Verifies an agent's presented certificate against its tenant's trust bundle and deny list. */
export interface AgentCertificateVerifier {
  /** The agent it proves, or CertificateRefused with the precise reason. */
  verify(tenant: string, presented: PresentedCertificate): Promise<VerifiedAgentCertificate>;
}
