// OPA bundle signatures (https://www.openpolicyagent.org/docs/management-bundles#signing): a bundle
// carries `/.signatures.json` = {"signatures": ["<JWS compact>"]}; the JWS payload lists every other
// file of the bundle with its hash, {"files": [{"name", "hash", "algorithm"}], "keyid"?, "scope"?}.
// Verification (as OPA's bundle/verify.go): exactly one JWS; its header `kid` (else the payload's
// deprecated `keyid`) selects the key; the signature verifies; every file of the bundle is listed
// with a matching hash, and every listed file is in the bundle. Structured files (data.json,
// data.yaml, .manifest) are hashed over their JSON value in OPA's canonical walk (bundle/hash.go),
// so whitespace and key order do not matter; any other file over its bytes.
// Keys are the tenant's JWK Set (public keys only); only asymmetric algorithms are accepted, so a
// public key can never be used as an HMAC secret (algorithm confusion).
import { createHash, createPrivateKey, type KeyObject } from "node:crypto";
import { buffer } from "node:stream/consumers";
import { gzipSync } from "node:zlib";
import {
  base64url,
  CompactSign,
  calculateJwkThumbprint,
  compactVerify,
  decodeProtectedHeader,
  exportJWK,
  importJWK,
  type JSONWebKeySet,
  type JWK,
} from "jose";
import tar from "tar-stream";
import { parse as parseYaml } from "yaml";
import { ASYMMETRIC_JWS_ALGORITHMS } from "../../shared/jws-algorithms.ts";

export const SIGNATURES_FILE = "/.signatures.json";

/** JWS algorithms a bundle may be signed with: asymmetric only (never HS*, never none). */
export const ACCEPTED_ALGORITHMS = [...ASYMMETRIC_JWS_ALGORITHMS, "Ed25519"] as const;

/** File hash algorithms of the payload (OPA's names); MD5 and SHA-1 are refused as broken. */
const HASHES: Record<string, string> = {
  "SHA-224": "sha224",
  "SHA-256": "sha256",
  "SHA-384": "sha384",
  "SHA-512": "sha512",
  "SHA-512-224": "sha512-224",
  "SHA-512-256": "sha512-256",
};

export type SignatureFault =
  | "unsigned"
  | "unknown_key"
  | "bad_signature"
  | "malformed"
  | "hash_mismatch"
  | "not_covered"
  | "missing_file";

/** Why a bundle's signature is refused; `message` names the file or key at fault. */
export class BundleSignatureError extends Error {
  readonly fault: SignatureFault;
  constructor(fault: SignatureFault, message: string) {
    super(message);
    this.name = "BundleSignatureError";
    this.fault = fault;
  }
}

/** A tenant's verification settings (policy_signing). */
export interface SigningSettings {
  jwks: JSONWebKeySet;
  required: boolean;
}

interface SignedFile {
  name: string;
  hash: string;
  algorithm: string;
}

interface SignaturePayload {
  files: SignedFile[];
  keyid?: string;
  scope?: string;
}

// --- Verify ----------------------------------------------------------------------------------------

/**
 * Verifies the bundle's files (as `readBundleFiles` returns them) against the tenant's settings.
 * Resolves with the key id that signed the bundle, or null for an unsigned bundle the tenant accepts.
 */
export async function verifyBundleFiles(
  files: Map<string, Buffer>,
  settings: SigningSettings,
): Promise<{ keyId: string | null }> {
  const signatures = files.get(SIGNATURES_FILE);
  if (!signatures) {
    if (settings.required) {
      throw new BundleSignatureError(
        "unsigned",
        "the bundle is unsigned and the tenant requires signatures: sign it (`mandate policy build --sign-key KEY` or `opa sign`)",
      );
    }
    return { keyId: null };
  }
  const token = onlySignature(signatures);
  const { keyId, payload } = await verifyToken(token, settings.jwks);
  checkCoverage(files, payload.files);
  return { keyId };
}

/** OPA accepts exactly one JWS in .signatures.json. */
function onlySignature(text: Buffer): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.toString("utf8"));
  } catch {
    throw new BundleSignatureError("malformed", ".signatures.json: not JSON");
  }
  const list = (parsed as { signatures?: unknown })?.signatures;
  if (!Array.isArray(list) || list.length !== 1 || typeof list[0] !== "string") {
    throw new BundleSignatureError("malformed", '.signatures.json: expected {"signatures": ["<one JWS>"]}');
  }
  return list[0];
}

