// Shared machinery of the fuzzing suite (test/fuzz): the seed and run count, hostile inputs
// (ill-encoded text, oversized and deeply nested values, garbage credentials), raw HTTP/1.1 and
// HTTP/2 exchanges with a deadline, and the checks every run ends with — the child process is
// alive, /healthz answers, and the audit pipeline still drains.
//
//   FUZZ_SEED=<n>   replay a run (every run prints its seed)
//   FUZZ_RUNS=<n>   cases per surface (default 40 in `npm test`, 500 under `npm run test:fuzz`)
import { createHash, generateKeyPairSync, randomUUID, sign } from "node:crypto";
import { request as httpRequest } from "node:http";
import { connect as http2Connect } from "node:http2";
import { connect as netConnect } from "node:net";
import { gzipSync } from "node:zlib";
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import fc from "fast-check";
import { expect } from "vitest";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import { adminClient } from "../helpers/admin.ts";
import type { OAuthServer } from "../helpers/oauth-server.ts";

const FULL = process.env.MANDATE_FUZZ === "full";

/** The run's seed: FUZZ_SEED, or a fresh one (printed, so any failure can be replayed). */
export const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
/** Cases per surface. */
export const RUNS = Math.max(1, Number(process.env.FUZZ_RUNS ?? (FULL ? 500 : 40)));
/** How long any single exchange may take before it counts as a hang. */
export const DEADLINE_MS = 10_000;

/** fast-check parameters for one surface: the run's seed offset by the surface, so surfaces differ. */
export function fcParams(surface: string): fc.Parameters<unknown> {
  const offset = createHash("sha256").update(surface).digest().readUInt32BE(0);
  return { seed: (SEED + offset) | 0, numRuns: RUNS, endOnFailure: true };
}

/** A vitest timeout that grows with the run count. */
export function timeoutFor(perCaseMs: number, fixedMs = 30_000): number {
  return fixedMs + RUNS * perCaseMs;
}

const counts = new Map<string, Map<string, number>>();
/** Counts one case of a surface and how it was answered (for the summary the suite prints). */
export function count(surface: string, outcome = "sent"): void {
  let outcomes = counts.get(surface);
  if (!outcomes) {
    outcomes = new Map();
    counts.set(surface, outcomes);
  }
  outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
}
export function summary(title: string, startedAt: number): string {
  let total = 0;
  const lines = [...counts].map(([surface, outcomes]) => {
    const n = [...outcomes.values()].reduce((a, b) => a + b, 0);
    total += n;
    const detail = [...outcomes]
      .sort((a, b) => b[1] - a[1])
      .map(([outcome, k]) => `${outcome}:${k}`)
      .join(" ");
    return `  ${surface.padEnd(48)} ${String(n).padStart(5)}  ${detail}`;
  });
  const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
  return `${title}: seed ${SEED} (FUZZ_SEED=${SEED} replays), ${RUNS} runs/surface, ${total} cases in ${seconds} s\n${lines.join("\n")}`;
}

// ---------------------------------------------------------------------------------------------
// Hostile values

/** Strings that have broken parsers before: lone surrogates, NUL, overlong, separators, numbers. */
export const NASTY_STRINGS = [
  "",
  " ",
  "\ud800",
  "\udfff",
  "a\ud800b",
  "\u0000",
  "a\u0000b",
  "\uffff",
  "\ufeff",
  "\u202e",
  "é",
  "😀",
  "%",
  "%ZZ",
  "%ED%A0%80",
  "%FF%FE",
  "%C0%AF",
  "+",
  "&",
  "=",
  "&&==",
  "\r\n",
  "\n",
  '"',
  "\\",
  "'; DROP TABLE clients; --",
  "<script>alert(1)</script>",
  "null",
  "[]",
  "{}",
  "-1",
  "0",
  "1e309",
  "NaN",
  "9999999999999999999999",
  "https://example.internal/client",
  "http://127.0.0.1:1/cb",
  "urn:ietf:params:oauth:request_uri:x",
  "a".repeat(300),
  "x".repeat(5000),
];

