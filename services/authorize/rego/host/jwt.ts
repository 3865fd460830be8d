// io.jwt.decode, io.jwt.verify_* and io.jwt.decode_verify as OPA (topdown/tokens.go), synchronous
// on node:crypto. Keys for the asymmetric algorithms are a PEM certificate or public key, a JWK or a
// JWKS (keys with another "alg" than the token's, or an unknown one, are skipped; a "kid" in the
// token header picks its key); HS* take the secret itself.
//
// Unlike OPA, verify_<alg> also requires the token header's "alg" to be <alg>: OPA checks only the
// signature with <alg>'s scheme, so a token whose header names another algorithm but whose
// signature happens to verify under <alg> is accepted by OPA and refused (false) here.
import {
  constants,
  createHmac,
  createPublicKey,
  verify as cryptoVerify,
  type JsonWebKey,
  KeyObject,
  timingSafeEqual,
  X509Certificate,
} from "node:crypto";
import { type Builtin, isObject, operandTypeError, str } from "./args.ts";
import { base64Decode, base64UrlDecode } from "./encoding.ts";
import { nowNs } from "./time.ts";

const ALGORITHMS = new Set([
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "HS256",
  "HS384",
  "HS512",
  "EdDSA",
]);

const json = JSON as unknown as { rawJSON(text: string): unknown; isRawJSON(v: unknown): boolean };

/** JSON.parse keeping each number's source text when a double would change it (as OPA's json.Number). */
function parseJson(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === "number" && context?.source !== undefined && String(value) !== context.source
      ? json.rawJSON(context.source)
      : value,
  );
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => isObject(v) && !json.isRawJSON(v);

/** A number read by parseJson, as a double (for comparisons). */
function numberValue(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (json.isRawJSON(v)) return Number(JSON.stringify(v));
  return undefined;
}

interface Token {
  header: string;
  payload: string;
  signature: string;
}

function splitToken(v: unknown): Token {
  const s = str(v, 1);
  if (!s.includes(".")) throw new Error("encoded JWT had no period separators");
  const parts = s.split(".");
  if (parts.length !== 3) throw new Error(`encoded JWT must have 3 sections, found ${parts.length}`);
  const [header, payload, signature] = parts as [string, string, string];
  return { header, payload, signature };
}

function extractJSONObject(s: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = parseJson(s);
  } catch (error) {
    throw new Error(`invalid JSON: ${(error as Error).message}`);
  }
  if (!isPlainObject(v)) throw new Error("decoded JSON type was not an Object");
  return v;
}

function decodePart(part: string, what: string): Buffer {
  try {
    return base64UrlDecode(part);
  } catch (error) {
    throw new Error(`JWT ${what} had invalid encoding: ${(error as Error).message}`);
  }
}

function decodeHeader(token: Token): Record<string, unknown> {
  let header: Record<string, unknown>;
  try {
    header = extractJSONObject(decodePart(token.header, "header").toString("utf8"));
  } catch (error) {
    const message = (error as Error).message;
    throw new Error(message.startsWith("JWT header") ? message : `bad JWT header: ${message}`);
  }
  if ("enc" in header) throw new Error("JWT is a JWE object, which is not supported");
  return header;
}

interface Header {
  alg: string;
  kid: string;
  cty: string;
  crit: Set<string>;
  unknown: string[];
}

/** OPA's parseTokenHeader: the registered parameters, which must be strings. */
function parseHeader(header: Record<string, unknown>): Header {
  const out: Header = { alg: "", kid: "", cty: "", crit: new Set(), unknown: [] };
  for (const [k, v] of Object.entries(header)) {
    if (k === "alg" || k === "kid" || k === "typ" || k === "cty") {
      if (typeof v !== "string") throw new Error(`${k}: must be a string`);
      if (k !== "typ") out[k] = v;
    } else if (k === "crit") {
      out.crit = criticalParameters(v);
    } else {
      out.unknown.push(k);
    }
  }
  return out;
}

/** `crit`: a nonempty list of parameter names (non-strings in it are ignored). */
function criticalParameters(v: unknown): Set<string> {
  if (!Array.isArray(v)) throw new Error("crit: must be a list");
  const crit = new Set(v.filter((c): c is string => typeof c === "string"));
  if (crit.size === 0) throw new Error("crit: must be a nonempty list");
  return crit;
}

// ---------------------------------------------------------------------------------------------
// Keys

interface VerificationKey {
  /** A public key, an HMAC secret (a JWK of kty "oct"), or undefined for a key that cannot verify. */
  key: KeyObject | Buffer | undefined;
  alg: string;
  kid: string;
}

function getLine(s: string): [string, string] {
  const i = s.indexOf("\n");
  if (i < 0) return [s.replace(/[ \t]+$/, ""), ""];
  const end = i > 0 && s[i - 1] === "\r" ? i - 1 : i;
  return [s.slice(0, end).replace(/[ \t]+$/, ""), s.slice(i + 1)];
}

