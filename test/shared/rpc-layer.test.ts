// The shared transport layer with a service whose behaviour the test controls (the grpc.health.v1
// service over a registry), called by a real @grpc/grpc-js client: draining shutdown, the default
// server deadline, trace ids in logs, and that gRPC and gRPC-Web reach the same implementation.
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { startEdge } from "../../services/edge/server.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { IN_PROCESS } from "../../services/shared/rpc/access.ts";
import { bindGrpcServer, createGrpcServer, shutdownGrpcServer } from "../../services/shared/rpc/grpc-server.ts";
import { HealthRegistry, healthService, ServingStatus } from "../../services/shared/rpc/health.ts";
import { defineService, wrapService } from "../../services/shared/rpc/service.ts";
import { startTelemetry } from "../../services/shared/telemetry.ts";

startTelemetry({ serviceName: "mandate-test", metricsIntervalMs: 60_000 });

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: createLogger("debug", stream) };
}

/** A health service whose Check waits `delayMs` first, to hold calls in flight. */
function slowHealth(delayMs: number) {
  const registry = new HealthRegistry();
  registry.set("", ServingStatus.SERVING);
  const base = healthService(registry);
  const module = defineService(Health, {
    ...base.impl,
    async check(request, context) {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return (base.impl.check as (r: typeof request, c: typeof context) => unknown)(request, context) as never;
    },
  });
  return { registry, module };
}

async function serve(delayMs: number, defaultDeadlineMs = 30_000) {
  const { lines, logger } = captureLogs();
  const { module } = slowHealth(delayMs);
  const bound = {
    service: Health,
    impl: wrapService(module, { logger, tenants: undefined, defaultDeadlineMs, access: IN_PROCESS }),
  };
  const server = createGrpcServer([bound], { maxReceiveMessageBytes: 1024, maxSendMessageBytes: 1024 });
  const port = await bindGrpcServer(server, "127.0.0.1", 0);
  cleanups.push(() => server.forceShutdown());
  return { server, port, lines, bound, logger };
}

describe("shared rpc layer", () => {
  it("drains in-flight calls on shutdown and refuses new ones", async () => {
    const { server, port } = await serve(400);
    const client = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const inFlight = client.check({ service: "" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const draining = shutdownGrpcServer(server, 5_000);
    await expect(inFlight).resolves.toMatchObject({ status: ServingStatus.SERVING });
    await draining;
    await expect(client.check({ service: "" }, { timeoutMs: 1000 })).rejects.toThrow();
  });

  it("cuts calls that outlive the shutdown grace period", async () => {
    const { server, port } = await serve(5_000);
    const client = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const inFlight = client.check({ service: "" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await shutdownGrpcServer(server, 200);
    // The handler would answer SERVING after 5 s; a forced shutdown must cut it instead.
    await expect(inFlight).rejects.toThrow();
  });

  it("applies the server's default deadline to calls that bring none", async () => {
    const { port } = await serve(2_000, 100);
    const raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      raw.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (err) => resolve(err as grpc.ServiceError),
      ),
    );
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    raw.close();
  });

  it("logs with the caller's trace id", async () => {
    const { port, lines } = await serve(0);
    const client = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    await expect(
      client.check({ service: "missing" }, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } }),
    ).rejects.toThrow();
    expect(lines.find((l) => l.msg === "rpc refused")).toMatchObject({
      trace_id: traceId,
      rpc: "grpc.health.v1.Health/Check",
    });
  });

  it("serves one implementation over native gRPC and gRPC-Web", async () => {
    const { port, bound, logger } = await serve(0);
    const edge = await startEdge({
      host: "127.0.0.1",
      port: 0,
      maxRequestBytes: 1024,
      corsOrigins: [],
      services: [bound],
      logger,
      readiness: async () => ({ ready: true, checks: {} }),
    });
    cleanups.push(() => edge.close(100));
    const overGrpc = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const overWeb = createClient(
      Health,
      createGrpcWebTransport({ baseUrl: `http://127.0.0.1:${edge.port}`, httpVersion: "1.1" }),
    );
    expect(await overGrpc.check({ service: "" })).toEqual(await overWeb.check({ service: "" }));
    const notFound = await fetch(`http://127.0.0.1:${edge.port}/nope`);
    expect(notFound.status).toBe(404);
  });
});