/** A plausible value made ill-formed or odd by one character: a lone surrogate, NUL, a BOM... */
export function tainted(value: string): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom("\ud800", "\udfff", "\u0000", "\uffff", "\ufeff", "\u202e", "\r\n"), fc.boolean())
    .map(([char, before]) => (before ? `${char}${value}` : `${value}${char}`));
}

/** Any string, biased towards the nasty ones; `unit: "binary"` includes lone surrogates. */
export function nastyString(plausible: readonly string[] = []): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
    { weight: plausible.length ? 4 : 0, arbitrary: plausible.length ? fc.constantFrom(...plausible) : fc.constant("") },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  );
}

/** Raw bytes: random, invalid UTF-8 sequences, NULs, truncated multi-byte characters. */
export const nastyBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.constantFrom(
    Uint8Array.from([0xff, 0xfe]),
    Uint8Array.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate in UTF-8 (CESU-8): invalid
    Uint8Array.from([0xc0, 0xaf]), // overlong "/"
    Uint8Array.from([0xe2, 0x82]), // cut short
    Uint8Array.from([0x00]),
    Uint8Array.from([0xf4, 0x90, 0x80, 0x80]), // above U+10FFFF
  ),
);

/** A JSON value nested `depth` deep: {"a":{"a":...}} */
export function deepJson(depth: number): string {
  return `${'{"a":'.repeat(depth)}{}${"}".repeat(depth)}`;
}

/** Arbitrary JSON values, hostile strings included, and sometimes very deep ones. */
export const jsonValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: nastyString() },
  { weight: 1, arbitrary: fc.constantFrom(1e308, -0, 2 ** 53 + 1, true, null) },
  { weight: 1, arbitrary: fc.array(nastyString(), { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.dictionary(nastyString(), nastyString(), { maxKeys: 4 }) },
);

export type Pairs = ReadonlyArray<readonly [string, string]>;

type FormMutation =
  | { op: "set"; name: string; value: string }
  | { op: "taint"; at: number; suffix: Uint8Array }
  | { op: "bytes"; name: string; bytes: Uint8Array }
  | { op: "drop"; at: number }
  | { op: "repeat"; at: number }
  | { op: "add"; name: string; value: string };

/**
 * application/x-www-form-urlencoded bodies (or query strings): a plausible request from
 * `templates`, with up to three mutations — a parameter set to a hostile or plausible value or to
 * percent-encoded bytes that are not UTF-8, dropped, repeated, or a stray one added — and sometimes
 * written raw instead of encoded.
 */
export function formBody(
  templates: readonly Pairs[],
  names: readonly string[],
  plausible: Record<string, readonly string[]> = {},
): fc.Arbitrary<Buffer> {
  const name = fc.constantFrom(...names);
  const mutation: fc.Arbitrary<FormMutation> = fc.oneof(
    {
      weight: 4,
      arbitrary: name.chain((n) =>
        fc.record({ op: fc.constant("set" as const), name: fc.constant(n), value: nastyString(plausible[n] ?? []) }),
      ),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("bytes" as const), name, bytes: nastyBytes }) },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("taint" as const),
        at: fc.nat(),
        // A surrogate encoded in UTF-8 (invalid), a stray continuation byte, NUL, CR LF.
        suffix: fc.constantFrom(
          Uint8Array.from([0xed, 0xa0, 0x80]),
          Uint8Array.from([0x80]),
          Uint8Array.from([0x00]),
          Uint8Array.from([0x0d, 0x0a]),
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("drop" as const), at: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("repeat" as const), at: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("add" as const), name: nastyString(), value: nastyString() }) },
  );
  return fc
    .tuple(fc.constantFrom(...templates), fc.array(mutation, { maxLength: 3 }), fc.integer({ min: 0, max: 9 }))
    .map(([template, mutations, style]) => {
      const pairs: Array<[string, string | Uint8Array]> = template.map(([k, v]) => [k, v]);
      for (const m of mutations) mutatePairs(pairs, m);
      const encode = formEncoding(style);
      return Buffer.from(pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join("&"));
    });
}