/** The JWS's key, algorithm and signature; resolves with the verified payload. */
async function verifyToken(token: string, jwks: JSONWebKeySet): Promise<{ keyId: string; payload: SignaturePayload }> {
  const header = protectedHeader(token);
  const alg = header.alg ?? "";
  if (!(ACCEPTED_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new BundleSignatureError(
      "bad_signature",
      `.signatures.json: algorithm ${alg || "(none)"} is not accepted; sign with ${ACCEPTED_ALGORITHMS.join(", ")}`,
    );
  }
  // Header `kid` first; the payload's `keyid` is OPA's deprecated fallback (read before verifying
  // only to pick the key: nothing else of it is trusted until the signature holds).
  const keyId = header.kid ?? unverifiedKeyId(token);
  if (!keyId) throw new BundleSignatureError("unknown_key", ".signatures.json: the signature names no key (kid)");
  const jwk = jwks.keys.find((k) => k.kid === keyId);
  if (!jwk) {
    throw new BundleSignatureError(
      "unknown_key",
      `.signatures.json: signed with key "${keyId}", which is not among the tenant's signing keys: add its public key with \`mandate policy signing set\``,
    );
  }
  if (jwk.alg !== undefined && jwk.alg !== alg) {
    throw new BundleSignatureError(
      "bad_signature",
      `.signatures.json: key "${keyId}" is for ${jwk.alg}, the signature uses ${alg}`,
    );
  }
  const verified = await compactVerify(token, jwk as JWK, { algorithms: [alg] }).catch(() => {
    throw new BundleSignatureError(
      "bad_signature",
      `.signatures.json: the signature does not verify with key "${keyId}"`,
    );
  });
  return { keyId, payload: signaturePayload(verified.payload) };
}

function protectedHeader(token: string): { alg?: string; kid?: string } {
  try {
    return decodeProtectedHeader(token);
  } catch {
    throw new BundleSignatureError("malformed", ".signatures.json: the signature is not a compact JWS");
  }
}

function unverifiedKeyId(token: string): string | undefined {
  try {
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[1] ?? ""))) as unknown;
    const keyid = (payload as { keyid?: unknown })?.keyid;
    return typeof keyid === "string" && keyid !== "" ? keyid : undefined;
  } catch {
    return undefined;
  }
}

function signaturePayload(bytes: Uint8Array): SignaturePayload {
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new BundleSignatureError("malformed", ".signatures.json: the signed payload is not JSON");
  }
  const files = (payload as { files?: unknown })?.files;
  if (!Array.isArray(files) || !files.every(isSignedFile)) {
    throw new BundleSignatureError(
      "malformed",
      '.signatures.json: the signed payload needs "files": [{"name", "hash", "algorithm"}]',
    );
  }
  return payload as SignaturePayload;
}

function isSignedFile(file: unknown): file is SignedFile {
  const f = file as Partial<SignedFile> | null;
  return typeof f?.name === "string" && typeof f.hash === "string" && typeof f.algorithm === "string";
}

/** Every file signed with its hash, every signed file present (OPA's VerifyBundleFile and its leftovers check). */
function checkCoverage(files: Map<string, Buffer>, signed: SignedFile[]): void {
  const expected = new Map<string, SignedFile>();
  for (const file of signed) {
    const name = file.name.replace(/^\/+/, "");
    if (expected.has(name)) throw new BundleSignatureError("malformed", `.signatures.json: ${name} is listed twice`);
    expected.set(name, file);
  }
  for (const [path, body] of files) {
    if (path === SIGNATURES_FILE) continue;
    const name = path.replace(/^\/+/, "");
    const entry = expected.get(name);
    if (!entry) throw new BundleSignatureError("not_covered", `${name}: not covered by the signature`);
    if (fileHash(name, body, entry.algorithm) !== entry.hash.toLowerCase()) {
      throw new BundleSignatureError("hash_mismatch", `${name}: hash mismatch`);
    }
    expected.delete(name);
  }
  const missing = [...expected.keys()];
  if (missing.length > 0) {
    throw new BundleSignatureError("missing_file", `${missing.join(", ")}: signed but missing from the bundle`);
  }
}

