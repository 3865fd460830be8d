// The MCP kit's cost per tool call (issue 19): a real MCP SDK client calling a trivial tool over
// Streamable HTTP on loopback, through the kit and without it, in the same run. The servers and
// Mandate share this thread; the clients run in a worker thread (mcp-clients.ts), as an agent would
// run elsewhere, so their work and garbage collection do not stall the servers being measured.
//   unprotected      the MCP server alone (SDK Server, stateful Streamable HTTP transport)
//   kit, in-process  the same server behind protectMcp: the token verified by McpResourceServer
//                    (JWKS cached, audience, DPoP proof, the tenant's revocation feed), the message
//                    mapped (COAZ-MCP default mapping), Authorize deciding in access-token mode in this
//                    process (AuthorizePdp over Mandate's in-memory Connect transport) under the demo's
//                    policy, the mandate's chain read and checked; the client is the kit's
//                    (mandateTransport: alice's mandate exchanged for a DPoP-bound token, a fresh proof
//                    signed for every call). The mandate limits no meter, so nothing is counted.
//   kit, gRPC        the same with Authorize over native gRPC on loopback (AuthorizeClient), for context
//   kit, in-process, metered   the same, the mandate limiting its "calls": every call is also counted,
//                    a durable write (one commit, so one fsync under synchronous=FULL) before the answer
// Each target runs BENCH_CALLS calls one at a time and BENCH_CALLS at BENCH_CONCURRENCY in flight,
// after a warm-up, in BENCH_ROUNDS rounds in rotating order; medians of the rounds are reported.
// The target (< 1 ms at p99) is the kit's overhead per tool call, verify + Authorize in-process: the
// "guard" time of "kit, in-process" at 1 in flight — inside the kit on the server, from the request
// received to its hand-over to the MCP transport (token and DPoP proof verified, message mapped,
// Authorize's decision). Reported beside it: "added p99", the end-to-end p99 minus the unprotected
// one, which also carries the agent's own DPoP proof and the pauses of both threads' garbage
// collectors. At BENCH_CONCURRENCY in flight one event loop serves every call, so latency there is
// mostly queueing behind the other calls: those rows say what throughput the kit leaves.
//
//   npm run bench:mcp                  table, also written to bench/results/mcp.json
//   BENCH_CALLS=20000 BENCH_CONCURRENCY=16 BENCH_ROUNDS=5 npm run bench:mcp
//   BENCH_ONLY="kit, in-process" npm run bench:mcp   one target and the baseline (e.g. to profile)
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { availableParallelism } from "node:os";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { Authorize } from "../gen/mandate/v1/authorize_pb.js";
import { Issue } from "../gen/mandate/v1/issue_pb.js";
import { AuthorizeClient } from "../services/authorize/client.ts";
import {
  type AuthorizeDecider,
  AuthorizePdp,
  connectAuthorize,
  type McpGuard,
  McpResourceServer,
  protectMcp,
} from "../services/mcp/index.ts";
import { SERVICE_NAMES } from "../services/shared/config.ts";
import { RevocationFeed } from "../services/shared/oauth/revocation-feed.ts";
import { agentSession, demoPolicyBundle } from "../test/mcp/conformance/harness.ts";
import { HOST, startInProcess, TENANT } from "./in-process.ts";
import { machine, median, percentile, positiveNumber, round, table, writeReport } from "./lib.ts";
import { type ClientTarget, ClientWorker } from "./mcp-clients.ts";

const TOOL = "echo";
const SCOPE = "bench.tools";
const TARGET_P99_MS = 1;
const IN_PROCESS = "kit, in-process";
const METERED = "kit, in-process, metered";

const settings = {
  calls: Math.floor(positiveNumber("BENCH_CALLS", 5000)),
  warmupCalls: Math.floor(positiveNumber("BENCH_WARMUP_CALLS", 300)),
  concurrency: Math.floor(positiveNumber("BENCH_CONCURRENCY", 8)),
  rounds: Math.floor(positiveNumber("BENCH_ROUNDS", 3)),
  /** BENCH_ONLY="kit, in-process": measure only these targets (and the unprotected baseline), e.g. to profile. */
  only: process.env.BENCH_ONLY?.split(";").map((name) => name.trim()),
};
const say = (line: string) => process.stderr.write(`${line}\n`);

interface Endpoint {
  url: string;
  /** Time inside the kit per request (ms), since the last reset; empty without the kit. */
  guardMs: number[];
  /** Time waiting for Authorize per request (ms), since the last reset; empty without the kit. */
  authorizeMs: number[];
  close(): Promise<void>;
}

