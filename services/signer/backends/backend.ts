// One interface for every place private keys live. A backend generates keys, signs with them and
// destroys them; the private half never crosses this interface. Key lifecycle (which key signs,
// when it rotates) is decided above it (schedule.ts, rotation.ts), so every backend rotates alike.
import type { JWK } from "jose";

/** JWS algorithms a key can be made for (RFC 7518 §3.4, §3.5; RFC 8037 §3.1). */
export const SIGNING_ALGORITHMS = ["ES256", "EdDSA", "PS256"] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

export type BackendKind = "pkcs11" | "software";

export interface GeneratedKey {
  /** The backend's reference to the key (PKCS#11: hex CKA_ID), stored with the key's record. */
  ref: string;
  /** The public key only: kty plus crv/x/y (EC, OKP) or n/e (RSA); no kid, use or alg. */
  publicJwk: JWK;
}

export interface BackendStatus {
  ready: boolean;
  /** What is wrong and what to do about it, when not ready. */
  detail: string;
}

export interface KeyBackend {
  readonly kind: BackendKind;
  /** Connects (PKCS#11: load module, find token, open sessions, log in). Throws KeyBackendError. */
  open(): Promise<void>;
  /** Makes a key pair inside the backend. `label` names it for operators (e.g. "mandate:demo:token:<id>"). */
  generate(algorithm: SigningAlgorithm, label: string): Promise<GeneratedKey>;
  /**
   * Signs `data` (a JWS signing input or a checkpoint body) and returns the signature in JWS form:
   * raw R||S for ECDSA (RFC 7518 §3.4), the 64-byte signature for Ed25519, the RSASSA-PSS octets.
   */
  sign(ref: string, algorithm: SigningAlgorithm, data: Uint8Array): Promise<Uint8Array>;
  /** Destroys the key (both halves). Idempotent: destroying a missing key succeeds. */
  destroy(ref: string): Promise<void>;
  /** Refs of every key this backend holds whose label starts with `labelPrefix` (for reconciling after a crash). */
  listRefs(labelPrefix: string): Promise<string[]>;
  status(): BackendStatus;
  close(): Promise<void>;
}

export type KeyBackendErrorCode =
  /** The backend cannot be reached right now (session lost, reconnecting): retry later. */
  | "UNAVAILABLE"
  /** The backend is misconfigured (token missing, wrong PIN, module not found): an operator must act. */
  | "MISCONFIGURED"
  /** The referenced key does not exist in the backend. */
  | "KEY_NOT_FOUND"
  /** The backend does not support the algorithm. */
  | "UNSUPPORTED";

export class KeyBackendError extends Error {
  readonly code: KeyBackendErrorCode;
  constructor(code: KeyBackendErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyBackendError";
    this.code = code;
  }
}