interface PemBlock {
  type: string;
  der: Buffer;
  /** The text after the block. */
  rest: string;
}

/** Go's encoding/pem.Decode: the first PEM block and the text after it. */
function decodePem(data: string): PemBlock | undefined {
  let rest = data;
  for (;;) {
    const afterBegin = skipToBegin(rest);
    if (afterBegin === undefined) return undefined;
    const block = readPemBlock(afterBegin);
    if (block === undefined || "type" in block) return block;
    rest = block.retry;
  }
}

/** The text after the next "-----BEGIN " that starts a line. */
function skipToBegin(text: string): string | undefined {
  if (text.startsWith("-----BEGIN ")) return text.slice(11);
  const i = text.indexOf("\n-----BEGIN ");
  return i < 0 ? undefined : text.slice(i + 12);
}

/**
 * The block after "-----BEGIN ": decoded, or where to look for the next one when this one is
 * malformed; undefined when the text ends within its headers.
 */
function readPemBlock(text: string): PemBlock | { retry: string } | undefined {
  const [typeLine, afterType] = getLine(text);
  if (!typeLine.endsWith("-----")) return { retry: afterType };
  const type = typeLine.slice(0, -5);
  const body = skipPemHeaders(afterType);
  if (body === undefined) return undefined;
  const end = pemEnd(body.rest, body.headers, type);
  if (end < 0) return { retry: body.rest };
  try {
    const der = base64Decode(body.rest.slice(0, end).replace(/[ \t]/g, ""), false);
    return { type, der, rest: getLine(body.rest.slice(end + 9))[1] };
  } catch {
    return { retry: body.rest };
  }
}

/** Skips "Key: value" header lines; undefined if the text ends before the body. */
function skipPemHeaders(text: string): { rest: string; headers: boolean } | undefined {
  let rest = text;
  let headers = false;
  for (;;) {
    if (rest.length === 0) return undefined;
    const [line, next] = getLine(rest);
    if (!line.includes(":")) return { rest, headers };
    headers = true;
    rest = next;
  }
}

/** Where the body ends: at "-----END <type>-----" alone on its line; -1 if it does not. */
function pemEnd(rest: string, headers: boolean, type: string): number {
  const atStart = !headers && rest.startsWith("-----END ");
  const endIndex = atStart ? 0 : rest.indexOf("\n-----END ");
  if (endIndex < 0) return -1;
  const trailer = rest.slice(atStart ? 9 : endIndex + 10);
  const trailerLen = type.length + 5;
  if (trailer.length < trailerLen) return -1;
  if (!trailer.startsWith(type) || trailer.slice(type.length, trailerLen) !== "-----") return -1;
  return getLine(trailer.slice(trailerLen))[0].length === 0 ? endIndex : -1;
}

function jwkKey(jwk: unknown): VerificationKey | undefined {
  if (!isPlainObject(jwk) || typeof jwk.kty !== "string") throw new Error("invalid JWK");
  const alg = typeof jwk.alg === "string" ? jwk.alg : "";
  const kid = typeof jwk.kid === "string" ? jwk.kid : "";
  let key: VerificationKey["key"];
  if (jwk.kty === "oct") {
    if (typeof jwk.k !== "string") throw new Error("invalid JWK: missing k");
    key = base64UrlDecode(jwk.k);
  } else {
    const publicKey = createPublicKey({ key: jwk as JsonWebKey, format: "jwk" });
    // OPA exports a private JWK as a private key, which its verifiers refuse.
    key = "d" in jwk ? undefined : publicKey;
  }
  // Keys for algorithms OPA does not know are skipped.
  if (alg !== "" && !ALGORITHMS.has(alg)) return undefined;
  return { key, alg, kid };
}

/** OPA's getKeysFromCertOrJWK. */
function verificationKeys(text: string): VerificationKey[] {
  const pem = decodePem(text);
  return pem ? pemKeys(pem) : jwkKeys(text);
}

/** A PEM certificate or public key, alone. */
function pemKeys(pem: PemBlock): VerificationKey[] {
  if (pem.rest.length > 0) throw new Error("extra data after a PEM certificate block");
  if (pem.type === "CERTIFICATE") {
    try {
      return [{ key: new X509Certificate(pem.der).publicKey, alg: "", kid: "" }];
    } catch (error) {
      throw new Error(`failed to parse a PEM certificate: ${(error as Error).message}`);
    }
  }
  if (pem.type === "PUBLIC KEY") {
    try {
      return [{ key: createPublicKey({ key: pem.der, format: "der", type: "spki" }), alg: "", kid: "" }];
    } catch (error) {
      throw new Error(`failed to parse a PEM public key: ${(error as Error).message}`);
    }
  }
  throw new Error("failed to extract a Key from the PEM certificate");
}

