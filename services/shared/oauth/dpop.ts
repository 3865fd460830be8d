// DPoP proof validation (RFC 9449 §4.3), shared by the token endpoint, introspection and the
// resource-server library. Returns the proof key's RFC 7638 thumbprint for binding (§6.1).
import { constants, createHash, createPublicKey, type KeyObject, verify } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, type JWK } from "jose";
import { printable } from "../text.ts";
import type { ReplayCache } from "./replay.ts";

/** Asymmetric algorithms only (§4.3 check 5: never `none`, never a MAC). */
export const DPOP_ALGORITHMS = ["ES256", "ES384", "EdDSA", "Ed25519", "PS256", "RS256"] as const;
const MAX_PROOF_LENGTH = 8192;

export class DpopProofError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DpopProofError";
  }
}

/** The proof lacks the server's current nonce (§8 / §9): answer `use_dpop_nonce` with a fresh one. */
export class DpopNonceRequired extends Error {
  constructor() {
    super("a DPoP nonce is required");
    this.name = "DpopNonceRequired";
  }
}

export interface DpopCheck {
  /** Every DPoP header value of the request (there must be exactly one, §4.3 check 1). */
  headers: string | string[] | undefined;
  method: string;
  /** The request URI as the client addressed it (public URL), or each name it has; query and fragment are ignored. */
  url: string | readonly string[];
  /** At a resource server: the access token, whose hash must be in `ath` (§4.3 check 11). */
  accessToken?: string | undefined;
  /** Nonce policy: returns whether a proof's nonce is acceptable; absent means nonces are not used. */
  nonce?: ((nonce: string | undefined) => boolean) | undefined;
  replay: ReplayCache;
  /** Allowed clock difference for `iat` (ms). */
  skewMs: number;
  now: number;
}

export interface DpopProof {
  jkt: string;
  jwk: JWK;
  jti: string;
}

export async function verifyDpopProof(check: DpopCheck): Promise<DpopProof> {
  const proof = singleProof(check.headers);
  const header = proofHeader(proof);
  const { jkt, key } = proofKeyOf(header);
  const payload = verifiedPayload(proof, key, header.alg as DpopAlgorithm, check);
  const { jti, htm, htu, iat, ath, nonce } = payload;
  // §4.2: jti, htm, htu, iat are required.
  requireJti(jti);
  requireRequestMatch(htm, htu, check);
  requireFreshIat(iat, check);
  if (check.accessToken !== undefined) requireAccessTokenHash(ath, check.accessToken);
  if (check.nonce && !check.nonce(typeof nonce === "string" ? nonce : undefined)) throw new DpopNonceRequired();
  await requireFirstUse(`dpop:${jkt}:${jti}`, check);
  return { jkt, jwk: header.jwk, jti };
}

/** §4.3 check 1: exactly one DPoP header field, holding one JWT (of bounded size). */
function singleProof(headers: DpopCheck["headers"]): string {
  const values = headers === undefined ? [] : Array.isArray(headers) ? headers : [headers];
  if (values.length !== 1 || !values[0]) throw new DpopProofError("exactly one DPoP header is required");
  const proof = values[0];
  if (proof.length > MAX_PROOF_LENGTH || proof.includes(",")) throw new DpopProofError("the DPoP header holds one JWT");
  return proof;
}

/** A proof's protected header once checked: an allowed algorithm and a public key. */
type ProofHeader = ReturnType<typeof decodeProtectedHeader> & { alg: string; jwk: JWK };

function proofHeader(proof: string): ProofHeader {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw new DpopProofError("the DPoP proof is not a JWS");
  }
  // §4.3 checks 4-6: typ, an allowed asymmetric alg, and a public jwk (no private members).
  if (header.typ !== "dpop+jwt") throw new DpopProofError('the DPoP proof typ must be "dpop+jwt"');
  if (!(DPOP_ALGORITHMS as readonly string[]).includes(header.alg ?? "")) {
    throw new DpopProofError(`DPoP proof algorithm "${printable(String(header.alg))}" is not allowed`);
  }
  if (!header.jwk || typeof header.jwk !== "object") throw new DpopProofError("the DPoP proof has no jwk header");
  if (PRIVATE_JWK_MEMBERS.some((member) => member in (header.jwk as object))) {
    throw new DpopProofError("the DPoP proof jwk must not contain a private key");
  }
  // RFC 7515 §4.1.11: an extension the proof marks critical must be understood; DPoP defines none.
  if ("crit" in header)
    throw new DpopProofError("the DPoP proof names critical extensions this server does not understand");
  return header as ProofHeader;
}

/** The proof's key, imported, and its thumbprint; a jwk that is no usable public key of its alg makes a bad proof. */
function proofKeyOf(header: ProofHeader): { jkt: string; key: KeyObject } {
  try {
    const jkt = jwkThumbprint(header.jwk);
    return { jkt, key: proofKey(jkt, header.jwk, header.alg as DpopAlgorithm) };
  } catch {
    throw new DpopProofError("the DPoP proof jwk is not a usable public key");
  }
}

