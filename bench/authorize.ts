// Authorize: how fast a decision is, in-process and over the network, each against a named baseline
// measured in the same run:
//   engine       DecisionEngine.decide on policies/default (pool, budget, normalisation, decision log
//                enqueued on a SQLite outbox that an Audit service elsewhere would drain), one at a time
//     vs raw-opa-wasm: the same compiled bundle evaluated with @open-policy-agent/opa-wasm directly
//   grpc         Authorize.Check over native gRPC with AuthorizeClient (@grpc/grpc-js), 16 in flight
//     vs bare-grpc: a bare grpc-js server answering a fixed CheckResponse of the same size
//   batch-100    Authorize.BatchCheck of 100 checks over native gRPC, one call at a time
//   hot reload   time from ActivatePolicy's answer until a Check answers from the new revision
//
//   npm run bench:authorize            table, also written to bench/results/authorize.json
//   BENCH_SECONDS=10 BENCH_CONCURRENCY=32 npm run bench:authorize
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import {
  Authorize,
  type CheckRequest,
  CheckRequestSchema,
  type CheckResponse,
  CheckResponseSchema,
} from "../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../gen/mandate/v1/common_pb.js";
import { AuthorizeClient, type CheckInput } from "../services/authorize/client.ts";
import { decisionInput } from "../services/authorize/engine/decision-input.ts";
import { DecisionEngine } from "../services/authorize/engine/engine.ts";
import { type ActivePolicy, loadDefaultPolicy } from "../services/authorize/policies/registry.ts";
import { buildBundle } from "../services/authorize/rego/bundle.ts";
import { hostBuiltins } from "../services/authorize/rego/host-builtins.ts";
import { SERVICE_NAMES } from "../services/shared/config.ts";
import { createLogger } from "../services/shared/logger.ts";
import { Store } from "../services/shared/store/store.ts";
import { HOST, startInProcess, TENANT } from "./in-process.ts";
import { machine, measureCalls, percentile, positiveNumber, round, type Stats, table, writeReport } from "./lib.ts";

interface Settings {
  seconds: number;
  warmupSeconds: number;
  concurrency: number;
}

interface Row extends Stats {
  target: string;
  baseline: string | null;
  throughputRatio: number | null;
  p99Ratio: number | null;
}

const CHECK: CheckInput = {
  tenant: TENANT,
  subject: { id: "alice", kind: PartyKind.HUMAN, attributes: { clearance: 2, amr: ["pwd", "mfa"] } },
  actors: [{ id: "agent-1", kind: PartyKind.AGENT, attributes: { tenant: TENANT } }],
  client: { id: "client-1", kind: PartyKind.SERVICE },
  action: "orders.read",
  resource: { type: "order", id: "42", attributes: { audience: "https://api.example.com/", classification: 1 } },
  token: { scopes: ["orders.*"], audiences: ["https://api.example.com/"] },
  context: { ip: "203.0.113.7" },
};

/** One call at a time for `seconds` after a 0.5 s warm-up. */
async function sequential(call: () => unknown, seconds: number): Promise<Stats> {
  const until = (ms: number) => performance.now() + ms;
  for (const end = until(500); performance.now() < end; ) await call();
  const latencies: number[] = [];
  const started = performance.now();
  for (const end = until(seconds * 1000); performance.now() < end; ) {
    const t0 = performance.now();
    await call();
    latencies.push(performance.now() - t0);
  }
  const elapsed = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    calls: sorted.length,
    errors: 0,
    firstError: null,
    seconds: round(elapsed, 3),
    callsPerSecond: round(sorted.length / elapsed, 1),
    p50Ms: round(percentile(sorted, 50), 4),
    p90Ms: round(percentile(sorted, 90), 4),
    p99Ms: round(percentile(sorted, 99), 4),
    maxMs: round(sorted.at(-1) ?? Number.NaN, 4),
  };
}

function row(target: string, stats: Stats, base?: Row): Row {
  return {
    target,
    ...stats,
    baseline: base?.target ?? null,
    throughputRatio: base ? round(stats.callsPerSecond / base.callsPerSecond, 3) : null,
    p99Ratio: base ? round(stats.p99Ms / base.p99Ms, 3) : null,
  };
}