/** A JWK, or a JWKS ({"keys": [...]}). */
function jwkKeys(text: string): VerificationKey[] {
  try {
    const parsed = JSON.parse(text) as unknown;
    const list = isPlainObject(parsed) && "keys" in parsed ? parsed.keys : [parsed];
    if (!Array.isArray(list)) throw new Error("keys must be an array");
    return list.map(jwkKey).filter((k): k is VerificationKey => k !== undefined);
  } catch (error) {
    throw new Error(`failed to parse a JWK key (set): ${(error as Error).message}`);
  }
}

/** Checks a JWS signature with one key under one algorithm; any mismatch of key and algorithm is false. */
function verifySignature(alg: string, key: VerificationKey["key"], data: Buffer, sig: Buffer): boolean {
  try {
    const family = alg.slice(0, 2);
    const hash = `sha${alg.slice(2)}`;
    if (family === "HS") {
      if (!Buffer.isBuffer(key) || !ALGORITHMS.has(alg)) return false;
      const mac = createHmac(hash, key).update(data).digest();
      return mac.length === sig.length && timingSafeEqual(mac, sig);
    }
    if (!(key instanceof KeyObject) || key.type !== "public") return false;
    switch (alg) {
      case "EdDSA":
        return key.asymmetricKeyType === "ed25519" && cryptoVerify(null, data, key, sig);
      case "RS256":
      case "RS384":
      case "RS512":
        return key.asymmetricKeyType === "rsa" && cryptoVerify(hash, data, key, sig);
      case "PS256":
      case "PS384":
      case "PS512":
        return (
          key.asymmetricKeyType === "rsa" &&
          cryptoVerify(
            hash,
            data,
            { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
            sig,
          )
        );
      case "ES256":
      case "ES384":
      case "ES512":
        // JWS signatures are r||s, not DER.
        return key.asymmetricKeyType === "ec" && cryptoVerify(hash, data, { key, dsaEncoding: "ieee-p1363" }, sig);
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/** Verifies with the token's kid's key if there is one, otherwise with any key whose alg allows it. */
function verifyWithKeys(keys: VerificationKey[], header: Header, alg: string, data: Buffer, sig: Buffer): boolean {
  if (header.kid !== "") {
    const byKid = keys.find((k) => k.kid === header.kid);
    if (byKid) return verifySignature(alg, byKid.key, data, sig);
  }
  return keys.some((k) => (k.alg === "" || k.alg === header.alg) && verifySignature(alg, k.key, data, sig));
}

function verifyAsymmetric(alg: string): Builtin {
  return (jwt, certificate) => {
    const token = splitToken(jwt);
    const keys = verificationKeys(str(certificate, 2));
    const signature = decodePart(token.signature, "signature");
    const header = parseHeader(decodeHeader(token));
    if (header.alg !== alg) return false;
    return verifyWithKeys(keys, header, alg, Buffer.from(`${token.header}.${token.payload}`), signature);
  };
}

function verifyHmac(alg: string): Builtin {
  return (jwt, secret) => {
    str(jwt, 1);
    const key = Buffer.from(str(secret, 2), "utf8");
    const token = splitToken(jwt);
    const signature = decodePart(token.signature, "signature");
    // OPA never reads the header here; an unreadable one cannot name the algorithm, so it is false.
    let headerAlg: unknown;
    try {
      headerAlg = decodeHeader(token).alg;
    } catch {
      return false;
    }
    if (headerAlg !== alg) return false;
    return verifySignature(alg, key, Buffer.from(`${token.header}.${token.payload}`), signature);
  };
}

function decode(jwt: unknown): unknown[] {
  const token = splitToken(jwt);
  const header = decodeHeader(token);
  const payload = decodePart(token.payload, "payload").toString("utf8");
  if ("cty" in header) {
    if (typeof header.cty !== "string") throw new Error("cty: must be a string");
    // A nested token (quoted, as jwt.io writes it): decode the inner one.
    if (header.cty === "JWT") return decode(payload.replace(/^["']+|["']+$/g, ""));
  }
  const claims = extractJSONObject(payload);
  return [header, claims, decodePart(token.signature, "signature").toString("hex")];
}

// ---------------------------------------------------------------------------------------------
// io.jwt.decode_verify

interface Constraints {
  keys: VerificationKey[] | undefined;
  secret: string;
  alg: string;
  iss: string;
  aud: string;
  time: number;
}

function parseConstraints(c: Record<string, unknown>): Constraints {
  const out: Constraints = { keys: undefined, secret: "", alg: "", iss: "", aud: "", time: -1 };
  for (const [name, value] of Object.entries(c)) addConstraint(out, name, value);
  if (out.time === -1) out.time = Number(nowNs());
  const keyConstraints = (out.keys ? 1 : 0) + (out.secret !== "" ? 1 : 0);
  if (keyConstraints > 1) throw new Error("duplicate key constraints");
  if (keyConstraints < 1) throw new Error("no key constraint");
  return out;
}

function addConstraint(out: Constraints, name: string, value: unknown): void {
  switch (name) {
    case "cert":
      if (typeof value !== "string") throw new Error("cert constraint: must be a string");
      out.keys = verificationKeys(value);
      break;
    case "secret":
    case "alg":
    case "iss":
    case "aud":
      if (typeof value !== "string") throw new Error(`${name} constraint: must be a string`);
      out[name] = value;
      break;
    case "time":
      if (typeof value !== "number") throw new Error("token time constraint: must be a number");
      if (value < 0) throw new Error("token time constraint: must not be negative");
      out.time = value;
      break;
    default:
      throw new Error(`unknown token validation constraint: ${name}`);
  }
}

function decodeVerify(jwt: unknown, constraints: unknown): unknown[] {
  if (!isPlainObject(constraints)) throw operandTypeError(2, constraints, "object");
  const c = parseConstraints(constraints);
  const verified = verifiedToken(jwt, c);
  if (!verified) return [false, {}, {}];
  const payload = extractJSONObject(verified.payload);
  return claimsHold(payload, c) ? [true, verified.header, payload] : [false, {}, {}];
}

/** The innermost token's header and payload text, when every signature verifies (a nested token with the same constraints). */
function verifiedToken(jwt: unknown, c: Constraints): { header: Record<string, unknown>; payload: string } | undefined {
  let input = jwt;
  for (;;) {
    const token = splitToken(input);
    const header = decodeHeader(token);
    const h = parseHeader(header);
    // RFC 7515: alg is required, and an unrecognised critical parameter invalidates the token.
    if (h.alg === "" || h.unknown.some((u) => h.crit.has(u))) return undefined;
    if (c.alg !== "" && c.alg !== h.alg) return undefined;
    const signature = decodePart(token.signature, "signature");
    const data = Buffer.from(`${token.header}.${token.payload}`);
    const ok = c.keys
      ? verifyWithKeys(c.keys, h, h.alg, data, signature)
      : verifySignature(h.alg, Buffer.from(c.secret, "utf8"), data, signature);
    if (!ok) return undefined;
    const payload = decodePart(token.payload, "payload").toString("utf8");
    if (h.cty.toLowerCase() !== "jwt") return { header, payload };
    input = payload;
  }
}

/** The registered claims against the constraints: issuer, audience, expiry and not-before (at `time`). */
function claimsHold(payload: Record<string, unknown>, c: Constraints): boolean {
  if (c.iss !== "" && payload.iss !== c.iss) return false;
  if (!audienceMatches(payload, c.aud)) return false;
  const now = c.time / 1e9; // seconds, as the claims
  const exp = timeClaim(payload, "exp");
  if (exp !== undefined && !(now < exp)) return false;
  const nbf = timeClaim(payload, "nbf");
  return nbf === undefined || !(now < nbf);
}

/** With an aud claim, the constraint must be it or in it; without, there must be no constraint. */
function audienceMatches(payload: Record<string, unknown>, aud: string): boolean {
  if (!("aud" in payload)) return aud === "";
  const claim = payload.aud;
  return typeof claim === "string" ? claim === aud : Array.isArray(claim) && claim.some((a) => a === aud);
}

function timeClaim(payload: Record<string, unknown>, name: "exp" | "nbf"): number | undefined {
  if (!(name in payload)) return undefined;
  const value = numberValue(payload[name]);
  if (value === undefined) throw new Error(`${name} value must be a number`);
  return value;
}

export const jwtBuiltins: Record<string, Builtin> = {
  "io.jwt.decode": decode,
  "io.jwt.decode_verify": decodeVerify,
  "io.jwt.verify_rs256": verifyAsymmetric("RS256"),
  "io.jwt.verify_rs384": verifyAsymmetric("RS384"),
  "io.jwt.verify_rs512": verifyAsymmetric("RS512"),
  "io.jwt.verify_ps256": verifyAsymmetric("PS256"),
  "io.jwt.verify_ps384": verifyAsymmetric("PS384"),
  "io.jwt.verify_ps512": verifyAsymmetric("PS512"),
  "io.jwt.verify_es256": verifyAsymmetric("ES256"),
  "io.jwt.verify_es384": verifyAsymmetric("ES384"),
  "io.jwt.verify_es512": verifyAsymmetric("ES512"),
  "io.jwt.verify_eddsa": verifyAsymmetric("EdDSA"),
  "io.jwt.verify_hs256": verifyHmac("HS256"),
  "io.jwt.verify_hs384": verifyHmac("HS384"),
  "io.jwt.verify_hs512": verifyHmac("HS512"),
};
