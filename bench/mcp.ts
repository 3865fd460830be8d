// The MCP kit's cost per tool call (issue 19): a real MCP SDK client calling a trivial tool over
// Streamable HTTP on loopback, through the kit and without it, in the same run and process:
//   unprotected      the MCP server alone (SDK Server, stateful Streamable HTTP transport)
//   kit, in-process  the same server behind protectMcp: the token verified by McpResourceServer
//                    (JWKS cached, audience, DPoP proof, the tenant's revocation feed), the message
//                    mapped (COAZ-MCP default mapping), Authorize deciding in access-token mode in this
//                    process (AuthorizePdp over Mandate's in-memory Connect transport) under the demo's
//                    policy; the client is the kit's (mandateTransport: alice's mandate exchanged for
//                    a DPoP-bound token, a fresh proof signed for every call)
//   kit, gRPC        the same with Authorize over native gRPC on loopback (AuthorizeClient), for context
//   kit, in-process, uncounted   kit, in-process without counting the call against the mandate's
//                    "calls" meter (the kit counts every tools/call): the breakdown of its cost
// Each target runs BENCH_CALLS calls one at a time and BENCH_CALLS at BENCH_CONCURRENCY in flight,
// after a warm-up, in BENCH_ROUNDS rounds in rotating order; medians of the rounds are reported.
// "guard" is the time inside the kit on the server (request received → handed to the MCP transport),
// without the client's proof signing; "added p99" is the kit's p99 minus the unprotected p99.
//
//   npm run bench:mcp                  table, also written to bench/results/mcp.json
//   BENCH_CALLS=5000 BENCH_CONCURRENCY=16 BENCH_ROUNDS=5 npm run bench:mcp
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { availableParallelism, cpus } from "node:os";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
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
  mandateTransport,
  protectMcp,
} from "../services/mcp/index.ts";
import { SERVICE_NAMES } from "../services/shared/config.ts";
import { RevocationFeed } from "../services/shared/oauth/revocation-feed.ts";
import { agentSession, demoPolicyBundle } from "../test/mcp/conformance/harness.ts";
import { HOST, startInProcess, TENANT } from "./in-process.ts";
import { percentile, positiveNumber, round, table, writeReport } from "./lib.ts";

const TOOL = "echo";
const SCOPE = "bench.tools";
const TARGET_ADDED_P99_MS = 1;

const settings = {
  calls: Math.floor(positiveNumber("BENCH_CALLS", 1000)),
  warmupCalls: Math.floor(positiveNumber("BENCH_WARMUP_CALLS", 300)),
  concurrency: Math.floor(positiveNumber("BENCH_CONCURRENCY", 8)),
  rounds: Math.floor(positiveNumber("BENCH_ROUNDS", 3)),
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
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        enableJsonResponse: true,
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
}

/** `calls` tool calls, `concurrency` in flight; latencies of the successful ones. */
async function run(client: Client, endpoint: Endpoint, calls: number, concurrency: number): Promise<Stats> {
  endpoint.guardMs.length = 0;
  endpoint.authorizeMs.length = 0;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let started = 0;
  const begin = performance.now();
  const worker = async () => {
    while (started < calls) {
      started++;
      const t0 = performance.now();
      try {
        const result = await client.callTool({ name: TOOL, arguments: { text: "hi" } });
        if (result.isError) throw new Error(JSON.stringify(result.content));
        latencies.push(performance.now() - t0);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - begin) / 1000;
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
  };
}

/**
 * The PDP not counting the mandate's usage, for the breakdown only: what the "calls" meter's
 * consumption (a write in Authorize's store per call) costs of the kit's time.
 */
function uncounted(pdp: AuthorizePdp, off: boolean): AuthorizePdp {
  if (off) Object.defineProperty(pdp, "countsUsage", { value: false });
  return pdp;
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
  client: Client;
}

interface Row extends Stats {
  target: string;
  concurrency: number;
  rounds: Stats[];
  /** p99 minus the unprotected p99 at the same concurrency. */
  addedP99Ms: number | null;
  throughputRatio: number | null;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
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
  };
}

