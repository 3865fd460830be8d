// The asymmetric JWS algorithms (RFC 7518 §3.3–3.5, RFC 8037 §3.1) Mandate accepts on signatures it
// did not make (policy bundles, upstream ID tokens): never HS* (a public key must not become a MAC
// secret: algorithm confusion) and never "none".
export const ASYMMETRIC_JWS_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;
