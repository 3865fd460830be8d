// Unary RPC throughput and latency, loopback only, one run:
//   baseline     a bare @grpc/grpc-js server whose GetTenant handler returns a fixed response (no work)
//   mandate-grpc Mandate's native gRPC server, mandate.v1.Tenants/GetTenant backed by the store (SQLite),
//                called with a tenant administrator's Bearer token (the access gate runs on every call)
//   mandate-web  the same RPC through Mandate's HTTP edge over gRPC-Web (HTTP/1.1)
// Every target is driven by the same Connect client library (connect-node) at a fixed concurrency, so
// only the server differs between baseline and mandate-grpc. Clients and servers share this process.
//
//   npm run bench                      human-readable table, also written to bench/results/rpc.json
//   node bench/rpc.ts --json           JSON only
//   BENCH_SECONDS=10 BENCH_CONCURRENCY=32 BENCH_WARMUP_SECONDS=2 npm run bench
import { Agent } from "node:http";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  type GetTenantRequest,
  GetTenantRequestSchema,
  type GetTenantResponse,
  GetTenantResponseSchema,
  Tenants,
} from "../gen/mandate/v1/tenants_pb.js";
import { HOST, type InProcessMandate, startInProcess, TENANT } from "./in-process.ts";
import { machine, measureCalls, positiveNumber, round, type Stats, table, writeReport } from "./lib.ts";

interface Settings {
  seconds: number;
  warmupSeconds: number;
  concurrency: number;
}

interface Result extends Stats {
  target: string;
  description: string;
  throughputRatio: number | null;
  p99Ratio: number | null;
}

