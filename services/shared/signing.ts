// How services sign: through the Signer, whose private keys never leave it. Every service gets a
// SigningClient — the Signer's key manager itself when it runs in the same process (no
// serialisation on the hot path), or a client of its gRPC API when it runs elsewhere
// (services/signer/client.ts). Both fail with the same gRPC status codes, so callers do not care.
import type { JWK } from "jose";

/**
 * What a key signs: access and ID tokens, audit-log checkpoints, or (agent identity) the agent CA's
 * intermediate certificates (its roots) and agent certificates and CRLs (its intermediates).
 */
export const KEY_PURPOSES = ["token_signing", "audit_checkpoint", "agent_ca_root", "agent_ca"] as const;
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

/** What an agent certificate (X.509-SVID) is issued for: the agent's public key and SPIFFE ID, nothing else it chose. */
export interface AgentCertificateRequest {
  tenant: string;
  /** The agent's public key, SubjectPublicKeyInfo DER (from its checked CSR). */
  publicKeySpki: Uint8Array;
  /** spiffe://<tenant trust domain>/agent/<client id>: the certificate's only URI SAN. */
  spiffeId: string;
  /** Requested end of validity (ms); the CA shortens it to its intermediate's own validity. */
  notAfter: number;
}

export interface IssuedAgentCertificate {
  certificateDer: Uint8Array;
  /** The issuing intermediate (DER), for the agent to send with its certificate; roots are not included. */
  chainDer: Uint8Array[];
  /** Hex, upper case, no separators. */
  serial: string;
  notBefore: number;
  notAfter: number;
  /** kid of the intermediate key that signed it. */
  issuerKid: string;
}

/** A tenant's agent trust bundle: what verifies its agents' certificates. */
export interface AgentTrustBundle {
  /** Published roots (DER): the trust anchors. */
  roots: Uint8Array[];
  /** Published intermediates (DER), pending ones included (pre-publication). */
  intermediates: Uint8Array[];
  /** The SPIFFE trust bundle (SPIFFE Trust Domain and Bundle §4): a JWK Set of x509-svid keys with x5c. */
  spiffeBundle: { keys: JWK[]; spiffe_sequence: number; spiffe_refresh_hint: number };
  maxAgeSeconds: number;
}

/** An agent certificate on the deny list, as a CRL entry. */
export interface RevokedAgentCertificate {
  serial: string;
  revokedAt: number;
  /** RFC 5280 §5.3.1 reason name, e.g. "keyCompromise", "cessationOfOperation"; absent: unspecified. */
  reason?: string | undefined;
}

/**
 * A tenant's agent certificate authority, in the Signer: its keys never leave it. In one process
 * the Signer's CA itself; elsewhere a client of the Signer's RPCs (services/signer/ca/).
 */
export interface AgentCaClient {
  issueAgentCertificate(request: AgentCertificateRequest): Promise<IssuedAgentCertificate>;
  trustBundle(tenant: string): Promise<AgentTrustBundle>;
  /**
   * CRLs (RFC 5280 §5) listing `revoked`, one per published intermediate (each signed by it, the
   * issuer of the certificates it lists); `nextUpdate` in ms.
   */
  signCrls(
    tenant: string,
    revoked: readonly RevokedAgentCertificate[],
    nextUpdate: number,
  ): Promise<Array<{ issuerKid: string; der: Uint8Array }>>;
}