/** The trivial MCP server: one tool answering its argument back. */
function toolServer(): Server {
  const server = new Server({ name: "bench", version: "1.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: [{ name: TOOL, description: "Answers its text", inputSchema: { type: "object" } }],
  }));
  server.setRequestHandler(CallToolRequestSchema, (request) => ({
    content: [{ type: "text", text: String(request.params.arguments?.text ?? "") }],
  }));
  return server;
}

/** An MCP endpoint on loopback with sessions; behind `guard(url)` when given. */
async function startEndpoint(guardFor?: (url: string, authorizeMs: number[]) => McpGuard): Promise<Endpoint> {
  const http = createServer();
  await new Promise<void>((resolve) => http.listen(0, HOST, resolve));
  const url = `http://${HOST}:${(http.address() as AddressInfo).port}/mcp`;
  const authorizeMs: number[] = [];
  const guard = guardFor?.(url, authorizeMs);
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const guardMs: number[] = [];

  const serve = async (req: IncomingMessage, res: ServerResponse, body: unknown) => {
    const id = req.headers["mcp-session-id"];
    let transport = typeof id === "string" ? sessions.get(id) : undefined;
    if (!transport && id === undefined) {
      // Sessions with the SDK's default SSE responses. (Its JSON-response mode keeps every request's
      // stream mapping for the session's life — modelcontextprotocol/typescript-sdk#2559, open in
      // 1.32 — and the garbage collector's work on that growing heap, not the kit, made the tail.)
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (sessionId) => void sessions.set(sessionId, created),
      });
      await toolServer().connect(created);
      transport = created;
    }
    if (!transport) {
      res.writeHead(404).end();
      return;
    }
    await transport.handleRequest(req, res, body);
  };

  http.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (guard) {
      const t0 = performance.now();
      void guard(req, res, (body) => {
        guardMs.push(performance.now() - t0);
        return serve(req, res, body);
      });
      return;
    }
    // Unprotected: the body read and parsed here, as the guard does it before the transport.
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString();
      void serve(req, res, text ? JSON.parse(text) : undefined);
    });
  });
  return {
    url,
    guardMs,
    authorizeMs,
    async close() {
      for (const transport of sessions.values()) await transport.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

interface Stats {
  calls: number;
  errors: number;
  firstError: string | null;
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  guardP50Ms: number | null;
  guardP99Ms: number | null;
  authorizeP50Ms: number | null;
  authorizeP99Ms: number | null;
  /** The servers' thread during the run: garbage-collection pauses (count, longest, total ms). */
  gcPauses: number;
  gcMaxMs: number;
  gcTotalMs: number;
  /** Its event loop's delay, p99 (ms): how late a ready callback ran. */
  loopDelayP99Ms: number;
}

/** GC pauses and event-loop delay of this (the servers') thread while `during` runs. */
async function stalls<T>(during: () => Promise<T>) {
  const pauses: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push(entry.duration);
  });
  observer.observe({ entryTypes: ["gc"] });
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  try {
    const result = await during();
    return {
      result,
      gcPauses: pauses.length,
      gcMaxMs: round(Math.max(0, ...pauses), 3),
      gcTotalMs: round(
        pauses.reduce((sum, ms) => sum + ms, 0),
        1,
      ),
      loopDelayP99Ms: round(delay.percentile(99) / 1e6, 3),
    };
  } finally {
    delay.disable();
    observer.disconnect();
  }
}

/** `calls` tool calls of `target`, `concurrency` in flight, made by the client worker. */
async function run(clients: ClientWorker, target: Target, calls: number, concurrency: number): Promise<Stats> {
  const { endpoint } = target;
  endpoint.guardMs.length = 0;
  endpoint.authorizeMs.length = 0;
  const { result, ...stalled } = await stalls(() =>
    clients.run({ target: target.name, tool: TOOL, calls, concurrency }),
  );
  const { latencies, errors, firstError, seconds } = result;
  const sorted = Float64Array.from(latencies).sort();
  const guard = Float64Array.from(endpoint.guardMs).sort();
  const authorize = Float64Array.from(endpoint.authorizeMs).sort();
  return {
    calls: sorted.length,
    errors,
    firstError,
    callsPerSecond: round(sorted.length / seconds, 1),
    p50Ms: round(percentile(sorted, 50), 3),
    p99Ms: round(percentile(sorted, 99), 3),
    guardP50Ms: guard.length ? round(percentile(guard, 50), 3) : null,
    guardP99Ms: guard.length ? round(percentile(guard, 99), 3) : null,
    authorizeP50Ms: authorize.length ? round(percentile(authorize, 50), 3) : null,
    authorizeP99Ms: authorize.length ? round(percentile(authorize, 99), 3) : null,
    ...stalled,
  };
}

/** `decider`, the time of each of its answers recorded in `times`. */
function timed(decider: AuthorizeDecider, times: number[]): AuthorizeDecider {
  const time = async <T>(call: () => Promise<T>) => {
    const t0 = performance.now();
    try {
      return await call();
    } finally {
      times.push(performance.now() - t0);
    }
  };
  return {
    check: (input) => time(() => decider.check(input)),
    batchCheck: (tenant, checks) => time(() => decider.batchCheck(tenant, checks)),
  };
}