function mutatePairs(pairs: Array<[string, string | Uint8Array]>, m: FormMutation): void {
  if (m.op === "set" || m.op === "bytes") setPair(pairs, m.name, m.op === "set" ? m.value : m.bytes);
  else if (m.op === "taint" && pairs.length > 0) {
    const at = m.at % pairs.length;
    const [k, v] = pairs[at] as [string, string | Uint8Array];
    if (typeof v === "string") pairs[at] = [k, Buffer.concat([Buffer.from(v), m.suffix])];
  } else if (m.op === "drop" && pairs.length > 0) pairs.splice(m.at % pairs.length, 1);
  else if (m.op === "repeat" && pairs.length > 0) pairs.push(pairs[m.at % pairs.length] as [string, string]);
  else if (m.op === "add") pairs.push([m.name, m.value]);
}

/** Sets the first parameter of that name, or adds it. */
function setPair(pairs: Array<[string, string | Uint8Array]>, name: string, value: string | Uint8Array): void {
  const at = pairs.findIndex(([k]) => k === name);
  if (at >= 0) pairs[at] = [name, value];
  else pairs.push([name, value]);
}

/** Form encoding of a name or value; bytes percent-encoded each, text as is in style 9 (raw). */
function formEncoding(style: number): (v: string | Uint8Array | undefined) => string {
  return (v) => {
    if (v === undefined) return "";
    if (typeof v !== "string") return [...v].map((x) => `%${x.toString(16).padStart(2, "0")}`).join("");
    return style === 9
      ? v // raw: unencoded text, as a careless client writes it
      : new URLSearchParams([["", v]]).toString().slice(1);
  };
}

/**
 * JSON bodies: a plausible object from `templates` with up to three members set to values of
 * `members` (hostile, wrong-typed), dropped, or stray ones added; and now and then no JSON object at
 * all — ill-encoded bytes, 10 000 levels of nesting, 70 KB, a NUL.
 */
export function jsonBody(
  templates: ReadonlyArray<Record<string, unknown>>,
  members: Record<string, fc.Arbitrary<unknown>>,
): fc.Arbitrary<Buffer> {
  const names = Object.keys(members);
  const mutation = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom(...names).chain((n) => fc.tuple(fc.constant(n), members[n] as fc.Arbitrary<unknown>)),
    },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...names), jsonValue) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...names), fc.constant(DROP)) },
    { weight: 1, arbitrary: fc.tuple(nastyString(), jsonValue) },
  );
  const object = fc
    .tuple(
      fc.constantFrom(...templates),
      fc.array(mutation, { maxLength: 3 }),
      sometimes(fc.nat(), 4),
      sometimes(fc.nat(), 8),
    )
    .chain(([template, mutations, taintAt, deepAt]) => {
      const body: Record<string, unknown> = structuredClone(template);
      for (const [name, value] of mutations) {
        if (value === DROP) delete body[name];
        else body[name] = value;
      }
      // A member 5 000 levels deep added to one of the objects, at any depth (a key of a JWK Set...).
      if (deepAt !== null) {
        const objects = objectsIn(body);
        (objects[deepAt % objects.length] as Record<string, unknown>).deep = DEEP_MARKER;
      }
      // One text member of an otherwise plausible body made ill-formed (a lone surrogate...).
      const texts = Object.keys(body).filter((k) => typeof body[k] === "string" || isStrings(body[k]));
      if (taintAt === null || texts.length === 0) return fc.constant(body);
      const name = texts[taintAt % texts.length] as string;
      const value = body[name];
      const first = typeof value === "string" ? value : ((value as string[])[0] ?? "");
      return tainted(first).map((bad) => ({ ...body, [name]: typeof value === "string" ? bad : [bad] }));
    })
    .map((body) => Buffer.from(JSON.stringify(body).replace(JSON.stringify(DEEP_MARKER), () => DEEP_VALUE)));
  const firstName = names[0] ?? "a";
  return fc.oneof(
    { weight: 12, arbitrary: object },
    { weight: 1, arbitrary: jsonValue.map((v) => Buffer.from(JSON.stringify(v) ?? "")) },
    {
      weight: 1,
      arbitrary: nastyBytes.map((b) =>
        Buffer.concat([Buffer.from(`{"${firstName}":"`), Buffer.from(b), Buffer.from('"}')]),
      ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        Buffer.from(`{"${firstName}":${deepJson(10_000)}}`),
        Buffer.from(JSON.stringify({ [firstName]: "x".repeat(70_000) })),
        Buffer.from(`{"${firstName}":1,"${firstName}":2}`),
        Buffer.from("\u0000"),
        Buffer.from(""),
      ),
    },
  );
}