/** The engine alone, and opa-wasm alone on the same bundle. */
async function inProcess(settings: Settings, store: Store | undefined): Promise<Row[]> {
  const policy = { ...(await loadDefaultPolicy("policies/default")), version: 0 };
  const raw = await loadPolicy(policy.wasm, undefined, hostBuiltins);
  raw.setData(policy.data);
  const request = create(CheckRequestSchema, CHECK);
  const input = decisionInput(request, { time: Date.now(), requestId: "bench" });
  const check = raw.evaluate(input, "mandate/authz/decision") as Array<{ result: { allow: boolean } }>;
  if (check[0]?.result.allow !== true) throw new Error(`raw opa-wasm: ${JSON.stringify(check)}`);
  const engine = engineOn(store, policy);
  engine.start();
  try {
    const first = await engine.decide(TENANT, input);
    if (!first.allow) throw new Error(`engine: ${JSON.stringify(first)}`);
    const base = row(
      "raw-opa-wasm",
      await sequential(() => raw.evaluate(input, "mandate/authz/decision"), settings.seconds),
    );
    const mine = row("engine", await sequential(() => engine.decide(TENANT, input), settings.seconds), base);
    return [base, mine];
  } finally {
    await engine.stop();
  }
}

function engineOn(store: Store | undefined, policy: ActivePolicy): DecisionEngine {
  if (!store) throw new Error("the in-process Mandate has no store");
  const settings = {
    defaultPolicy: "policies/default",
    maxMemoryMiB: 64,
    evaluationBudget: 20_000_000,
    idleEviction: 600_000,
    maxLoadedTenants: 1000,
    reloadPollInterval: 1000,
    decisionLogMask: [],
    decisionLogFlush: 500,
  };
  return new DecisionEngine({
    // The policy as the registry would hand it over, without the store round trip.
    source: { active: async () => policy, onChange: () => () => {} },
    store,
    logger: createLogger("silent"),
    settings,
    now: Date.now,
  });
}

/**
 * The engine's own store (SQLite in a temporary folder, tenant "demo"): its decision logs wait in
 * that outbox, as they would for an Audit service in another process, instead of being drained by
 * the in-process Mandate's audit writer during the measurements that follow.
 */