// --- Hashes (OPA bundle/hash.go) -------------------------------------------------------------------

const STRUCTURED = new Set(["data.json", "data.yaml", ".manifest", ".signatures.json"]);

/** Hex hash of a bundle file as OPA computes it: structured documents over their canonical walk. */
export function fileHash(name: string, body: Buffer, algorithm = "SHA-256"): string {
  const hashName = HASHES[algorithm];
  if (!hashName) {
    throw new BundleSignatureError(
      "malformed",
      `${name}: hash algorithm ${algorithm} is not accepted (use ${Object.keys(HASHES).join(", ")})`,
    );
  }
  const hash = createHash(hashName);
  if (STRUCTURED.has(name.split("/").at(-1) ?? "")) hash.update(canonicalWalk(structuredValue(name, body)));
  else hash.update(body);
  return hash.digest("hex");
}

/** A number as written in the document: OPA decodes with json.Number and hashes the literal. */
class NumberLiteral {
  readonly source: string;
  constructor(source: string) {
    this.source = source;
  }
}

function structuredValue(name: string, body: Buffer): unknown {
  const text = body.toString("utf8");
  try {
    if (name.endsWith(".yaml")) return parseYaml(text);
    // The reviver's third argument (JSON.parse source text access) gives each number's literal.
    const reviver = (_key: string, value: unknown, context?: { source?: string }) =>
      typeof value === "number" && context?.source !== undefined ? new NumberLiteral(context.source) : value;
    return JSON.parse(text, reviver as (key: string, value: unknown) => unknown);
  } catch {
    throw new BundleSignatureError("malformed", `${name}: not valid ${name.endsWith(".yaml") ? "YAML" : "JSON"}`);
  }
}