/** `arbitrary` in one case out of `oneIn`, else null. */
export function sometimes<T>(arbitrary: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: oneIn - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });
}

const DROP = Symbol("drop");
const DEEP_MARKER = "\u0001deep\u0001";
const DEEP_VALUE = deepJson(5_000);

/** Every plain object of a JSON value (itself included), breadth first. */
function objectsIn(value: unknown): object[] {
  const found: object[] = [];
  const queue = [value];
  while (queue.length > 0) {
    const current = queue.shift();
    if (Array.isArray(current)) queue.push(...current);
    else if (current !== null && typeof current === "object") {
      found.push(current);
      queue.push(...Object.values(current));
    }
  }
  return found;
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string");
}

/** What Node lets a client put in a header value: the rest is dropped (we test the server, not the client). */
function wireSafe(value: string): string {
  return value.replace(/[^\t\x20-\x7e\x80-\xff]/g, "");
}

/** HTTP/2 is stricter (RFC 9113 §8.2.1): visible ASCII, no surrounding whitespace. */
function wireSafeHttp2(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, "").trim();
}

/** A path Node will send: bytes outside visible ASCII (and "#") percent-encoded. */
export function pathSafe(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) {
    out +=
      byte > 0x20 && byte < 0x7f && byte !== 0x23
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** Header values a client can put on the wire (latin1, no CR/LF), garbage included. */
export const headerValue: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 60 }),
  fc.constantFrom("", " ", "x".repeat(4000), "\u00ff\u00fe", "Bearer", "Basic", "DPoP", "Basic ===", "Basic Og=="),
);

const b64 = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** A proof key that is not a valid key of its type (RFC 9449 §4.3 check 7 must refuse it). */
export const BAD_JWKS = [
  { kty: "EC", crv: "P-256", x: "AA", y: "AA" },
  { kty: "EC", crv: "P-256", x: b64("x".repeat(32)), y: b64("y".repeat(32)) }, // not on the curve
  { kty: "EC", crv: "P-999", x: "AA", y: "AA" },
  { kty: "OKP", crv: "Ed25519", x: "AA" },
  { kty: "RSA", n: "AA", e: "AQAB" }, // a 8-bit modulus
  { kty: "RSA", n: b64(Buffer.alloc(128, 0xff)), e: "AQAB" }, // 1024-bit: under 2048
  { kty: "oct", k: "AA" },
  { kty: "EC", crv: "P-256", x: 5, y: null },
  {},
  [],
  "jwk",
];

const goodKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
const goodJwk = goodKey.publicKey.export({ format: "jwk" });
/** The public half of the key the fuzzer signs with (register it to reach signature checks). */
export const GOOD_JWK = { ...goodJwk, kid: "fuzz", alg: "ES256", use: "sig" };

/** A compact JWS over any header and claims, signed ES256 with the fuzzer's key. */
export function signJwt(header: unknown, claims: unknown): string {
  const input = `${b64(header)}.${b64(claims)}`;
  const signature = sign("sha256", Buffer.from(input), { key: goodKey.privateKey, dsaEncoding: "ieee-p1363" });
  return `${input}.${signature.toString("base64url")}`;
}

/**
 * DPoP header values: proofs that would pass (the right key, htm, htu, iat, a fresh jti and
 * `nonce` when given) with up to two members of header or claims replaced by hostile ones — a
 * broken jwk, a wrong alg or typ, a stale iat — plus garbage, repeated headers and non-JWS text.
 */