/** Starts a grpc-js server exposing only mandate.v1.Tenants/GetTenant, answering a fixed response. */
async function startBaseline(): Promise<{ port: number; stop(): Promise<void> }> {
  const fixed = create(GetTenantResponseSchema, {
    tenant: { id: TENANT, displayName: "Demo tenant", createTime: timestampFromMs(Date.now()) },
  });
  const definition: grpc.ServiceDefinition = {
    getTenant: {
      path: `/${Tenants.typeName}/GetTenant`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (message: GetTenantRequest) => Buffer.from(toBinary(GetTenantRequestSchema, message)),
      requestDeserialize: (bytes: Buffer) => fromBinary(GetTenantRequestSchema, bytes),
      responseSerialize: (message: GetTenantResponse) => Buffer.from(toBinary(GetTenantResponseSchema, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(GetTenantResponseSchema, bytes),
    } satisfies grpc.MethodDefinition<GetTenantRequest, GetTenantResponse>,
  };
  const server = new grpc.Server();
  server.addService(definition, {
    getTenant: (
      _call: grpc.ServerUnaryCall<GetTenantRequest, GetTenantResponse>,
      callback: grpc.sendUnaryData<GetTenantResponse>,
    ) => callback(null, fixed),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${HOST}:0`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

async function measure(
  target: string,
  description: string,
  client: Client<typeof Tenants>,
  settings: Settings,
): Promise<Result> {
  // One checked call first: the target answers, and with the expected tenant.
  const check = await client.getTenant({ tenant: TENANT });
  if (check.tenant?.id !== TENANT) throw new Error(`${target}: GetTenant answered ${JSON.stringify(check.tenant)}`);
  const stats = await measureCalls(() => client.getTenant({ tenant: TENANT }), settings.concurrency, settings);
  return { target, description, ...stats, throughputRatio: null, p99Ratio: null };
}

function resultsTable(results: Result[]): string {
  return table(
    ["target", "calls/s", "p50 ms", "p99 ms", "x throughput", "x p99", "calls", "errors"],
    results.map((r) => [
      r.target,
      r.callsPerSecond.toFixed(0),
      r.p50Ms.toFixed(2),
      r.p99Ms.toFixed(2),
      r.throughputRatio === null ? "-" : r.throughputRatio.toFixed(2),
      r.p99Ratio === null ? "-" : r.p99Ratio.toFixed(2),
      String(r.calls),
      String(r.errors),
    ]),
  );
}

async function main(): Promise<void> {
  const jsonOnly = process.argv.includes("--json");
  const settings: Settings = {
    seconds: positiveNumber("BENCH_SECONDS", 5),
    warmupSeconds: positiveNumber("BENCH_WARMUP_SECONDS", 1),
    concurrency: Math.floor(positiveNumber("BENCH_CONCURRENCY", 16)),
  };
  const say = (message: string) => (jsonOnly ? undefined : process.stderr.write(`${message}\n`));

  const baseline = await startBaseline();
  let running: InProcessMandate | undefined;
  const sessions: Http2SessionManager[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: settings.concurrency });
  try {
    running = await startInProcess();
    const { mandate, config } = running;

    // Mandate's RPCs need a caller token: a tenant administrator's, sent as Bearer (the baseline ignores it).
    const authorization = `Bearer ${await running.token("mandate:tenant-admin", config.api.audience)}`;
    const withToken: Interceptor = (next) => (request) => {
      request.header.set("authorization", authorization);
      return next(request);
    };
    const grpcClient = (port: number) => {
      const sessionManager = new Http2SessionManager(`http://${HOST}:${port}`);
      sessions.push(sessionManager);
      return createClient(
        Tenants,
        createGrpcTransport({ baseUrl: `http://${HOST}:${port}`, sessionManager, interceptors: [withToken] }),
      );
    };
    const targets: Array<[string, string, Client<typeof Tenants>]> = [
      ["baseline", `bare grpc-js, fixed response (gRPC h2 :${baseline.port})`, grpcClient(baseline.port)],
      [
        "mandate-grpc",
        `Mandate native gRPC, store-backed (gRPC h2 :${mandate.grpcPort})`,
        grpcClient(mandate.grpcPort as number),
      ],
      [
        "mandate-grpc-web",
        `Mandate HTTP edge, store-backed (gRPC-Web HTTP/1.1 :${mandate.httpPort})`,
        createClient(
          Tenants,
          createGrpcWebTransport({
            baseUrl: `http://${HOST}:${mandate.httpPort}`,
            httpVersion: "1.1",
            nodeOptions: { agent },
            interceptors: [withToken],
          }),
        ),
      ],
    ];

    say(
      `unary ${Tenants.typeName}/GetTenant, concurrency ${settings.concurrency}, ` +
        `${settings.warmupSeconds} s warm-up + ${settings.seconds} s per target, loopback`,
    );
    const results: Result[] = [];
    for (const [target, description, client] of targets) {
      say(`  ${target}: ${description} ...`);
      results.push(await measure(target, description, client, settings));
    }
    const base = results[0];
    if (base) {
      for (const r of results) {
        r.throughputRatio = round(r.callsPerSecond / base.callsPerSecond, 3);
        r.p99Ratio = round(r.p99Ms / base.p99Ms, 3);
      }
    }

    const report = {
      rpc: `${Tenants.typeName}/GetTenant`,
      ...machine(),
      platform: `${process.platform}/${process.arch}`,
      client: "@connectrpc/connect-node (createGrpcTransport / createGrpcWebTransport)",
      note: "clients and servers share one process and event loop; ratios are relative to baseline",
      ...settings,
      results,
    };
    const out = writeReport("rpc", report);

    if (jsonOnly) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      process.stdout.write(
        `\n${resultsTable(results)}\n\n` +
          `node ${report.node}, ${report.cpus} CPU(s), concurrency ${settings.concurrency}, ${settings.seconds} s per target; ` +
          `x = ratio to baseline (throughput: higher is better; p99: lower is better)\n` +
          `written to ${out}\n`,
      );
      for (const r of results) {
        if (r.errors > 0)
          process.stdout.write(`warning: ${r.target} had ${r.errors} failed call(s): ${r.firstError}\n`);
      }
    }
  } finally {
    for (const session of sessions) session.abort();
    agent.destroy();
    await Promise.all([baseline.stop(), running?.stop()]);
  }
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
}
