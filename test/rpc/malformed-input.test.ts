// Regression tests for what the fuzzing suite (test/fuzz) found at the transports, in process:
// a request body that cannot be decoded — whatever the protocol, codec or compression — is the
// caller's fault, INVALID_ARGUMENT, never INTERNAL; slow clients are cut at the configured header
// timeout; a client hanging up is not logged as an error.
import { connect as netConnect } from "node:net";
import { Writable } from "node:stream";
import { gzipSync } from "node:zlib";
import { create, type DescService, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, createHandlerContext } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { Audit, QueryRequestSchema, QueryResponseSchema } from "../../gen/mandate/v1/audit_pb.js";
import { Authorize, CheckRequestSchema, CheckResponseSchema } from "../../gen/mandate/v1/authorize_pb.js";
import { startEdge } from "../../services/edge/server.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { IN_PROCESS } from "../../services/shared/rpc/access.ts";
import { bindGrpcServer, createGrpcServer, shutdownGrpcServer } from "../../services/shared/rpc/grpc-server.ts";
import { defineService, wrapService } from "../../services/shared/rpc/service.ts";
import { deepStructBinary, frame, lengthDelimited, send, sendHttp2, sendRaw } from "../fuzz/fuzz.ts";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function captureLogs() {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: createLogger("debug", stream) };
}

/** Authorize.Check (a Struct field) and Audit.Query (NO_SIDE_EFFECTS: Connect GET), answering trivially. */
function services() {
  const authorize = { service: Authorize as DescService, impl: { check: async () => create(CheckResponseSchema) } };
  const audit = { service: Audit as DescService, impl: { query: async () => create(QueryResponseSchema) } };
  return [authorize, audit];
}

async function edge(options: { headersTimeoutMs?: number } = {}) {
  const logs = captureLogs();
  const started = await startEdge({
    host: "127.0.0.1",
    port: 0,
    maxRequestBytes: 4 * 1024 * 1024,
    corsOrigins: [],
    services: services(),
    logger: logs.logger,
    readiness: async () => ({ ready: true, checks: {} }),
    // An HTTP endpoint that reads its body as the OAuth ones do (and lets a read error escape).
    http: [
      async (req, res) => {
        if (!req.url?.startsWith("/upload")) return false;
        for await (const _ of req) {
          // drain
        }
        res.end("ok");
        return true;
      },
    ],
    ...options,
  });
  cleanups.push(() => started.close(100));
  return { base: `http://127.0.0.1:${started.port}`, logs };
}

const CHECK = "/mandate.v1.Authorize/Check";
const valid = Buffer.from(toBinary(CheckRequestSchema, create(CheckRequestSchema, { tenant: "demo" })));
const invalidUtf8 = Buffer.concat([valid, lengthDelimited(1, Buffer.from([0x64, 0xff, 0xfe]))]);
const deep = lengthDelimited(8, deepStructBinary(10_000)); // CheckRequest.context, 10 000 levels