export function dpopHeader(
  htu: string,
  method = "POST",
  nonce?: () => string | undefined,
): fc.Arbitrary<string | string[] | undefined> {
  const headerMutation = fc.oneof(
    fc.tuple(fc.constant("jwk"), fc.constantFrom<unknown>(...BAD_JWKS)),
    // A broken key with the algorithm of its type, so it reaches the verifier.
    fc.tuple(fc.constant("jwk+alg"), fc.constantFrom<unknown>(...BAD_JWKS)),
    fc.tuple(
      fc.constant("alg"),
      fc.constantFrom<unknown>("RS256", "PS256", "EdDSA", "none", "HS256", "x\u00e9\u00ff", 5),
    ),
    fc.tuple(fc.constant("typ"), fc.constantFrom<unknown>("JWT", "", null)),
  );
  const claimMutation = fc.oneof(
    fc.tuple(fc.constantFrom("jti", "htm", "htu", "ath", "nonce"), nastyString()),
    fc.tuple(
      fc.constant("iat"),
      fc.constantFrom<unknown>(0, -1, 1e12, "now", null, Math.floor(Date.now() / 1000) - 3600),
    ),
    fc.tuple(fc.constant("htm"), fc.constantFrom<unknown>("GET", "post", 1)),
  );
  const signed = fc
    .tuple(fc.array(headerMutation, { maxLength: 1 }), fc.array(claimMutation, { maxLength: 2 }))
    .map(([headerChanges, claimChanges]) => {
      const header: Record<string, unknown> = { typ: "dpop+jwt", alg: "ES256", jwk: goodJwk };
      const claims: Record<string, unknown> = {
        jti: randomUUID(),
        htm: method,
        htu,
        iat: Math.floor(Date.now() / 1000),
      };
      const current = nonce?.();
      if (current) claims.nonce = current;
      for (const [k, v] of headerChanges) changeHeader(header, k, v);
      for (const [k, v] of claimChanges) claims[k] = v;
      return signJwt(header, claims);
    });
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    { weight: 6, arbitrary: signed },
    { weight: 1, arbitrary: headerValue },
    { weight: 1, arbitrary: fc.tuple(signed, signed).map(([a, b]) => [a, b]) },
    { weight: 1, arbitrary: fc.constantFrom("a.b.c", "..", `${b64("{")}.${b64("{")}.`, `${b64("[]")}.e30.AA`) },
  );
}

/** One header member replaced; "jwk+alg": a key with the algorithm of its type, so it reaches the verifier. */
function changeHeader(header: Record<string, unknown>, k: string, v: unknown): void {
  if (k !== "jwk+alg") {
    header[k] = v;
    return;
  }
  const kty = (v as { kty?: unknown })?.kty;
  header.jwk = v;
  header.alg = kty === "RSA" ? "PS256" : kty === "OKP" ? "EdDSA" : "ES256";
}

