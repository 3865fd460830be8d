// A service process going away refuses new HTTP/2 streams (REFUSED_STREAM: not processed, safe to
// retry, RFC 9113 §8.7). A real HTTP/2 server here resets as many streams as a test asks (with the
// codes it asks for), then answers gRPC Health.Check; the calls go through ServiceClients' remote transport, as another
// service's or the edge's do.
import { once } from "node:events";
import { constants, createServer, type Http2Server, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.js";
import { ServiceClients } from "../../services/shared/rpc/clients.ts";
import { wasRefused } from "../../services/shared/rpc/refused-stream.ts";

let server: Http2Server;
let clients: ServiceClients;
/** HTTP/2 error codes to reset the next streams with, in turn; then streams are answered. */
let resets: number[] = [];
let streams: string[] = [];

function answer(stream: ServerHttp2Stream): void {
  const message = toBinary(
    HealthCheckResponseSchema,
    create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING }),
  );
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
  stream.end(frame);
}

beforeAll(async () => {
  server = createServer();
  server.on("stream", (stream, headers) => {
    streams.push(String(headers[":path"]));
    stream.on("error", () => {});
    const reset = resets.shift();
    if (reset !== undefined) {
      stream.close(reset);
      return;
    }
    stream.resume();
    stream.on("end", () => answer(stream));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  clients = new ServiceClients(new Map([[Health.typeName, address]]));
});

afterAll(() => server?.close());

beforeEach(() => {
  resets = [];
  streams = [];
});

describe("a refused stream (REFUSED_STREAM)", () => {
  it("is retried once for a unary call, which then succeeds", async () => {
    resets = [constants.NGHTTP2_REFUSED_STREAM];
    const response = await clients.get(Health).check({});
    expect(response.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect(streams).toEqual(["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Check"]);
  });

  it("refused twice ends as UNAVAILABLE (retryable), not INTERNAL", async () => {
    resets = [constants.NGHTTP2_REFUSED_STREAM, constants.NGHTTP2_REFUSED_STREAM];
    const error = await clients
      .get(Health)
      .check({})
      .then(() => undefined, ConnectError.from);
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.message).toContain("refused the call before processing it");
    expect(wasRefused(error?.cause)).toBe(true);
    expect(streams).toHaveLength(2);
  });

  it("is not retried for a stream (its messages may be consumed), but ends as UNAVAILABLE", async () => {
    resets = [constants.NGHTTP2_REFUSED_STREAM];
    const error = await (async () => {
      for await (const _ of clients.get(Health).watch({})) return undefined;
    })().then(() => undefined, ConnectError.from);
    expect(error?.code).toBe(Code.Unavailable);
    expect(streams).toEqual(["/grpc.health.v1.Health/Watch"]);
  });

  it("other failures pass through unchanged and are not retried", async () => {
    resets = [constants.NGHTTP2_INTERNAL_ERROR];
    const error = await clients
      .get(Health)
      .check({})
      .then(() => undefined, ConnectError.from);
    expect(error?.code).not.toBe(Code.Unavailable);
    expect(streams).toHaveLength(1);
  });
});