describe("the edge answers undecodable request bodies with INVALID_ARGUMENT on every protocol", () => {
  it("Connect unary, binary: compressed bodies too (invalid UTF-8, nesting past the limit, corrupt gzip)", async () => {
    const { base } = await edge();
    for (const [body, encoding] of [
      [gzipSync(invalidUtf8), "gzip"],
      [gzipSync(deep), "gzip"],
      [Buffer.from("not gzip"), "gzip"],
      [invalidUtf8, undefined],
      [deep, undefined],
    ] as const) {
      const headers: Record<string, string> = { "content-type": "application/proto" };
      if (encoding) headers["content-encoding"] = encoding;
      const answer = await send(base, { method: "POST", path: CHECK, headers, body });
      expect(answer.status, answer.body.toString()).toBe(400);
      expect(JSON.parse(answer.body.toString())).toMatchObject({ code: "invalid_argument" });
    }
    // A sound compressed body goes through.
    const ok = await send(base, {
      method: "POST",
      path: CHECK,
      headers: { "content-type": "application/proto", "content-encoding": "gzip" },
      body: gzipSync(valid),
    });
    expect(ok.status).toBe(200);
  });

  it("Connect unary, JSON: invalid UTF-8 is refused, not replaced (RFC 8259 §8.1)", async () => {
    const { base } = await edge();
    const body = Buffer.concat([Buffer.from('{"tenant":"de'), Buffer.from([0xff]), Buffer.from('mo"}')]);
    const answer = await send(base, {
      method: "POST",
      path: CHECK,
      headers: { "content-type": "application/json" },
      body,
    });
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ code: "invalid_argument" });
  });

  it("gRPC-Web: a compressed flag without an encoding, gzip of garbage, a trailer flag, frames cut short", async () => {
    const { base } = await edge();
    const cases: Array<[Buffer, string | undefined]> = [
      [frame(valid, 0x01), undefined], // compressed flag, no grpc-encoding
      [frame(valid, 0x01), "identity"],
      [frame(gzipSync(invalidUtf8), 0x01), "gzip"],
      [frame(gzipSync(deep), 0x01), "gzip"],
      [frame(Buffer.from("not gzip"), 0x01), "gzip"],
      [frame(valid, 0x80), undefined], // the trailer flag is the server's
      [frame(valid).subarray(0, 7), undefined],
      [frame(valid).subarray(0, 3), undefined],
    ];
    for (const [body, encoding] of cases) {
      const headers: Record<string, string> = { "content-type": "application/grpc-web+proto" };
      if (encoding) headers["grpc-encoding"] = encoding;
      const answer = await send(base, { method: "POST", path: CHECK, headers, body });
      expect(answer.headers["grpc-status"], `${body.toString("hex").slice(0, 40)} ${encoding}`).toBe(
        String(Code.InvalidArgument),
      );
    }
    // gRPC-Web JSON with invalid UTF-8.
    const json = frame(Buffer.concat([Buffer.from('{"tenant":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]));
    const answer = await send(base, {
      method: "POST",
      path: CHECK,
      headers: { "content-type": "application/grpc-web+json" },
      body: json,
    });
    expect(answer.headers["grpc-status"]).toBe(String(Code.InvalidArgument));
    // A real gzip frame of a sound message is served.
    const ok = await send(base, {
      method: "POST",
      path: CHECK,
      headers: { "content-type": "application/grpc-web+proto", "grpc-encoding": "gzip" },
      body: frame(gzipSync(valid), 0x01),
    });
    expect(ok.status).toBe(200);
    expect(ok.headers["grpc-status"]).toBeUndefined(); // in the trailer frame: OK
    expect(ok.body.toString("latin1")).toMatch(/grpc-status:\s*0/);
  });

  it("Connect GET (NO_SIDE_EFFECTS methods): an undecodable message in the query", async () => {
    const { base } = await edge();
    const bad = Buffer.concat([lengthDelimited(1, Buffer.from([0xff, 0xfe]))]).toString("base64url");
    const answer = await send(base, {
      method: "GET",
      path: `/mandate.v1.Audit/Query?connect=v1&encoding=proto&base64=1&message=${bad}`,
    });
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ code: "invalid_argument" });
    const json = await send(base, {
      method: "GET",
      path: `/mandate.v1.Audit/Query?connect=v1&encoding=json&message=%7B%22tenant%22%3A%22%FF%22%7D`,
    });
    expect(json.status).toBe(400);
    const good = Buffer.from(toBinary(QueryRequestSchema, create(QueryRequestSchema, { tenant: "demo" })));
    const ok = await send(base, {
      method: "GET",
      path: `/mandate.v1.Audit/Query?connect=v1&encoding=proto&base64=1&message=${good.toString("base64url")}`,
    });
    expect(ok.status).toBe(200);
  });
});

describe("native gRPC answers faults of the request with INVALID_ARGUMENT, and only those", () => {
  async function grpcServer(fail?: Error) {
    const answer = async () => (fail ? Promise.reject(fail) : create(CheckResponseSchema));
    // Every method answers (only Check is called): the server refuses a service with a method left out.
    const impl = Object.fromEntries(Authorize.methods.map((method) => [method.localName, answer]));
    const server = createGrpcServer([{ service: Authorize, impl }], {
      maxReceiveMessageBytes: 4 * 1024 * 1024,
      maxSendMessageBytes: 4 * 1024 * 1024,
    });
    const port = await bindGrpcServer(server, "127.0.0.1", 0);
    cleanups.push(() => shutdownGrpcServer(server, 100));
    return `127.0.0.1:${port}`;
  }
  const status = (answer: { trailers?: Record<string, unknown>; headers: Record<string, unknown> }) =>
    Number(answer.trailers?.["grpc-status"] ?? answer.headers["grpc-status"]);

  it("a gzip message that does not decompress, a malformed grpc-timeout, undecodable bytes", async () => {
    const address = await grpcServer();
    const call = (body: Buffer, headers: Record<string, string> = {}) =>
      sendHttp2(address, CHECK, { "content-type": "application/grpc", ...headers }, body);
    expect(status(await call(frame(Buffer.from("not gzip"), 0x01), { "grpc-encoding": "gzip" }))).toBe(
      Code.InvalidArgument,
    );
    expect(status(await call(frame(valid), { "grpc-timeout": "soon" }))).toBe(Code.InvalidArgument);
    expect(status(await call(frame(invalidUtf8)))).toBe(Code.InvalidArgument);
    expect(status(await call(frame(deep)))).toBe(Code.InvalidArgument);
    expect(status(await call(frame(gzipSync(invalidUtf8), 0x01), { "grpc-encoding": "gzip" }))).toBe(
      Code.InvalidArgument,
    );
    expect(status(await call(frame(valid), { "grpc-timeout": "5S" }))).toBe(0); // OK
  });

  it("a handler's own INTERNAL stays INTERNAL", async () => {
    const address = await grpcServer(new ConnectError("Failed to decompress message", Code.Internal));
    const answer = await sendHttp2(address, CHECK, { "content-type": "application/grpc" }, frame(valid));
    expect(status(answer)).toBe(Code.Internal);
  });
});