async function withOwnStore<T>(run: (store: Store) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-bench-engine-"));
  const store = Store.open({ url: `sqlite:${join(dir, "engine.db")}` });
  try {
    await store.migrate();
    await store.db.insertInto("tenants").values({ id: TENANT, display_name: TENANT, created_at: Date.now() }).execute();
    return await run(store);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A bare grpc-js server answering every Check with `fixed`. */
async function bareServer(fixed: CheckResponse): Promise<{ port: number; stop(): void }> {
  const server = new grpc.Server();
  server.addService(
    {
      check: {
        path: `/${Authorize.typeName}/Check`,
        requestStream: false,
        responseStream: false,
        requestSerialize: (m: CheckRequest) => Buffer.from(toBinary(CheckRequestSchema, m)),
        requestDeserialize: (b: Buffer) => fromBinary(CheckRequestSchema, b),
        responseSerialize: (m: CheckResponse) => Buffer.from(toBinary(CheckResponseSchema, m)),
        responseDeserialize: (b: Buffer) => fromBinary(CheckResponseSchema, b),
      },
    },
    { check: (_call: unknown, callback: grpc.sendUnaryData<CheckResponse>) => callback(null, fixed) },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${HOST}:0`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { port, stop: () => server.forceShutdown() };
}

async function main(): Promise<void> {
  const jsonOnly = process.argv.includes("--json");
  const settings: Settings = {
    seconds: positiveNumber("BENCH_SECONDS", 5),
    warmupSeconds: positiveNumber("BENCH_WARMUP_SECONDS", 1),
    concurrency: Math.floor(positiveNumber("BENCH_CONCURRENCY", 16)),
  };
  const say = (message: string) => (jsonOnly ? undefined : process.stderr.write(`${message}\n`));
  // Authorize as `mandate serve` runs it, with the other services but not the Audit writer: decision
  // logs wait in the outbox for an Audit service elsewhere, as in a split deployment. (In `mandate dev`
  // the writer shares the process and its CPU: every decision is also a Merkle-log append there.)
  const running = await startInProcess(SERVICE_NAMES.filter((name) => name !== "audit"));
  const clients: AuthorizeClient[] = [];
  try {
    const { mandate, config } = running;
    say("in-process: DecisionEngine.decide vs raw opa-wasm evaluate on policies/default ...");
    const local = await withOwnStore((store) => inProcess(settings, store));

    const token = await running.token("mandate:authorize", config.api.audience);
    const client = (port: number, bearer = token) => {
      const c = new AuthorizeClient({ address: `${HOST}:${port}`, token: bearer, deadlineMs: 5000 });
      clients.push(c);
      return c;
    };
    const authorize = client(mandate.grpcPort as number);
    const first = await authorize.check(CHECK);
    if (!first.allow) throw new Error(`Check denied: ${JSON.stringify(first.reasons)}`);
    // The baseline answers what Mandate answered: same message, same size on the wire.
    const bare = await bareServer(create(CheckResponseSchema, { decision: first }));
    const bareClient = client(bare.port);
    try {
      say(`network: Check over native gRPC, ${settings.concurrency} in flight, vs a bare grpc-js server ...`);
      const base = row("bare-grpc", await measureCalls(() => bareClient.check(CHECK), settings.concurrency, settings));
      const grpcRow = row(
        "grpc-check",
        await measureCalls(() => authorize.check(CHECK), settings.concurrency, settings),
        base,
      );
      say("network: Check over native gRPC, 1 in flight (not saturated) ...");
      const single = row("grpc-check-1", await measureCalls(() => authorize.check(CHECK), 1, settings));
      say("network: BatchCheck of 100, 1 in flight ...");
      const batch = Array.from({ length: 100 }, () => CHECK);
      const batchRow = row("batch-100", await measureCalls(() => authorize.batchCheck(TENANT, batch), 1, settings));
      say("hot reload: ActivatePolicy → first Check answered by the new revision ...");
      const swaps = await hotReload(mandate.clients.get(Authorize), authorize);
      report({ settings, rows: [...local, base, grpcRow, single, batchRow], swaps, jsonOnly });
    } finally {
      bare.stop();
    }
  } finally {
    for (const c of clients) c.close();
    await running.stop();
  }
}

/** Pushes two revisions, then switches between them: ms from each activation to the first answer from it. */
async function hotReload(admin: Client<typeof Authorize>, authorize: AuthorizeClient): Promise<number[]> {
  const revisions = ["bench-a", "bench-b"];
  for (const revision of revisions) {
    const { bytes } = await buildBundle("policies/default", { revision });
    await admin.pushPolicy({ tenant: TENANT, bundle: bytes, activate: false });
  }
  const swaps: number[] = [];
  for (let i = 0; i < 20; i++) {
    const revision = revisions[i % 2] as string;
    await admin.activatePolicy({ tenant: TENANT, revision });
    const t0 = performance.now();
    while ((await authorize.check(CHECK)).policyRevision !== revision) {
      if (performance.now() - t0 > 5000) throw new Error(`revision ${revision} not live after 5 s`);
    }
    swaps.push(performance.now() - t0);
  }
  return swaps.sort((a, b) => a - b);
}

function report(options: { settings: Settings; rows: Row[]; swaps: number[]; jsonOnly: boolean }): void {
  const { settings, rows, swaps, jsonOnly } = options;
  const swapStats = {
    count: swaps.length,
    p50Ms: round(percentile(Float64Array.from(swaps), 50), 2),
    maxMs: round(swaps.at(-1) ?? Number.NaN, 2),
  };
  const result = {
    ...machine(),
    ...settings,
    rows,
    hotReload: swapStats,
    targets: { engineP99Us: 100, grpcP99MsUnsaturated: 1, grpcThroughputRatio: 0.8, batch100P99Ms: 2 },
  };
  const out = writeReport("authorize", result);
  if (jsonOnly) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const us = (ms: number) => (ms * 1000).toFixed(1);
  process.stdout.write(
    `${table(
      ["target", "calls/s", "p50 µs", "p99 µs", "baseline", "x throughput", "x p99", "errors"],
      rows.map((r) => [
        r.target,
        r.callsPerSecond.toFixed(0),
        us(r.p50Ms),
        us(r.p99Ms),
        r.baseline ?? "-",
        r.throughputRatio?.toFixed(2) ?? "-",
        r.p99Ratio?.toFixed(2) ?? "-",
        String(r.errors),
      ]),
    )}\n\nhot reload: ActivatePolicy → first Check from the new revision, ${swapStats.count} swaps: p50 ${swapStats.p50Ms} ms, max ${swapStats.maxMs} ms\n` +
      `targets: engine p99 < 100 µs; grpc-check-1 p99 < 1 ms; grpc-check ≥ 0.8× bare-grpc; batch-100 p99 < 2 ms\n` +
      `node ${process.version}, ${availableParallelism()} CPU(s); written to ${out}\n`,
  );
}

await main();
