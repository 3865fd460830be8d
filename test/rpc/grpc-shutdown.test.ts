// A graceful shutdown of the native gRPC server ends open server streams (which never finish on their
// own: a revocation feed, a health watch) with UNAVAILABLE, so their callers reconnect at once and
// the shutdown does not wait out its grace period; unary calls in flight still finish.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { bindGrpcServer, createGrpcServer, shutdownGrpcServer } from "../../services/shared/rpc/grpc-server.ts";

const SERVING = { status: HealthCheckResponse_ServingStatus.SERVING };
let release: () => void = () => {};
let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  release();
  await stop?.();
});

/** A Health service whose Watch sends one status and then waits for its signal; Check takes until released. */
async function serve() {
  const server = createGrpcServer(
    [
      {
        service: Health,
        impl: {
          check: () => new Promise((resolve) => (release = () => resolve(SERVING))),
          list: () => ({ statuses: {} }),
          async *watch(_request: unknown, context: { signal: AbortSignal }) {
            yield SERVING;
            await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
          },
        },
      },
    ],
    { maxReceiveMessageBytes: 1 << 20, maxSendMessageBytes: 1 << 20 },
  );
  const port = await bindGrpcServer(server, "127.0.0.1", 0);
  stop = async () => server.forceShutdown();
  return { server, client: createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` })) };
}

// A 10-minute grace: were the stream waited for, the test would time out.
it("ends open streams with UNAVAILABLE (SHUTTING_DOWN) and finishes without waiting out the grace", {
  timeout: 60_000,
}, async () => {
  const { server, client } = await serve();
  const stream = client.watch({})[Symbol.asyncIterator]();
  expect((await stream.next()).value?.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  const ending = stream.next().then(() => undefined, ConnectError.from);

  await shutdownGrpcServer(server, 600_000);
  const error = await ending;
  expect(error?.code).toBe(Code.Unavailable);
  expect(error?.findDetails(ErrorInfoSchema)[0]?.reason).toBe("SHUTTING_DOWN");
});

it("lets a unary call in flight finish during the shutdown", { timeout: 60_000 }, async () => {
  const { server, client } = await serve();
  const pending = client.check({});
  await new Promise((resolve) => setTimeout(resolve, 200)); // the call reaches the server
  const shutdown = shutdownGrpcServer(server, 600_000);
  release();
  expect((await pending).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  await shutdown;
});