type DpopAlgorithm = (typeof DPOP_ALGORITHMS)[number];

/**
 * How each allowed algorithm's signature is checked with node:crypto, and the keys it may use (RFC
 * 7518 §3.4-3.5, RFC 8037 §3.1, RFC 9864 §2.2; RSA of at least 2048 bits, RFC 7518 §3.3). The check
 * is synchronous, like the thumbprint: a proof is verified on every DPoP request (at the resource
 * server and again at Authorize), and WebCrypto's asynchronous verify, which jose uses, cost twice the
 * CPU of the signature itself and a thread-pool round trip each time. jose still decodes the header
 * and the claims.
 */
const SIGNATURES: Record<DpopAlgorithm, { digest: string | null; fits(key: KeyObject): boolean; rsaPadding?: number }> =
  {
    ES256: { digest: "sha256", fits: (key) => key.asymmetricKeyDetails?.namedCurve === "prime256v1" },
    ES384: { digest: "sha384", fits: (key) => key.asymmetricKeyDetails?.namedCurve === "secp384r1" },
    EdDSA: { digest: null, fits: (key) => key.asymmetricKeyType === "ed25519" || key.asymmetricKeyType === "ed448" },
    Ed25519: { digest: null, fits: (key) => key.asymmetricKeyType === "ed25519" },
    PS256: { digest: "sha256", fits: largeRsa, rsaPadding: constants.RSA_PKCS1_PSS_PADDING },
    RS256: { digest: "sha256", fits: largeRsa, rsaPadding: constants.RSA_PKCS1_PADDING },
  };

function largeRsa(key: KeyObject): boolean {
  return key.asymmetricKeyType === "rsa" && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048;
}

/** JWS compact serialisation: three base64url parts (RFC 7515 §7.1). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Proofs whose signature verified lately, with their claims. The MCP kit checks a proof and hands it
 * to Authorize in the same process, which checks it again: the second time, the same bytes need not
 * be verified twice (a signature over exact bytes is valid or not forever). Everything that depends
 * on the moment or the verifier — iat, exp, htm, htu, ath, the replay memory — is still checked on
 * every use. Only the last few are kept: the second check follows the first within milliseconds.
 */
const recentlyVerified = new Map<string, Record<string, unknown>>();
const RECENTLY_VERIFIED_MAX = 512;