/** Authorization header values: garbage Basic, Bearer and DPoP credentials, and the given good ones. */
export function authorizationHeader(good: readonly string[] = []): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: good.length ? 6 : 0, arbitrary: good.length ? fc.constantFrom(...good) : fc.constant(undefined) },
    { weight: 1, arbitrary: headerValue },
    {
      weight: 2,
      arbitrary: nastyBytes.map(
        (bytes) => `Basic ${Buffer.concat([Buffer.from(bytes), Buffer.from(":s")]).toString("base64")}`,
      ),
    },
    { weight: 1, arbitrary: nastyString().map((s) => `Basic ${Buffer.from(s).toString("base64")}`) },
    { weight: 1, arbitrary: nastyString().map((s) => `Bearer ${Buffer.from(s, "latin1").toString("latin1")}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom("DPoP a.b.c", "Bearer a.b.c", `Bearer ${b64({ alg: "none" })}.${b64({})}.`),
    },
  );
}

/** Content types, right and wrong. */
export function contentType(right: string): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant(right) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        undefined,
        `${right}; charset=iso-8859-1`,
        `${right.toUpperCase()}; charset=utf-8`,
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/json",
        "application/x-www-form-urlencoded",
        "application/proto",
        "*/*",
        ";;;",
      ),
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Exchanges

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  trailers?: Record<string, string | string[] | undefined>;
}

export class Hang extends Error {}

export interface HttpCase {
  method: string;
  path: string;
  headers?: Record<string, string | string[] | undefined>;
  body?: Uint8Array | undefined;
}

/** One HTTP/1.1 exchange on a fresh connection; rejects with Hang past the deadline. */
export function send(base: string, request: HttpCase, deadlineMs = DEADLINE_MS): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(request.headers ?? {})) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.map(wireSafe) : wireSafe(value);
    }
    if (request.body) headers["content-length"] = String(request.body.byteLength);
    const req = httpRequest({
      host: url.hostname,
      port: url.port,
      method: request.method,
      path: request.path,
      headers,
      agent: false,
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Hang(`no answer to ${request.method} ${request.path.slice(0, 120)} within ${deadlineMs} ms`));
    }, deadlineMs);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
      res.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    req.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`${request.method} ${request.path.slice(0, 120)}: the connection failed: ${error.message}`));
    });
    req.end(request.body);
  });
}

/**
 * One raw HTTP/1.1 exchange over a socket (request lines and headers no HTTP client would send);
 * resolves with the status line, or "" when the server closed without answering. The request must
 * say `Connection: close` (the server ends the exchange by closing).
 */
export function sendRaw(base: string, request: Uint8Array, deadlineMs = DEADLINE_MS): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    let data = "";
    // write, not end: a half-closed socket may be closed by the server before a slow answer (Connection: close ends it).
    const socket = netConnect(Number(url.port), url.hostname, () => socket.write(request));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Hang(
          `no answer to ${JSON.stringify(Buffer.from(request).toString("latin1").slice(0, 120))} within ${deadlineMs} ms`,
        ),
      );
    }, deadlineMs);
    socket.on("data", (chunk: Buffer) => {
      data += chunk.toString("latin1");
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(data.split("\r\n", 1)[0] ?? "");
    });
    socket.on("error", () => {
      // "close" follows.
    });
  });
}

/** One gRPC exchange over HTTP/2 (native gRPC), with raw frames and headers. */
export function sendHttp2(
  authority: string,
  path: string,
  headers: Record<string, string | string[]>,
  body: Uint8Array,
  deadlineMs = DEADLINE_MS,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`http://${authority}`);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Hang(`no gRPC status for ${path} within ${deadlineMs} ms`));
    }, deadlineMs);
    session.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`${path}: the HTTP/2 session failed: ${error.message}`));
    });
    const safe: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(headers)) {
      safe[name] = Array.isArray(value) ? value.map(wireSafeHttp2) : wireSafeHttp2(value);
    }
    const stream = session.request({ ":method": "POST", ":path": path, te: "trailers", ...safe });
    let responseHeaders: Record<string, string | string[] | undefined> = {};
    let trailers: Record<string, string | string[] | undefined> = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      responseHeaders = h as typeof responseHeaders;
    });
    stream.on("trailers", (t) => {
      trailers = t as typeof trailers;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("close", () => {
      clearTimeout(timer);
      session.close();
      resolve({
        status: Number(responseHeaders[":status"] ?? 0),
        headers: responseHeaders,
        trailers,
        body: Buffer.concat(chunks),
      });
    });
    stream.on("error", () => {
      // "close" follows and resolves with whatever arrived.
    });
    stream.end(body);
  });
}

/** A 5-byte-prefixed message frame (gRPC, gRPC-Web, Connect streaming). */
export function frame(data: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + data.byteLength);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(data.byteLength, 1);
  Buffer.from(data).copy(out, 5);
  return out;
}

export const gzip = (data: Uint8Array) => gzipSync(data);

// ---------------------------------------------------------------------------------------------
// Messages from protobuf schemas

const WRAPPERS: Record<string, fc.Arbitrary<unknown>> = {
  "google.protobuf.StringValue": nastyString(),
  "google.protobuf.BoolValue": fc.boolean(),
  "google.protobuf.Int32Value": fc.integer(),
  "google.protobuf.UInt32Value": fc.nat(),
  "google.protobuf.Int64Value": fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  "google.protobuf.UInt64Value": fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  "google.protobuf.DoubleValue": fc.double(),
  "google.protobuf.FloatValue": fc.float(),
  "google.protobuf.BytesValue": fc.uint8Array({ maxLength: 16 }),
};