async function measure(targets: Target[]): Promise<Row[]> {
  for (const target of targets) {
    say(`${target.name}: warm-up, ${settings.warmupCalls} calls`);
    await run(target.client, target.endpoint, settings.warmupCalls, settings.concurrency);
  }
  const rows: Row[] = [];
  for (const concurrency of [1, settings.concurrency]) rows.push(...(await measureAt(targets, concurrency)));
  return rows;
}

/** BENCH_ROUNDS rounds of every target at `concurrency`; a row per target, the first one the baseline. */
async function measureAt(targets: Target[], concurrency: number): Promise<Row[]> {
  const samples = new Map<string, Stats[]>(targets.map((t) => [t.name, []]));
  for (let r = 0; r < settings.rounds; r++) {
    // Rotate who goes first, so drift on a shared machine favours no one.
    const order = targets.map((_, i) => targets[(i + r) % targets.length] as Target);
    for (const target of order) {
      const stats = await run(target.client, target.endpoint, settings.calls, concurrency);
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
      (authorize: AuthorizeDecider, countUsage = true) =>
      (url: string, authorizeMs: number[]): McpGuard =>
        protectMcp({
          server: new McpResourceServer({ issuer, resource: url, revocations }),
          pdp: uncounted(
            new AuthorizePdp({ authorize: timed(authorize, authorizeMs), tenant: TENANT, audience: url }),
            !countUsage,
          ),
          onError: (error) => say(`kit error: ${error instanceof Error ? error.message : String(error)}`),
        });
    const endpoints = {
      unprotected: await startEndpoint(),
      "kit, in-process": await startEndpoint(kit(connectAuthorize(admin))),
      "kit, gRPC": await startEndpoint(kit(grpc)),
      "kit, in-process, uncounted": await startEndpoint(kit(connectAuthorize(admin), false)),
    };
    const targets: Target[] = [];
    for (const [name, endpoint] of Object.entries(endpoints)) {
      closers.push(() => endpoint.close());
      const client = new Client({ name: "bench", version: "1.0.0" });
      let transport: StreamableHTTPClientTransport;
      if (name === "unprotected") transport = new StreamableHTTPClientTransport(new URL(endpoint.url));
      else {
        // alice's mandate for this endpoint, exchanged by the kit's client (DPoP-bound token, a proof per call).
        const agent = await agentSession({ issue: mandate.clients.get(Issue), issuer }, endpoint.url, [SCOPE]);
        transport = mandateTransport(endpoint.url, agent.options);
      }
      await client.connect(transport);
      closers.push(() => client.close());
      targets.push({ name, endpoint, client });
    }
    const rows = await measure(targets);
    report(rows);
  } finally {
    for (const close of closers.reverse()) await close();
    await running.stop();
  }
}

function report(rows: Row[]): void {
  const kitRows = rows.filter((r) => r.target === "kit, in-process");
  const worst = Math.max(...kitRows.map((r) => r.addedP99Ms ?? Number.NaN));
  const met = worst < TARGET_ADDED_P99_MS;
  const result = {
    when: new Date().toISOString(),
    node: process.version,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? null,
    ...settings,
    rows,
    target: { addedP99Ms: TARGET_ADDED_P99_MS, kitInProcessWorstAddedP99Ms: worst, met },
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
        String(r.errors),
      ]),
    )}\n\n${settings.calls} calls per run, median of ${settings.rounds} rotating rounds; guard = time inside the kit on the server ` +
      `(verify + map + Authorize), authz = waiting for Authorize within it; the rest of "added" is the client's DPoP proof and the larger request\n` +
      `target: kit (Authorize in-process) adds < ${TARGET_ADDED_P99_MS} ms to the p99 — ${met ? "MET" : "NOT MET"} (worst added p99 ${worst} ms)\n` +
      `node ${process.version}, ${availableParallelism()} CPU(s); written to ${out}\n`,
  );
  if (rows.some((r) => r.errors > 0)) {
    process.stdout.write("warning: some calls failed (see the rounds in the report)\n");
    process.exitCode = 1;
  }
}

await main();