interface Target {
  name: string;
  endpoint: Endpoint;
}

interface Row extends Stats {
  target: string;
  concurrency: number;
  rounds: Stats[];
  /** p99 minus the unprotected p99 at the same concurrency. */
  addedP99Ms: number | null;
  throughputRatio: number | null;
}

function medianOf(rounds: Stats[]): Stats {
  const pick = (f: (s: Stats) => number | null) => {
    const values = rounds.map(f).filter((v): v is number => v !== null);
    return values.length ? round(median(values), 3) : null;
  };
  return {
    calls: rounds.reduce((sum, s) => sum + s.calls, 0),
    errors: rounds.reduce((sum, s) => sum + s.errors, 0),
    firstError: rounds.find((s) => s.firstError)?.firstError ?? null,
    callsPerSecond: pick((s) => s.callsPerSecond) as number,
    p50Ms: pick((s) => s.p50Ms) as number,
    p99Ms: pick((s) => s.p99Ms) as number,
    guardP50Ms: pick((s) => s.guardP50Ms),
    guardP99Ms: pick((s) => s.guardP99Ms),
    authorizeP50Ms: pick((s) => s.authorizeP50Ms),
    authorizeP99Ms: pick((s) => s.authorizeP99Ms),
    gcPauses: pick((s) => s.gcPauses) as number,
    gcMaxMs: pick((s) => s.gcMaxMs) as number,
    gcTotalMs: pick((s) => s.gcTotalMs) as number,
    loopDelayP99Ms: pick((s) => s.loopDelayP99Ms) as number,
  };
}

async function measure(clients: ClientWorker, targets: Target[]): Promise<Row[]> {
  for (const target of targets) {
    say(`${target.name}: warm-up, ${settings.warmupCalls} calls`);
    await run(clients, target, settings.warmupCalls, settings.concurrency);
  }
  const rows: Row[] = [];
  for (const concurrency of [1, settings.concurrency]) rows.push(...(await measureAt(clients, targets, concurrency)));
  return rows;
}

/** BENCH_ROUNDS rounds of every target at `concurrency`; a row per target, the first one the baseline. */
async function measureAt(clients: ClientWorker, targets: Target[], concurrency: number): Promise<Row[]> {
  const samples = new Map<string, Stats[]>(targets.map((t) => [t.name, []]));
  for (let r = 0; r < settings.rounds; r++) {
    // Rotate who goes first, so drift on a shared machine favours no one.
    const order = targets.map((_, i) => targets[(i + r) % targets.length] as Target);
    for (const target of order) {
      const stats = await run(clients, target, settings.calls, concurrency);
      samples.get(target.name)?.push(stats);
      const failed = stats.errors ? `, ${stats.errors} FAILED: ${stats.firstError}` : "";
      say(
        `  ${concurrency} in flight, round ${r + 1}, ${target.name}: ${stats.callsPerSecond} calls/s, p50 ${stats.p50Ms} ms, p99 ${stats.p99Ms} ms${failed}`,
      );
    }
  }
  const base = medianOf(samples.get(targets[0]?.name as string) ?? []);
  return targets.map((target, i) => {
    const rounds = samples.get(target.name) ?? [];
    const stats = medianOf(rounds);
    return {
      target: target.name,
      concurrency,
      ...stats,
      rounds,
      addedP99Ms: i === 0 ? null : round(stats.p99Ms - base.p99Ms, 3),
      throughputRatio: i === 0 ? null : round(stats.callsPerSecond / base.callsPerSecond, 3),
    };
  });
}