/** `{` sorted keys `:` values `,` `}`; `[` values `]`; primitives as Go's encoding/json writes them. */
function canonicalWalk(value: unknown): string {
  if (value instanceof NumberLiteral) return value.source;
  if (Array.isArray(value)) return `[${value.map(canonicalWalk).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      Buffer.compare(Buffer.from(a), Buffer.from(b)),
    );
    return `{${entries.map(([k, v]) => `${goString(k)}:${canonicalWalk(v)}`).join(",")}}`;
  }
  if (typeof value === "string") return goString(value);
  return JSON.stringify(value ?? null);
}

/** Go's encoder (SetEscapeHTML(false)) escapes U+2028 and U+2029 where JSON.stringify does not. */
function goString(text: string): string {
  return JSON.stringify(text).replaceAll("\u2028", "\\u2028").replaceAll("\u2029", "\\u2029");
}

// --- Keys ------------------------------------------------------------------------------------------

const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;

/** A problem with a JWK Set, naming the key. */
export class JwksError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JwksError";
  }
}

/**
 * Parses and checks a tenant's verification keys: a JWK Set of public keys, each with a unique
 * `kid` (the signature's key id), a usable asymmetric type, never a private or symmetric key.
 */
export async function parseSigningJwks(text: string): Promise<JSONWebKeySet> {
  if (text.trim() === "") return { keys: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new JwksError('not JSON: expected a JWK Set {"keys": [...]}');
  }
  const keys = (parsed as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw new JwksError('expected a JWK Set {"keys": [...]}');
  const seen = new Set<string>();
  for (const [i, key] of keys.entries()) {
    await checkPublicKey(key, `keys[${i}]`);
    const kid = (key as JWK).kid as string;
    if (seen.has(kid)) throw new JwksError(`keys[${i}]: kid "${kid}" appears twice`);
    seen.add(kid);
  }
  return { keys: keys as JWK[] };
}

async function checkPublicKey(key: unknown, at: string): Promise<void> {
  if (typeof key !== "object" || key === null || Array.isArray(key)) throw new JwksError(`${at}: not a JWK object`);
  const jwk = key as JWK;
  if (jwk.kty === "oct") throw new JwksError(`${at}: a symmetric (oct) key is a shared secret: give public keys only`);
  const secret = PRIVATE_MEMBERS.find((member) => member in jwk);
  if (secret) throw new JwksError(`${at}: a private key (has "${secret}"): give only its public part`);
  if (typeof jwk.kid !== "string" || jwk.kid === "")
    throw new JwksError(`${at}: needs a "kid" (the signature's key id)`);
  if (jwk.use !== undefined && jwk.use !== "sig") throw new JwksError(`${at}: "use" is "${jwk.use}", expected "sig"`);
  const alg = jwk.alg ?? defaultAlgorithm(jwk);
  if (!alg || !(ACCEPTED_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new JwksError(`${at}: no accepted algorithm for this key (${ACCEPTED_ALGORITHMS.join(", ")})`);
  }
  await importJWK(jwk, alg).catch((error: Error) => {
    throw new JwksError(`${at}: not a usable ${alg} key: ${error.message}`);
  });
}

/** The algorithm a key signs with when it does not say. */
function defaultAlgorithm(jwk: JWK): string | undefined {
  if (jwk.kty === "RSA") return "RS256";
  if (jwk.kty === "EC") return { "P-256": "ES256", "P-384": "ES384", "P-521": "ES512" }[jwk.crv ?? ""];
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  return undefined;
}

// --- Sign ------------------------------------------------------------------------------------------

export interface BundleSigningKey {
  key: KeyObject;
  alg: string;
  keyId: string;
  /** The public key as a JWK (with kid and alg), for the tenant's JWK Set. */
  publicJwk: JWK;
}

/**
 * A private key from a PEM (PKCS#8, PKCS#1 or SEC1) or a JWK file. The key id defaults to the JWK's
 * `kid`, else its RFC 7638 thumbprint; the algorithm to the JWK's `alg`, else the key type's usual one.
 */
export async function loadSigningKey(
  text: string,
  options: { keyId?: string | undefined; alg?: string | undefined } = {},
): Promise<BundleSigningKey> {
  const fromJwk = text.trim().startsWith("{") ? (JSON.parse(text) as JWK) : undefined;
  if (fromJwk && !("d" in fromJwk)) throw new JwksError("the JWK is a public key: signing needs the private key");
  const key = fromJwk ? createPrivateKey({ key: fromJwk as never, format: "jwk" }) : createPrivateKey(text);
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = await exportJWK(key);
  const alg = options.alg ?? fromJwk?.alg ?? defaultAlgorithm(publicJwk);
  if (!alg || !(ACCEPTED_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new JwksError(`no accepted signing algorithm for this key: pass one of ${ACCEPTED_ALGORITHMS.join(", ")}`);
  }
  const keyId = options.keyId ?? fromJwk?.kid ?? (await calculateJwkThumbprint(publicJwk));
  return { key, alg, keyId, publicJwk: { ...publicJwk, kid: keyId, alg, use: "sig" } };
}

/** The `.signatures.json` text for a bundle's files (everything but an existing .signatures.json). */
export async function signatureFile(files: Map<string, Buffer>, signer: BundleSigningKey): Promise<string> {
  const signed: SignedFile[] = [...files]
    .filter(([path]) => path !== SIGNATURES_FILE)
    .map(([path, body]) => {
      const name = path.replace(/^\/+/, "");
      return { name, hash: fileHash(name, body), algorithm: "SHA-256" };
    });
  const payload = new TextEncoder().encode(JSON.stringify({ files: signed }));
  const jws = await new CompactSign(payload)
    .setProtectedHeader({ alg: signer.alg, kid: signer.keyId })
    .sign(signer.key);
  return JSON.stringify({ signatures: [jws] });
}

/** The bundle with `/.signatures.json` (re)written: the files as they were, signed. */
export async function signBundleFiles(files: Map<string, Buffer>, signer: BundleSigningKey): Promise<Buffer> {
  const signatures = await signatureFile(files, signer);
  const out = new Map<string, Buffer>([[SIGNATURES_FILE, Buffer.from(signatures)]]);
  for (const [path, body] of files) if (path !== SIGNATURES_FILE) out.set(path, body);
  return packBundleFiles(out);
}

/** A tar.gz of the files, reproducible (mtime 0), as `writeBundle` writes bundles. */
export async function packBundleFiles(files: Map<string, Buffer>): Promise<Buffer> {
  const pack = tar.pack();
  const packed = buffer(pack); // read while writing: tar-stream waits for its reader
  for (const [path, body] of files) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: path, mode: 0o644, mtime: new Date(0) }, body, (error) => (error ? reject(error) : resolve())),
    );
  }
  pack.finalize();
  return gzipSync(await packed, { level: 9 });
}
