// A peer that vanished without closing its connections (a killed container whose address is gone)
// answers nothing. Here a TCP relay in front of a real gRPC server "freezes" the connections it holds
// (keeps them open, passes nothing on) while new ones pass: with the keepalive ServiceClients uses,
// the stale session is found dead by an unanswered PING and the call goes out on a new connection;
// without it, the call waits on the dead session until its deadline.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ServiceClients } from "../../services/shared/rpc/clients.ts";
import { bindGrpcServer, createGrpcServer } from "../../services/shared/rpc/grpc-server.ts";

const SERVING = { status: HealthCheckResponse_ServingStatus.SERVING };
let grpcServer: ReturnType<typeof createGrpcServer>;
let relay: Server;
let relayAddress: string;
let connections = 0;
const live: Array<{ client: Socket; upstream: Socket; frozen: boolean }> = [];

beforeAll(async () => {
  grpcServer = createGrpcServer(
    [{ service: Health, impl: { check: () => SERVING, list: () => ({}), watch: () => [] } }],
    {
      maxReceiveMessageBytes: 1 << 20,
      maxSendMessageBytes: 1 << 20,
    },
  );
  const port = await bindGrpcServer(grpcServer, "127.0.0.1", 0);
  relay = createServer((client) => {
    connections++;
    const upstream = tcpConnect(port, "127.0.0.1");
    const pair = { client, upstream, frozen: false };
    live.push(pair);
    client.on("data", (chunk) => pair.frozen || upstream.write(chunk));
    upstream.on("data", (chunk) => pair.frozen || client.write(chunk));
    for (const socket of [client, upstream]) socket.on("error", () => {});
  });
  relay.listen(0, "127.0.0.1");
  await once(relay, "listening");
  relayAddress = `127.0.0.1:${(relay.address() as AddressInfo).port}`;
});

afterAll(() => {
  for (const { client, upstream } of live) {
    client.destroy();
    upstream.destroy();
  }
  relay?.close();
  grpcServer?.forceShutdown();
});

function freezeAll(): void {
  for (const pair of live) pair.frozen = true;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

it("finds a silent peer's session dead by PING and calls on a new connection", { timeout: 30_000 }, async () => {
  const clients = new ServiceClients(new Map([[Health.typeName, relayAddress]]), undefined, {
    pingIntervalMs: 300,
    pingTimeoutMs: 300,
  });
  const before = connections;
  expect((await clients.get(Health).check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  freezeAll();
  await sleep(600); // idle past the interval: the session is checked before its next use
  const response = await clients.get(Health).check({}, { timeoutMs: 10_000 });
  expect(response.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  expect(connections - before).toBe(2);
});

it("without keepalive, the same call waits on the dead session until its deadline", { timeout: 30_000 }, async () => {
  const clients = new ServiceClients(new Map([[Health.typeName, relayAddress]]), undefined, {});
  const before = connections;
  await clients.get(Health).check({});
  freezeAll();
  await sleep(600);
  const error = await clients
    .get(Health)
    .check({}, { timeoutMs: 1500 })
    .then(() => undefined, ConnectError.from);
  expect(error?.code).toBe(Code.DeadlineExceeded);
  expect(connections - before).toBe(1);
});