describe("text that is not well-formed is refused at the RPC boundary, naming the field", () => {
  it("a lone surrogate in a string or inside a Struct is INVALID_ARGUMENT, whatever the transport", async () => {
    const seen: unknown[] = [];
    const module = defineService(Authorize, {
      check: async (request) => {
        seen.push(request);
        return create(CheckResponseSchema);
      },
    });
    const impl = wrapService(module, {
      logger: createLogger("silent"),
      tenants: undefined,
      defaultDeadlineMs: 1000,
      access: IN_PROCESS,
    });
    const context = createHandlerContext({
      service: Authorize,
      method: Authorize.method.check,
      protocolName: "in-process",
      requestMethod: "POST",
      url: "/mandate.v1.Authorize/Check",
      contextValues: createContextValues(),
    });
    const check = (init: Record<string, unknown>) =>
      (impl.check as (r: unknown, c: unknown) => Promise<unknown>)(create(CheckRequestSchema, init as never), context);
    const field = async (init: Record<string, unknown>) => {
      const error = await check(init).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(error?.code).toBe(Code.InvalidArgument);
      return error?.rawMessage;
    };
    expect(await field({ tenant: "demo\ud800", subject: { id: "a" }, action: "x", resource: { id: "r" } })).toMatch(
      /^tenant: is not well-formed/,
    );
    expect(
      await field({
        tenant: "demo",
        subject: { id: "a" },
        action: "x",
        resource: { id: "r" },
        context: { nested: { list: ["ok", "\udfff"] } },
      }),
    ).toMatch(/^context\.nested\.list\[1\]: is not well-formed/);
    expect(seen).toEqual([]);
  });
});

describe("the edge's HTTP server", () => {
  it("cuts a client that sends partial headers at the configured headers timeout, not ~30 s later", async () => {
    const { base } = await edge({ headersTimeoutMs: 400 });
    const { port } = new URL(base);
    const startedAt = performance.now();
    const closed = await new Promise<{ ms: number; answer: string }>((resolve) => {
      const socket = netConnect(Number(port), "127.0.0.1", () => socket.write("POST /x HTTP/1.1\r\nHost: a\r\n"));
      let answer = "";
      socket.on("data", (d) => {
        answer += d;
      });
      socket.on("close", () => resolve({ ms: performance.now() - startedAt, answer }));
      socket.on("error", () => {});
      setTimeout(() => socket.destroy(), 10_000).unref();
    });
    expect(closed.answer).toMatch(/^HTTP\/1\.1 408/);
    expect(closed.ms).toBeGreaterThanOrEqual(350);
    expect(closed.ms).toBeLessThan(2000);
  });

  it("answers a request target that is not a URI, or a Host that is not host[:port], with 400 (RFC 9112 §3.2)", async () => {
    const { base, logs } = await edge();
    const head = (line: string, host: string) =>
      Buffer.from(
        `${line} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
      );
    for (const [line, host] of [
      ["GET http://[", "127.0.0.1"],
      ["POST http://a:99999/mandate.v1.Authorize/Check", "127.0.0.1"],
      [`POST ${CHECK}`, "["],
      [`POST ${CHECK}`, "a:99999"],
      [`POST ${CHECK}`, "a/b"],
      [`GET /mandate.v1.Audit/Query?connect=v1&encoding=json&message=%7B%7D`, ""],
    ] as const) {
      expect(await sendRaw(base, head(line, host)), `${line} / ${host}`).toMatch(/^HTTP\/1\.1 400 /);
    }
    // The absolute form of a good target is served as its origin form.
    expect(await sendRaw(base, head(`GET ${base}/healthz`, "127.0.0.1"))).toMatch(/^HTTP\/1\.1 200 /);
    expect(logs.lines.filter((line) => line.level >= 50)).toEqual([]);
  });

  it("logs a client aborting its upload at debug, never at error", async () => {
    const { base, logs } = await edge();
    const { port } = new URL(base);
    const uploads = [
      [CHECK, "application/json"],
      [CHECK, "application/proto"],
      [CHECK, "application/grpc-web+proto"],
      ["/upload", "application/x-www-form-urlencoded"],
    ];
    for (const [path, type] of uploads) {
      await new Promise<void>((resolve) => {
        const socket = netConnect(Number(port), "127.0.0.1", () => {
          socket.write(
            `POST ${path} HTTP/1.1\r\nHost: a\r\nContent-Type: ${type}\r\nContent-Length: 1000\r\n\r\n{"ten`,
          );
          setTimeout(() => {
            socket.destroy();
            resolve();
          }, 100);
        });
        socket.on("error", () => {});
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(logs.lines.filter((line) => line.level >= 50)).toEqual([]);
    expect(logs.lines.some((line) => line.level === 20 && /aborted/.test(line.msg))).toBe(true);
  });
});
