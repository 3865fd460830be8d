// Fuzzing every RPC of a real `mandate dev` child process — each method of each service in
// SERVICE_DESCRIPTORS — on every transport: native gRPC (HTTP/2), gRPC-Web (binary and JSON) and
// Connect (JSON and binary `application/proto` unary, enveloped streaming, and GET for methods
// without side effects). Messages are generated from the schemas (plausible enough to pass
// validation and reach the handlers, and not), or replaced by random bytes, invalid UTF-8 in a
// string field, lone surrogates in JSON, a Struct nested 10 000 deep, truncated bodies; frames are
// marked compressed without an encoding, compressed for real, corrupt, cut short or doubled; the
// caller is anonymous, the platform administrator, or holds a garbage credential.
// Every call must answer within the deadline and never with INTERNAL, UNKNOWN, DATA_LOSS or
// UNAVAILABLE (nothing here makes the server really fail); at the end the process is alive,
// /healthz answers and the audit pipeline still drains (fuzz.ts).
import { gunzipSync } from "node:zlib";
import { create, type DescMethod, fromBinary, ScalarType, toBinary, toJsonString } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "vitest";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { SERVICE_DESCRIPTORS } from "../../services/runtime/start.ts";
import { adminHeaders } from "../helpers/admin.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import {
  type Answer,
  count,
  DEADLINE_MS,
  deepJson,
  deepStructBinary,
  expectServerSound,
  fcParams,
  frame,
  gzip,
  type HttpCase,
  headerValue,
  lengthDelimited,
  messageInit,
  nastyBytes,
  nastyString,
  type StringsFor,
  send,
  sendHttp2,
  sometimes,
  summary,
  timeoutFor,
} from "./fuzz.ts";

/** Codes that mean the server failed: none of these inputs may cause one. */
const FAILURE_CODES = new Set([2, 13, 14, 15]); // UNKNOWN, INTERNAL, UNAVAILABLE, DATA_LOSS
const FAILURE_NAMES = new Set(["unknown", "internal", "unavailable", "data_loss"]);

const METHODS: DescMethod[] = Object.values(SERVICE_DESCRIPTORS).flatMap((service) => service.methods);
const DEEP_STRUCT = deepStructBinary(10_000);
const DEEP_JSON = deepJson(10_000);

let server: OAuthServer;
let grpcAddress: string;
const started = performance.now();
/** Values that let generated messages pass validation and reach handlers, by field name. */
const plausible: Record<string, string[]> = {
  tenant: ["demo"],
  client_id: [],
  client_secret: [],
  token: [],
  subject_token: [],
  resource: ["https://api.example.com/"],
  resources: ["https://api.example.com/"],
  audience: ["https://api.example.com/"],
  scope: ["orders.read"],
  scopes: ["orders.read"],
  grant_type: ["client_credentials"],
  grant_types: ["client_credentials"],
  method: ["client_secret_basic", "client_secret_post", "none"],
  action: ["read", "orders.read"],
  purpose: ["token_signing", "audit"],
  redirect_uris: ["https://app.example.com/cb"],
};

/** Clean strings: the field's plausible values, or short identifiers. */
const cleanStrings: StringsFor = (field) => {
  const values = plausible[field.name] ?? [];
  const word = fc.stringMatching(/^[a-z][a-z0-9-]{0,11}$/);
  return values.length
    ? fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...values) }, { weight: 1, arbitrary: word })
    : word;
};
const hostileStrings: StringsFor = (field) => nastyString(plausible[field.name] ?? []);

beforeAll(async () => {
  server = await startOAuthServer({ MANDATE_RATE_LIMITS_ENABLED: "false" });
  grpcAddress = server.process.summary.grpc as string;
  const { clientId, clientSecret } = await server.register({
    grantTypes: ["client_credentials"],
    scope: "orders.read",
    resources: ["https://api.example.com/"],
  });
  plausible.client_id?.push(clientId);
  plausible.client_secret?.push(clientSecret);
  const token = await send(server.base, {
    method: "POST",
    path: "/t/demo/oauth2/token",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
    },
    body: Buffer.from("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2F"),
  });
  const accessToken = (JSON.parse(token.body.toString()) as { access_token: string }).access_token;
  plausible.token?.push(accessToken);
  plausible.subject_token?.push(accessToken);
}, 60_000);