/** The strings a generated message puts in each string field (by field: a tenant, an id, a URL...). */
export type StringsFor = (field: DescField) => fc.Arbitrary<string>;

/**
 * An init object for `create(desc, ...)` with every field maybe set. `strings` decides the text of
 * each string field; `hostile` also makes numbers extreme and enums undefined values, where
 * otherwise they stay small and defined, so messages pass validation often enough to reach handlers.
 */
export function messageInit(
  desc: DescMessage,
  strings: StringsFor,
  hostile = false,
  depth = 0,
): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  const g: Generation = { strings, hostile, depth };
  for (const field of desc.fields) {
    if (field.oneof) continue;
    const value = fieldValue(field, g);
    if (value) parts[field.localName] = value;
  }
  for (const oneof of desc.oneofs) {
    const members = oneof.fields
      .map((field) => ({ field, value: singleValue(field, g) }))
      .filter((m): m is { field: DescField; value: fc.Arbitrary<unknown> } => m.value !== undefined);
    if (members.length === 0) continue;
    parts[oneof.localName] = fc.oneof(
      ...members.map((m) => m.value.map((value) => ({ case: m.field.localName, value }))),
    );
  }
  return fc.record(parts, { requiredKeys: [] }) as fc.Arbitrary<Record<string, unknown>>;
}

interface Generation {
  strings: StringsFor;
  hostile: boolean;
  depth: number;
}

function fieldValue(field: DescField, g: Generation): fc.Arbitrary<unknown> | undefined {
  if (field.fieldKind === "list") {
    const item = listItemValue(field, g);
    return item ? fc.array(item, { maxLength: 3 }) : undefined;
  }
  if (field.fieldKind === "map") {
    const value = mapEntryValue(field, g);
    if (!value || field.mapKey !== ScalarType.STRING) return undefined;
    return fc.dictionary(g.hostile ? nastyString() : fc.string({ maxLength: 8 }), value, { maxKeys: 3 });
  }
  return singleValue(field, g);
}

function listItemValue(field: Extract<DescField, { fieldKind: "list" }>, g: Generation) {
  if (field.listKind === "message") return messageValue(field.message, g);
  if (field.listKind === "enum") {
    return enumValue(
      field.enum.values.map((v) => v.number),
      g,
    );
  }
  return scalarValue(field, field.scalar, g);
}

function mapEntryValue(field: Extract<DescField, { fieldKind: "map" }>, g: Generation) {
  if (field.mapKind === "message") return messageValue(field.message, g);
  if (field.mapKind === "enum") {
    return enumValue(
      field.enum.values.map((v) => v.number),
      g,
    );
  }
  return scalarValue(field, field.scalar, g);
}

function singleValue(field: DescField, g: Generation): fc.Arbitrary<unknown> | undefined {
  if (field.fieldKind === "message") return messageValue(field.message, g);
  if (field.fieldKind === "enum")
    return enumValue(
      field.enum.values.map((v) => v.number),
      g,
    );
  if (field.fieldKind === "scalar") return scalarValue(field, field.scalar, g);
  return undefined;
}

function messageValue(desc: DescMessage, g: Generation): fc.Arbitrary<unknown> | undefined {
  const wrapper = WRAPPERS[desc.typeName];
  if (wrapper) return wrapper;
  // protobuf-es represents Struct, Value and ListValue fields as plain JSON.
  const json = g.hostile ? jsonValue : fc.jsonValue({ maxDepth: 2 });
  if (desc.typeName === "google.protobuf.Struct")
    return fc.dictionary(g.hostile ? nastyString() : fc.string(), json, { maxKeys: 4 });
  if (desc.typeName === "google.protobuf.Value") return json;
  if (desc.typeName === "google.protobuf.ListValue") return fc.array(json, { maxLength: 3 });
  if (desc.typeName === "google.protobuf.Timestamp" || desc.typeName === "google.protobuf.Duration") {
    const now = BigInt(Math.floor(Date.now() / 1000));
    return fc.record({
      seconds: g.hostile
        ? fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n })
        : fc.bigInt({ min: now - 3600n, max: now + 3600n }),
      nanos: g.hostile ? fc.integer({ min: -1, max: 1_000_000_000 }) : fc.integer({ min: 0, max: 999_999_999 }),
    });
  }
  if (g.depth >= 3) return undefined;
  return messageInit(desc, g.strings, g.hostile, g.depth + 1);
}