/** The claims of a proof whose signature verifies with its own key (RFC 9449 §4.3 check 7). */
function signedPayload(proof: string, key: KeyObject, alg: DpopAlgorithm): Record<string, unknown> {
  if (!COMPACT_JWS.test(proof)) throw new DpopProofError("the DPoP proof is not a compact JWS");
  const signatureAt = proof.lastIndexOf(".");
  const { digest, rsaPadding } = SIGNATURES[alg];
  let valid: boolean;
  try {
    valid = verify(
      digest,
      Buffer.from(proof.slice(0, signatureAt), "ascii"),
      rsaPadding === undefined
        ? { key, dsaEncoding: "ieee-p1363" }
        : { key, padding: rsaPadding, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
      Buffer.from(proof.slice(signatureAt + 1), "base64url"),
    );
  } catch {
    valid = false; // a signature of the wrong length or shape
  }
  if (!valid) throw new DpopProofError("the DPoP proof does not verify: its signature is not the jwk's");
  let payload: Record<string, unknown>;
  try {
    payload = decodeJwt(proof);
  } catch {
    throw new DpopProofError("the DPoP proof's claims are not a JSON object");
  }
  if (recentlyVerified.size >= RECENTLY_VERIFIED_MAX) {
    recentlyVerified.delete(recentlyVerified.keys().next().value as string);
  }
  recentlyVerified.set(proof, payload);
  return payload;
}

/** The proof's claims once its signature verifies, held to its own exp and nbf. */
function verifiedPayload(proof: string, key: KeyObject, alg: DpopAlgorithm, check: DpopCheck): Record<string, unknown> {
  const payload = recentlyVerified.get(proof) ?? signedPayload(proof, key, alg);
  // RFC 7519 §4.1.4-4.1.5: a proof that says when it expires, or when it becomes valid, is held to it.
  const skewSeconds = Math.ceil(check.skewMs / 1000);
  const nowSeconds = check.now / 1000;
  if (payload.exp !== undefined && (typeof payload.exp !== "number" || payload.exp + skewSeconds <= nowSeconds)) {
    throw new DpopProofError("the DPoP proof has expired");
  }
  if (payload.nbf !== undefined && (typeof payload.nbf !== "number" || payload.nbf - skewSeconds > nowSeconds)) {
    throw new DpopProofError("the DPoP proof is not valid yet");
  }
  return payload;
}

function requireJti(jti: unknown): asserts jti is string {
  if (typeof jti !== "string" || jti.length < 8 || jti.length > 256)
    throw new DpopProofError("the DPoP proof needs a jti");
}

/** htm and htu name this request: its method, and its URI (under any of its names). */
function requireRequestMatch(htm: unknown, htu: unknown, check: DpopCheck): void {
  if (htm !== check.method) throw new DpopProofError("the DPoP proof htm does not match the request method");
  const urls: readonly string[] = typeof check.url === "string" ? [check.url] : check.url;
  if (typeof htu !== "string" || !urls.some((url) => sameTarget(htu, url))) {
    throw new DpopProofError("the DPoP proof htu does not match the request URI");
  }
}

/** §4.3 check 10 / §11.1: iat within the window, so a proof is only usable briefly. */
function requireFreshIat(iat: unknown, check: DpopCheck): void {
  if (typeof iat !== "number" || Math.abs(iat * 1000 - check.now) > check.skewMs) {
    throw new DpopProofError("the DPoP proof iat is outside the acceptable window");
  }
}

/** §4.3 check 11: at a resource server, the proof carries the access token's hash. */
function requireAccessTokenHash(ath: unknown, accessToken: string): void {
  if (ath !== accessTokenHash(accessToken)) {
    throw new DpopProofError("the DPoP proof ath does not match the access token");
  }
}

/** §11.1: a proof is accepted once; the key scopes the jti, the window bounds the memory. */
async function requireFirstUse(replayKey: string, check: DpopCheck): Promise<void> {
  if (!(await check.replay.firstUse(replayKey, 2 * check.skewMs + 1000))) {
    throw new DpopProofError("the DPoP proof was already used");
  }
}

const PRIVATE_JWK_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/** RFC 7638 §3.2: the required members of each key type, in lexicographic order. */
const THUMBPRINT_MEMBERS: Record<string, readonly string[]> = {
  EC: ["crv", "kty", "x", "y"],
  OKP: ["crv", "kty", "x"],
  RSA: ["e", "kty", "n"],
};

/**
 * The RFC 7638 SHA-256 thumbprint of a public JWK, computed synchronously (a proof is checked on
 * every DPoP request; jose's asynchronous digest costs a thread-pool round trip each time).
 */
export function jwkThumbprint(jwk: JWK): string {
  const members = THUMBPRINT_MEMBERS[jwk.kty ?? ""];
  if (!members) throw new TypeError(`unsupported key type "${jwk.kty}"`);
  const record = jwk as Record<string, unknown>;
  const canonical: Record<string, string> = {};
  for (const member of members) {
    const value = record[member];
    if (typeof value !== "string" || value === "") throw new TypeError(`the jwk has no "${member}"`);
    canonical[member] = value;
  }
  return createHash("sha256").update(JSON.stringify(canonical)).digest("base64url");
}

/** Imported proof keys by algorithm and thumbprint: a client proves with the same key on every request. */
const proofKeys = new Map<string, KeyObject>();
const PROOF_KEYS_MAX = 10_000;

function proofKey(jkt: string, jwk: JWK, alg: DpopAlgorithm): KeyObject {
  const cacheKey = `${alg}:${jkt}`;
  const cached = proofKeys.get(cacheKey);
  if (cached) return cached;
  const members = THUMBPRINT_MEMBERS[jwk.kty ?? ""] ?? [];
  // Only the members the thumbprint covers: the cached key is exactly the key the thumbprint names.
  const publicJwk = Object.fromEntries(members.map((m) => [m, (jwk as Record<string, unknown>)[m]]));
  const key = createPublicKey({ key: publicJwk, format: "jwk" });
  if (key.type !== "public" || !SIGNATURES[alg].fits(key)) throw new TypeError(`not a public key for ${alg}`);
  if (proofKeys.size >= PROOF_KEYS_MAX) proofKeys.clear();
  proofKeys.set(cacheKey, key);
  return key;
}

/** §4.3 check 9: compare after RFC 3986 §6.2.2/§6.2.3 normalisation, without query and fragment. */
export function sameTarget(htu: string, requestUrl: string): boolean {
  try {
    const a = new URL(htu);
    const b = new URL(requestUrl);
    return a.protocol === b.protocol && a.host === b.host && decodeSafe(a.pathname) === decodeSafe(b.pathname);
  } catch {
    return false;
  }
}

function decodeSafe(path: string): string {
  // Percent-encoding of unreserved characters is not significant (RFC 3986 §6.2.2.2); case of the rest is.
  return path.replace(/%([0-9A-Fa-f]{2})/g, (match, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(char) ? char : match.toUpperCase();
  });
}

/** RFC 9449 §4.3 check 11 helper for callers that hash once. */
export function accessTokenHash(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}
