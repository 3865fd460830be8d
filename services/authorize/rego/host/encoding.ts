// base64*, hex.*, urlquery.* and crypto.* digests as OPA (topdown/encoding.go, crypto.go), with Go's
// strict decoders (padding required, "\r" and "\n" skipped) and net/url's escaping. Strings are
// UTF-8 bytes; decoded bytes that are not UTF-8 come back with U+FFFD, as OPA's JSON output shows them.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { type Builtin, compareStrings, isObject, operandError, operandTypeError, str } from "./args.ts";

const utf8 = (s: string) => Buffer.from(s, "utf8");

const STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const URL = /^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$/;

/** Go's base64 (Std or URL) DecodeString: the bytes, or an error. */
export function base64Decode(s: string, url: boolean): Buffer {
  const t = s.replace(/[\r\n]/g, "");
  if (!(url ? URL : STD).test(t)) {
    let at = 0;
    const alphabet = url ? /[A-Za-z0-9_-]/ : /[A-Za-z0-9+/]/;
    while (at < s.length && alphabet.test(s[at] as string)) at++;
    throw new Error(`illegal base64 data at input byte ${at}`);
  }
  return Buffer.from(t, url ? "base64url" : "base64");
}

/** OPA's base64url.decode: pads unpadded input (RFC 7515 appendix C), then decodes strictly. */
export function base64UrlDecode(s: string): Buffer {
  let t = s;
  if (!t.endsWith("=")) {
    switch (t.length % 4) {
      case 0:
        break;
      case 2:
        t += "==";
        break;
      case 3:
        t += "=";
        break;
      default:
        throw new Error(`illegal base64url string: ${s}`);
    }
  }
  return base64Decode(t, true);
}

/** Go's url.QueryEscape. */
export function queryEscape(s: string): string {
  let out = "";
  for (const b of utf8(s)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === " ") out += "+";
    else out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Go's url.QueryUnescape. */
export function queryUnescape(s: string): string {
  const bytes: number[] = [];
  const input = utf8(s);
  for (let i = 0; i < input.length; i++) {
    const b = input[i] as number;
    if (b === 0x25) {
      const hex = input.subarray(i + 1, i + 3).toString("latin1");
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
        throw new Error(`invalid URL escape ${JSON.stringify(input.subarray(i, i + 3).toString("utf8"))}`);
      }
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(b === 0x2b ? 0x20 : b);
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

const digest = (algorithm: string) => (x: unknown) =>
  createHash(algorithm)
    .update(utf8(str(x, 1)))
    .digest("hex");

const hmac = (algorithm: string) => (message: unknown, key: unknown) => {
  const m = str(message, 1);
  const k = str(key, 2);
  return createHmac(algorithm, utf8(k)).update(utf8(m)).digest("hex");
};

/** One `key=value` pair of a query, unescaped; undefined for an empty one. */
function decodeQueryPair(pair: string): [string, string] | undefined {
  if (pair.includes(";")) throw new Error("invalid semicolon separator in query");
  if (pair === "") return undefined;
  const eq = pair.indexOf("=");
  return [queryUnescape(eq < 0 ? pair : pair.slice(0, eq)), queryUnescape(eq < 0 ? "" : pair.slice(eq + 1))];
}

export const encodingBuiltins: Record<string, Builtin> = {
  "base64.encode": (x) => utf8(str(x, 1)).toString("base64"),
  "base64.decode": (x) => base64Decode(str(x, 1), false).toString("utf8"),
  "base64.is_valid": (x) => typeof x === "string" && STD.test(x.replace(/[\r\n]/g, "")),
  "base64url.encode": (x) => utf8(str(x, 1)).toString("base64").replaceAll("+", "-").replaceAll("/", "_"),
  "base64url.encode_no_pad": (x) => utf8(str(x, 1)).toString("base64url"),
  "base64url.decode": (x) => base64UrlDecode(str(x, 1)).toString("utf8"),

  "hex.encode": (x) => utf8(str(x, 1)).toString("hex"),
  "hex.decode": (x) => {
    const s = str(x, 1);
    const bad = /[^0-9A-Fa-f]/.exec(s);
    // As Go: an invalid byte is reported before an odd length.
    if (bad) {
      const c = bad[0];
      const code = (c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0");
      throw new Error(`encoding/hex: invalid byte: U+${code} ${JSON.stringify(c).replace(/^"|"$/g, "'")}`);
    }
    if (s.length % 2 === 1) throw new Error("encoding/hex: odd length hex string");
    return Buffer.from(s, "hex").toString("utf8");
  },

  "urlquery.encode": (x) => queryEscape(str(x, 1)),
  "urlquery.decode": (x) => queryUnescape(str(x, 1)),

  "urlquery.encode_object": (x) => {
    if (!isObject(x)) throw operandTypeError(1, x, "object");
    const values = (v: unknown): string[] => {
      if (typeof v === "string") return [v];
      if (Array.isArray(v) && v.every((e) => typeof e === "string")) return v as string[];
      throw operandError(1, "values must be string, array[string], or set[string]");
    };
    const parts: string[] = [];
    for (const k of Object.keys(x).sort(compareStrings)) {
      for (const v of values(x[k])) parts.push(`${queryEscape(k)}=${queryEscape(v)}`);
    }
    return parts.join("&");
  },

  // Go's url.ParseQuery: any malformed pair fails the whole call (with the first error).
  "urlquery.decode_object": (x) => {
    const query = str(x, 1);
    const out = new Map<string, string[]>();
    let error: Error | undefined;
    for (const pair of query === "" ? [] : query.split("&")) {
      try {
        const decoded = decodeQueryPair(pair);
        if (!decoded) continue;
        const [key, value] = decoded;
        const list = out.get(key);
        if (list) list.push(value);
        else out.set(key, [value]);
      } catch (e) {
        error ??= e as Error;
      }
    }
    if (error) throw error;
    return Object.fromEntries(out);
  },

  "crypto.md5": digest("md5"),
  "crypto.sha1": digest("sha1"),
  "crypto.sha256": digest("sha256"),
  "crypto.hmac.md5": hmac("md5"),
  "crypto.hmac.sha1": hmac("sha1"),
  "crypto.hmac.sha256": hmac("sha256"),
  "crypto.hmac.sha512": hmac("sha512"),
  "crypto.hmac.equal": (mac1, mac2) => {
    const a = utf8(str(mac1, 1));
    const b = utf8(str(mac2, 2));
    return a.length === b.length && timingSafeEqual(a, b);
  },
};