function enumValue(numbers: number[], g: Generation): fc.Arbitrary<number> {
  const defined = fc.constantFrom(...numbers);
  return g.hostile ? fc.oneof({ weight: 2, arbitrary: defined }, { weight: 1, arbitrary: fc.integer() }) : defined;
}

function scalarValue(field: DescField, scalar: ScalarType, g: Generation): fc.Arbitrary<unknown> {
  const small = <T>(values: T[], any: fc.Arbitrary<T>) =>
    g.hostile ? fc.oneof(fc.constantFrom(...values), any) : fc.constantFrom(...values);
  switch (scalar) {
    case ScalarType.STRING:
      return g.strings(field);
    case ScalarType.BYTES:
      return fc.oneof(fc.uint8Array({ maxLength: 32 }), fc.constant(Buffer.from(JSON.stringify({ sub: "x", exp: 1 }))));
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
      return small([0, 1, 0.5], fc.double());
    case ScalarType.FLOAT:
      return small([0, 1, 0.5], fc.float());
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return small([0, 1, 2, 10, 60], fc.integer());
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return small([0, 1, 2, 10, 60], fc.nat());
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return small([0n, 1n, 2n, 5n], fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
    default:
      return small([0n, 1n, 2n, 5n], fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
  }
}

/** A google.protobuf.Struct nested `depth` deep, in protobuf binary: {"a": {"a": ...}}. */
export function deepStructBinary(depth: number): Uint8Array {
  let struct: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < depth; i++) {
    const value = lengthDelimited(5, struct); // Value.struct_value
    const entry = Buffer.concat([lengthDelimited(1, Buffer.from("a")), lengthDelimited(2, value)]);
    struct = lengthDelimited(1, entry); // Struct.fields
  }
  return struct;
}

/** A length-delimited field (wire type 2). */
export function lengthDelimited(fieldNumber: number, data: Uint8Array): Buffer {
  return Buffer.concat([varint((fieldNumber << 3) | 2), varint(data.byteLength), Buffer.from(data)]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v > 127) {
    bytes.push((v & 127) | 128);
    v >>>= 7;
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

// ---------------------------------------------------------------------------------------------
// The end of every run: nothing crashed, nothing is stuck.

/**
 * The child is alive, /healthz answers, and the audit pipeline drains: an ordinary
 * client-credentials token issued now has its `token.issued.v1` entry in the log within seconds.
 */
export async function expectServerSound(server: OAuthServer): Promise<void> {
  const { child } = server.process;
  expect(child.exitCode, `the server exited:\n${server.process.stderr().slice(-4000)}`).toBeNull();
  expect(child.signalCode).toBeNull();
  const health = await send(server.base, { method: "GET", path: "/healthz" });
  expect(health.status).toBe(200);

  const { clientId, clientSecret } = await server.register({
    grantTypes: ["client_credentials"],
    scope: "orders.read",
    resources: ["https://api.example.com/"],
  });
  const token = await send(server.base, {
    method: "POST",
    path: "/t/demo/oauth2/token",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
    },
    body: Buffer.from("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2F"),
  });
  expect(token.status, token.body.toString()).toBe(200);
  const accessToken = (JSON.parse(token.body.toString()) as { access_token: string }).access_token;
  const jti = (JSON.parse(Buffer.from(accessToken.split(".")[1] as string, "base64url").toString()) as { jti: string })
    .jti;
  const audit = adminClient(Audit, server.process.summary.grpc as string, server.process.adminFile);
  const until = Date.now() + 10_000;
  for (;;) {
    const { entries } = await audit.query({ tenant: "demo", clientId, types: ["token.issued.v1"] });
    if (entries.some((entry) => JSON.stringify(entry.event?.details ?? {}).includes(jti))) return;
    if (Date.now() > until) {
      throw new Error(`the audit entry of token ${jti} did not reach the log within 10 s: the pipeline is stuck`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