afterAll(async () => {
  console.log(summary("fuzz (RPCs)", started));
  await server?.stop();
});

type Transport = "grpc" | "grpc-web" | "grpc-web-json" | "connect-json" | "connect-proto" | "connect-get";

interface RpcCase {
  method: DescMethod;
  payload: { kind: string; binary: Uint8Array; json: Uint8Array; [fc.toStringMethod]: () => string };
  framing: string;
  auth: "none" | "admin" | "garbage";
  junkHeader: [string, string] | null;
}

/** The method's first string field and first Struct field (where hostile payloads are put). */
function fieldsOf(method: DescMethod) {
  const stringField = method.input.fields.find((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING);
  const structField = method.input.fields.find(
    (f) => f.fieldKind === "message" && f.message.typeName === "google.protobuf.Struct",
  );
  return { stringField, structField };
}

/** Payloads print as their kind and sizes in fast-check's reports (a 10 000-deep Struct is long). */
function described(payload: Omit<RpcCase["payload"], typeof fc.toStringMethod>): RpcCase["payload"] {
  return Object.assign(payload, {
    [fc.toStringMethod]: () =>
      `${payload.kind} (binary ${Buffer.from(payload.binary).toString("base64").slice(0, 200)}, json ${JSON.stringify(Buffer.from(payload.json).toString("latin1").slice(0, 200))})`,
  });
}

function payloads(method: DescMethod): fc.Arbitrary<RpcCase["payload"]> {
  const { stringField, structField } = fieldsOf(method);
  // A clean message with up to two top-level fields replaced by hostile values.
  const names = method.input.fields.filter((f) => !f.oneof).map((f) => f.localName);
  const mixed = fc
    .tuple(
      messageInit(method.input, cleanStrings),
      messageInit(method.input, hostileStrings, true),
      fc.array(fc.constantFrom(...(names.length ? names : ["_"])), { maxLength: 2 }),
    )
    .map(([clean, hostile, replaced]) => {
      // Requests name their tenant (validation would stop most of them otherwise).
      const init: Record<string, unknown> = names.includes("tenant") ? { tenant: "demo", ...clean } : { ...clean };
      for (const name of replaced) if (name in hostile) init[name] = hostile[name];
      return init;
    });
  const valid = mixed.map((init) => {
    try {
      const message = create(method.input, init as never);
      const binary = toBinary(method.input, message);
      let json: string;
      try {
        json = toJsonString(method.input, message);
      } catch {
        json = "{}"; // e.g. a Timestamp beyond year 9999 has no JSON form
      }
      return { kind: "generated", binary, json: Buffer.from(json) };
    } catch {
      return { kind: "generated", binary: new Uint8Array(0), json: Buffer.from("{}") };
    }
  });
  const stringNumber = stringField?.number ?? 1;
  const stringName = stringField?.jsonName ?? "tenant";
  return fc
    .oneof(
      { weight: 8, arbitrary: valid },
      {
        weight: 1,
        arbitrary: nastyBytes.map((bytes) => ({ kind: "random bytes", binary: bytes, json: bytes })),
      },
      {
        weight: 1,
        arbitrary: valid.map((p) => ({
          kind: "invalid UTF-8 in a string field",
          binary: Buffer.concat([p.binary, lengthDelimited(stringNumber, Buffer.from([0x64, 0xff, 0xfe]))]),
          json: Buffer.concat([Buffer.from(`{"${stringName}":"d`), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
        })),
      },
      {
        weight: 1,
        arbitrary: fc.constant({
          kind: "lone surrogate in a string field",
          binary: lengthDelimited(stringNumber, Buffer.from([0xed, 0xa0, 0x80])),
          json: Buffer.from(`{"${stringName}":"demo\\ud800"}`),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.constant({
          kind: "Struct nested 10 000 deep",
          binary: lengthDelimited(structField?.number ?? 15, DEEP_STRUCT),
          json: Buffer.from(`{"${structField?.jsonName ?? "x"}":${DEEP_JSON}}`),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.tuple(valid, fc.nat()).map(([p, cut]) => ({
          kind: "truncated message",
          binary: p.binary.subarray(0, p.binary.byteLength ? cut % p.binary.byteLength : 0),
          json: p.json.subarray(0, p.json.byteLength ? cut % p.json.byteLength : 0),
        })),
      },
    )
    .map(described);
}

const casesOf = (methods: DescMethod[]): fc.Arbitrary<RpcCase> =>
  fc.constantFrom(...methods).chain((method) =>
    fc.record({
      method: fc.constant(method),
      payload: payloads(method),
      framing: fc.oneof(
        { weight: 10, arbitrary: fc.constant("plain") },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            "compressed flag, no encoding",
            "gzip",
            "gzip, corrupt",
            "unknown encoding",
            "frame cut short",
            "frame header cut short",
            "two frames",
            "no frame",
            "trailer flag",
          ),
        },
      ),
      auth: fc.constantFrom("none", "admin", "admin", "garbage"),
      junkHeader: sometimes<[string, string]>(
        fc.tuple(
          fc.constantFrom(
            "grpc-timeout",
            "connect-timeout-ms",
            "grpc-status-details-bin",
            "traceparent",
            "x-forwarded-for",
          ),
          headerValue,
        ),
        8,
      ),
    }),
  );

function describeCase(transport: Transport, c: RpcCase): string {
  const path = `/${c.method.parent.typeName}/${c.method.name}`;
  return `${transport} ${path}: ${c.payload.kind}, framing "${c.framing}", auth ${c.auth}, header ${JSON.stringify(c.junkHeader)}`;
}

async function headersFor(c: RpcCase, url: string): Promise<Record<string, string>> {
  const headers: Record<string, string> = {};
  if (c.auth === "admin") Object.assign(headers, await adminHeaders(server.process.adminFile, url));
  if (c.auth === "garbage") headers.authorization = "DPoP eyJhbGciOiJub25lIn0.e30.";
  const streaming = c.method.methodKind === "server_streaming";
  // A stream ends at its deadline: keep it short (junk timeouts are only tried on unary calls).
  if (streaming) Object.assign(headers, { "grpc-timeout": "300m", "connect-timeout-ms": "300" });
  if (c.junkHeader && !(streaming && c.junkHeader[0].includes("timeout"))) headers[c.junkHeader[0]] = c.junkHeader[1];
  return headers;
}

/** The enveloped body for a framing, and the encoding header it needs. */
function enveloped(data: Uint8Array, framing: string): { body: Buffer; encoding?: string } {
  switch (framing) {
    case "compressed flag, no encoding":
      return { body: frame(data, 0x01) };
    case "gzip":
      return { body: frame(gzip(data), 0x01), encoding: "gzip" };
    case "gzip, corrupt":
      return { body: frame(Buffer.from("not gzip at all"), 0x01), encoding: "gzip" };
    case "unknown encoding":
      return { body: frame(data, 0x01), encoding: "zstd" };
    case "frame cut short":
      return { body: frame(data).subarray(0, Math.max(5, 4 + data.byteLength)) };
    case "frame header cut short":
      return { body: frame(data).subarray(0, 3) };
    case "two frames":
      return { body: Buffer.concat([frame(data), frame(data)]) };
    case "no frame":
      return { body: Buffer.alloc(0) };
    case "trailer flag":
      return { body: frame(data, 0x80) };
    default:
      return { body: frame(data) };
  }
}

/** The gRPC status of a native gRPC or gRPC-Web answer: headers (trailers-only), trailers, or the trailer frame. */
function grpcStatus(answer: Answer): number | undefined {
  const fromHeaders = answer.trailers?.["grpc-status"] ?? answer.headers["grpc-status"];
  if (fromHeaders !== undefined) return Number(fromHeaders);
  // gRPC-Web: the last frame (flag 0x80) holds the trailers as HTTP/1 header lines.
  let offset = 0;
  while (offset + 5 <= answer.body.byteLength) {
    const flags = answer.body.readUInt8(offset);
    const length = answer.body.readUInt32BE(offset + 1);
    const data = answer.body.subarray(offset + 5, offset + 5 + length);
    if (flags & 0x80) {
      // A large trailer frame (many field violations) may be compressed like a message (flag 0x01).
      const text = (flags & 0x01 ? gunzipOrRaw(data) : data).toString();
      const match = /grpc-status:\s*(\d+)/i.exec(text);
      if (match) return Number(match[1]);
    }
    offset += 5 + length;
  }
  return undefined;
}

function gunzipOrRaw(data: Buffer): Buffer {
  try {
    return gunzipSync(data);
  } catch {
    return data;
  }
}

/** Whether the details (google.rpc.Status) a failing status carries say more, for the report. */
function statusMessage(answer: Answer): string {
  const details = answer.trailers?.["grpc-status-details-bin"] ?? answer.headers["grpc-status-details-bin"];
  if (typeof details === "string") {
    try {
      return fromBinary(StatusSchema, Buffer.from(details, "base64")).message;
    } catch {
      // fall through
    }
  }
  return String(answer.trailers?.["grpc-message"] ?? answer.headers["grpc-message"] ?? answer.body.toString("latin1"));
}

/** Reports a server failure: counted, then thrown with the case and the server's recent log. */
type Fail = (what: string, answer: Answer) => never;

/** One call on one transport; throws when the answer is a server failure. */
async function call(transport: Transport, c: RpcCase): Promise<void> {
  const path = `/${c.method.parent.typeName}/${c.method.name}`;
  const label = describeCase(transport, c);
  const fail: Fail = (what, answer) => {
    count(transport, `failure`);
    throw new Error(
      `${what}: ${statusMessage(answer).slice(0, 500)}\nfor ${label}\nserver log:\n${server.process.stderr().slice(-2000)}`,
    );
  };
  if (transport === "grpc") return callGrpc(c, path, fail);
  const headers = await headersFor(c, `${server.base}${path}`);
  if (transport === "grpc-web" || transport === "grpc-web-json") {
    return callGrpcWeb(transport, c, { path, headers }, fail);
  }
  return callConnect(transport, c, { path, headers }, label, fail);
}

async function callGrpc(c: RpcCase, path: string, fail: Fail): Promise<void> {
  const { body, encoding } = enveloped(c.payload.binary, c.framing);
  const headers = await headersFor(c, `http://${grpcAddress}${path}`);
  if (encoding) headers["grpc-encoding"] = encoding;
  const answer = await sendHttp2(grpcAddress, path, { "content-type": "application/grpc", ...headers }, body);
  expectGrpcAnswer("grpc", answer, fail);
}

/** Where a call over the edge goes: the method's path, and the headers of its case. */
interface EdgeCall {
  path: string;
  headers: Record<string, string>;
}

async function callGrpcWeb(transport: Transport, c: RpcCase, { path, headers }: EdgeCall, fail: Fail) {
  const json = transport === "grpc-web-json";
  const { body, encoding } = enveloped(json ? c.payload.json : c.payload.binary, c.framing);
  if (encoding) headers["grpc-encoding"] = encoding;
  headers["content-type"] = json ? "application/grpc-web+json" : "application/grpc-web+proto";
  const answer = await send(server.base, { method: "POST", path, headers, body });
  expectGrpcAnswer(transport, answer, fail);
}

/** A gRPC answer is a status: never HTTP 5xx, never missing, never a server-failure code. */
function expectGrpcAnswer(transport: Transport, answer: Answer, fail: Fail): void {
  const status = grpcStatus(answer);
  count(transport, status === undefined ? `http ${answer.status}` : `grpc ${status}`);
  if (answer.status >= 500) fail(`HTTP ${answer.status}`, answer);
  if (answer.status === 200 && status === undefined) fail("no grpc-status", answer);
  if (status !== undefined && FAILURE_CODES.has(status)) fail(`grpc-status ${status}`, answer);
}

async function callConnect(transport: Transport, c: RpcCase, edge: EdgeCall, label: string, fail: Fail) {
  const streaming = c.method.methodKind === "server_streaming";
  const json = transport !== "connect-proto";
  const request =
    transport === "connect-get"
      ? connectGet(c, json, edge)
      : streaming
        ? connectStreaming(c, json, edge)
        : connectUnary(c, json, edge);
  const answer = await send(server.base, request);
  const code = connectCode(answer, streaming && transport !== "connect-get");
  count(transport, code ?? `http ${answer.status}`);
  if (process.env.FUZZ_DEBUG === transport) console.log(label, code, answer.body.toString().slice(0, 300));
  if (code !== undefined && FAILURE_NAMES.has(code)) fail(`Connect code ${code} (HTTP ${answer.status})`, answer);
  if (code === undefined && answer.status >= 500) fail(`HTTP ${answer.status}`, answer);
}

/** Connect unary GET: the message in the query. */
function connectGet(c: RpcCase, json: boolean, { path, headers }: EdgeCall): HttpCase {
  // A URL has room for a few KB (Node answers 431 past 16 KB of headers): 200 levels is past the limit of 100.
  const deep = c.payload.kind.startsWith("Struct nested");
  const payload = deep
    ? { binary: lengthDelimited(15, deepStructBinary(200)), json: Buffer.from(`{"x":${deepJson(200)}}`) }
    : c.payload;
  const data = json ? payload.json : payload.binary;
  const query = new URLSearchParams({ connect: "v1", encoding: json ? "json" : "proto" });
  if (json) query.set("message", Buffer.from(data).toString("latin1"));
  else query.set("message", Buffer.from(data).toString("base64url"));
  if (!json) query.set("base64", "1");
  if (c.framing === "gzip") {
    query.set("compression", "gzip");
    query.set("message", gzip(data).toString("base64url"));
    query.set("base64", "1");
  }
  return { method: "GET", path: `${path}?${query}`, headers };
}

/** Connect server streaming: one enveloped request message. */
function connectStreaming(c: RpcCase, json: boolean, { path, headers }: EdgeCall): HttpCase {
  const { body, encoding } = enveloped(json ? c.payload.json : c.payload.binary, c.framing);
  if (encoding) headers["connect-content-encoding"] = encoding;
  headers["content-type"] = json ? "application/connect+json" : "application/connect+proto";
  return { method: "POST", path, headers, body };
}

/** Connect unary POST: the message as the body, compressed as a whole. */
function connectUnary(c: RpcCase, json: boolean, { path, headers }: EdgeCall): HttpCase {
  const data = json ? c.payload.json : c.payload.binary;
  let body = Buffer.from(data);
  if (c.framing === "gzip") body = gzip(data);
  if (c.framing === "gzip, corrupt") body = Buffer.from("not gzip at all");
  if (c.framing === "gzip" || c.framing === "gzip, corrupt") headers["content-encoding"] = "gzip";
  if (c.framing === "unknown encoding") headers["content-encoding"] = "zstd";
  headers["content-type"] = json ? "application/json" : "application/proto";
  headers["connect-protocol-version"] = "1";
  return { method: "POST", path, headers, body };
}

/** The Connect error code of an answer (unary: the JSON body; streaming: the end-of-stream envelope). */
function connectCode(answer: Answer, enveloped: boolean): string | undefined {
  if (answer.status === 200 && !enveloped) return "ok";
  const parse = (bytes: Buffer) => {
    try {
      return (JSON.parse(bytes.toString()) as { code?: string; error?: { code?: string } }) ?? {};
    } catch {
      return {};
    }
  };
  if (!enveloped || answer.status !== 200) return parse(answer.body).code;
  let offset = 0;
  while (offset + 5 <= answer.body.byteLength) {
    const flags = answer.body.readUInt8(offset);
    const length = answer.body.readUInt32BE(offset + 1);
    if (flags & 0x02) return parse(answer.body.subarray(offset + 5, offset + 5 + length)).error?.code ?? "ok";
    offset += 5 + length;
  }
  return undefined;
}

const TRANSPORTS: Transport[] = ["grpc", "grpc-web", "grpc-web-json", "connect-json", "connect-proto", "connect-get"];

describe("every RPC answers hostile input on every transport without a server error, a hang or a crash", () => {
  it.each(TRANSPORTS)(
    "%s",
    async (transport) => {
      // Connect GET: only methods without side effects (idempotency_level NO_SIDE_EFFECTS).
      const methods =
        transport === "connect-get"
          ? METHODS.filter((m) => m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS)
          : METHODS;
      const applicable = casesOf(methods);
      await fc.assert(
        fc.asyncProperty(applicable, (c) => call(transport, c)),
        fcParams(`rpc ${transport}`),
      );
    },
    timeoutFor(DEADLINE_MS / 10),
  );

  it("is still alive, healthy and auditing afterwards", async () => {
    await expectServerSound(server);
  }, 30_000);
});