async function main(): Promise<void> {
  // Mandate as `mandate serve` runs it without the Audit writer (decision logs wait in the outbox
  // for an Audit service elsewhere), as bench/authorize.ts does.
  const running = await startInProcess(SERVICE_NAMES.filter((name) => name !== "audit"));
  const closers: Array<() => unknown> = [];
  try {
    const { mandate, config } = running;
    const issuer = `${config.publicBaseUrl}/t/${TENANT}`;
    const admin = mandate.clients.get(Authorize);
    await admin.pushPolicy({
      tenant: TENANT,
      bundle: await demoPolicyBundle("bench-mcp", { tools: { [TOOL]: SCOPE } }),
      activate: true,
    });
    const introspectToken = await running.token("mandate:introspect", config.api.audience);
    const revocations = new RevocationFeed({ url: `${issuer}/revocations`, token: async () => introspectToken });
    await revocations.start();
    closers.push(() => revocations.stop());
    const grpc = new AuthorizeClient({
      address: `${HOST}:${mandate.grpcPort}`,
      token: await running.token("mandate:authorize", config.api.audience),
    });
    closers.push(() => grpc.close());

    const kit =
      (authorize: AuthorizeDecider) =>
      (url: string, authorizeMs: number[]): McpGuard =>
        protectMcp({
          server: new McpResourceServer({ issuer, resource: url, revocations }),
          pdp: new AuthorizePdp({ authorize: timed(authorize, authorizeMs), tenant: TENANT, audience: url }),
          onError: (error) => say(`kit error: ${error instanceof Error ? error.message : String(error)}`),
        });
    const endpoints = {
      unprotected: await startEndpoint(),
      [IN_PROCESS]: await startEndpoint(kit(connectAuthorize(admin))),
      "kit, gRPC": await startEndpoint(kit(grpc)),
      [METERED]: await startEndpoint(kit(connectAuthorize(admin))),
    };
    const targets: Target[] = [];
    const clientTargets: ClientTarget[] = [];
    for (const [name, endpoint] of Object.entries(endpoints)) {
      closers.push(() => endpoint.close());
      if (settings.only && name !== "unprotected" && !settings.only.includes(name)) continue;
      targets.push({ name, endpoint });
      if (name === "unprotected") clientTargets.push({ name, url: endpoint.url });
      else {
        // alice's mandate for this endpoint, exchanged by the kit's client (DPoP-bound token, a proof
        // per call); only the metered target's mandate limits the "calls" the kit charges each tools/call to.
        const limits = name === METERED ? [{ meter: "calls", maximum: 1_000_000_000 }] : [];
        const agent = await agentSession({ issue: mandate.clients.get(Issue), issuer }, endpoint.url, [SCOPE], limits);
        clientTargets.push({ name, url: endpoint.url, agent: agent.options });
      }
    }
    const clients = await ClientWorker.start(clientTargets);
    closers.push(() => clients.close());
    const rows = await measure(clients, targets);
    report(rows);
  } finally {
    for (const close of closers.reverse()) await close();
    await running.stop();
  }
}

function report(rows: Row[]): void {
  const kit = rows.find((r) => r.target === IN_PROCESS && r.concurrency === 1);
  const overheadP99 = kit?.guardP99Ms ?? Number.NaN;
  const met = overheadP99 < TARGET_P99_MS;
  const result = {
    ...machine(),
    ...settings,
    rows,
    target: {
      p99Ms: TARGET_P99_MS,
      kitOverheadP99Ms: overheadP99,
      endToEndAddedP99Ms: kit?.addedP99Ms ?? null,
      endToEndAddedP50Ms: kit ? round(kit.p50Ms - (rows[0]?.p50Ms ?? Number.NaN), 3) : null,
      met,
    },
  };
  const out = writeReport("mcp", result);
  const ms = (value: number | null) => (value === null ? "-" : value.toFixed(3));
  process.stdout.write(
    `\n${table(
      [
        "target",
        "in flight",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "added p99 ms",
        "x calls/s",
        "guard p50",
        "guard p99",
        "authz p50",
        "authz p99",
        "GCs",
        "GC max",
        "loop p99",
        "errors",
      ],
      rows.map((r) => [
        r.target,
        String(r.concurrency),
        r.callsPerSecond.toFixed(0),
        ms(r.p50Ms),
        ms(r.p99Ms),
        ms(r.addedP99Ms),
        r.throughputRatio?.toFixed(2) ?? "-",
        ms(r.guardP50Ms),
        ms(r.guardP99Ms),
        ms(r.authorizeP50Ms),
        ms(r.authorizeP99Ms),
        String(r.gcPauses),
        ms(r.gcMaxMs),
        ms(r.loopDelayP99Ms),
        String(r.errors),
      ]),
    )}\n\n${settings.calls} calls per run, median of ${settings.rounds} rotating rounds; guard = time inside the kit on the server ` +
      `(verify + map + Authorize), authz = waiting for Authorize within it; the rest of "added" is the client's DPoP proof and the larger request;\n` +
      `GCs / GC max / loop p99 = the servers' thread during the run: garbage-collection pauses, the longest, and its event loop's delay p99 (the clients run in a worker thread)\n` +
      `target: the kit's overhead per call (verify + Authorize in-process, 1 in flight) < ${TARGET_P99_MS} ms at p99 — ${met ? "MET" : "NOT MET"} (${overheadP99} ms); ` +
      `end to end it adds ${kit?.addedP99Ms} ms to the p99 (with the agent's proof and both threads' GC pauses)\n` +
      `node ${process.version}, ${availableParallelism()} CPU(s); written to ${out}\n`,
  );
  if (rows.some((r) => r.errors > 0)) {
    process.stdout.write("warning: some calls failed (see the rounds in the report)\n");
    process.exitCode = 1;
  }
}

await main();
