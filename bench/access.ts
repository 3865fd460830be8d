// What the access gate costs on a PUBLIC RPC: mandate.v1.Introspect/Introspect over native gRPC, 16
// calls in flight, against the same implementation behind a gate that admits every call unchecked
// (baseline), in one run. The servers run in their own process (bench/peers/gate-server.ts); load
// comes from this one through the Connect gRPC client. Targets alternate for BENCH_ROUNDS rounds and
// medians are reported:
//   no-gate       the Introspect implementation, no caller check (baseline)
//   gate-bearer   Mandate's native gRPC: a Bearer token for Mandate's API with mandate:introspect
//   gate-dpop     the same with a DPoP-bound token: a fresh proof per call, verified there (made here
//                 before the timed window, so the load's own ES256 signing does not count)
//
//   npm run bench:access                table, also written to bench/results/access.json
//   BENCH_SECONDS=10 BENCH_ROUNDS=5 BENCH_CONCURRENCY=16 npm run bench:access
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { Introspect } from "../gen/mandate/v1/introspect_pb.js";
import { accessTokenHash } from "../services/shared/oauth/dpop.ts";
import { machine, measureCalls, median, positiveNumber, round, type Stats, table, writeReport } from "./lib.ts";

const SERVER = fileURLToPath(new URL("./peers/gate-server.ts", import.meta.url));
const settings = {
  seconds: positiveNumber("BENCH_SECONDS", 5),
  warmupSeconds: positiveNumber("BENCH_WARMUP_SECONDS", 1),
  rounds: Math.floor(positiveNumber("BENCH_ROUNDS", 3)),
  concurrency: Math.floor(positiveNumber("BENCH_CONCURRENCY", 16)),
};
const jsonOnly = process.argv.includes("--json");
/** Proofs made ahead per second of a window: above what one process serves here. */
const PROOFS_PER_SECOND = Math.floor(positiveNumber("BENCH_PROOFS_PER_SECOND", 6000));
const say = (line: string) => (jsonOnly ? undefined : process.stderr.write(`${line}\n`));

interface Peer {
  grpc: string;
  open: string;
  base: string;
  audience: string;
  caller: string;
  subject: string;
  dpopClient: { id: string; secret: string };
  pid: number;
}

/** utime + stime of a process and all its threads, in ms (/proc/<pid>/stat fields 14 and 15; USER_HZ 100). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** A DPoP-bound token for the API (RFC 9449, through the token endpoint's nonce retry) and its proofs. */
async function dpopCaller(peer: Peer) {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = (await exportJWK(publicKey)) as JWK;
  const issuer = `${peer.base}/t/demo`;
  const as: oauth.AuthorizationServer = { issuer, token_endpoint: `${issuer}/oauth2/token` };
  const client: oauth.Client = { client_id: peer.dpopClient.id };
  const DPoP = oauth.DPoP(client, { privateKey, publicKey });
  const attempt = async () =>
    oauth.processClientCredentialsResponse(
      as,
      client,
      await oauth.clientCredentialsGrantRequest(
        as,
        client,
        oauth.ClientSecretBasic(peer.dpopClient.secret),
        { scope: "mandate:introspect", resource: peer.audience },
        { DPoP, [oauth.allowInsecureRequests]: true },
      ),
    );
  const result = await attempt().catch((error: unknown) => {
    if (oauth.isDPoPNonceError(error)) return attempt();
    throw error;
  });
  const ath = accessTokenHash(result.access_token);
  return {
    token: result.access_token,
    proof: (url: string) =>
      new SignJWT({ htm: "POST", htu: url, ath })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
        .setIssuedAt()
        .setJti(randomUUID())
        .sign(privateKey),
  };
}

type Sample = Stats & { cpuUsPerCall: number };
type Targets = Record<string, () => Promise<unknown>>;

async function main(): Promise<void> {
  const child = spawn(process.execPath, [SERVER], { stdio: ["ignore", "pipe", "inherit"] });
  const sessions: Http2SessionManager[] = [];
  try {
    const peer = await peerOf(child);
    const { targets, fillProofs } = await introspectTargets(peer, sessions);
    // Every target answers, and the introspected token is active through each of them.
    for (const [name, call] of Object.entries(targets)) {
      const answer = (await call()) as { active: boolean };
      if (!answer.active) throw new Error(`${name}: the token was not reported active`);
    }
    say(
      `unary ${Introspect.typeName}/Introspect over native gRPC, ${settings.concurrency} in flight, ` +
        `${settings.rounds} rounds of ${settings.warmupSeconds} s warm-up + ${settings.seconds} s per target`,
    );
    const results = summarise(await measureRounds(targets, peer.pid, fillProofs));
    const report = {
      rpc: `${Introspect.typeName}/Introspect`,
      baseline: "no-gate: the same wrapped implementation, every call admitted unchecked",
      ...machine(),
      note: "servers in one child process, load from this process; gate-dpop proofs are made before each window",
      ...settings,
      results,
    };
    const out = writeReport("access", report);
    if (jsonOnly) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    printResults(results, out);
  } finally {
    for (const session of sessions) session.abort();
    child.kill("SIGTERM");
  }
}

/** The gate server's addresses and credentials, from the first line it prints. */
function peerOf(child: ChildProcessByStdio<null, Readable, null>): Promise<Peer> {
  return new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`the gate server exited with ${code}`)));
  }).then((line) => JSON.parse(line) as Peer);
}

/** The three targets, and how to make the single-use proofs gate-dpop takes ahead of a window. */
async function introspectTargets(peer: Peer, sessions: Http2SessionManager[]) {
  const client = (address: string) => {
    const sessionManager = new Http2SessionManager(`http://${address}`);
    sessions.push(sessionManager);
    return createClient(Introspect, createGrpcTransport({ baseUrl: `http://${address}`, sessionManager }));
  };
  const open = client(peer.open);
  const gated = client(peer.grpc);
  const dpop = await dpopCaller(peer);
  const url = `http://${peer.grpc}/mandate.v1.Introspect/Introspect`;
  const request = { tenant: "demo", token: peer.subject };
  const bearer = { authorization: `Bearer ${peer.caller}` };
  // Proofs are single use (RFC 9449 §11.1): a pool made ahead of each window, topped up if it runs dry.
  let proofs: string[] = [];
  const fillProofs = async (count: number) => {
    proofs = await Promise.all(Array.from({ length: count }, () => dpop.proof(url)));
  };
  const targets: Targets = {
    "no-gate": () => open.introspect(request),
    "gate-bearer": () => gated.introspect(request, { headers: bearer }),
    "gate-dpop": async () =>
      gated.introspect(request, {
        headers: { authorization: `DPoP ${dpop.token}`, dpop: proofs.pop() ?? (await dpop.proof(url)) },
      }),
  };
  return { targets, fillProofs };
}

/** Every target once per round, alternating, with the server's CPU per call. */
async function measureRounds(
  targets: Targets,
  serverPid: number,
  fillProofs: (count: number) => Promise<void>,
): Promise<Record<string, Sample[]>> {
  const samples: Record<string, Sample[]> = Object.fromEntries(Object.keys(targets).map((name) => [name, []]));
  for (let roundNo = 1; roundNo <= settings.rounds; roundNo++) {
    for (const [name, call] of Object.entries(targets)) {
      if (name === "gate-dpop") await fillProofs(PROOFS_PER_SECOND * (settings.seconds + settings.warmupSeconds));
      const cpuBefore = cpuMs(serverPid);
      const stats = await measureCalls(call, settings.concurrency, settings);
      // The server's CPU per call (warm-up included on both sides of the ratio alike).
      const calls = stats.calls * ((settings.seconds + settings.warmupSeconds) / settings.seconds);
      const cpuUsPerCall = round(((cpuMs(serverPid) - cpuBefore) * 1000) / calls, 1);
      samples[name]?.push({ ...stats, cpuUsPerCall });
      say(
        `  round ${roundNo} ${name}: ${stats.callsPerSecond.toFixed(0)} calls/s, p99 ${stats.p99Ms} ms, ` +
          `server CPU ${cpuUsPerCall} µs/call`,
      );
    }
  }
  return samples;
}

/** Medians per target, and their ratios to the first (no-gate). */
function summarise(samples: Record<string, Sample[]>) {
  const summary = Object.entries(samples).map(([target, runs]) => ({
    target,
    callsPerSecond: round(median(runs.map((r) => r.callsPerSecond)), 1),
    p50Ms: round(median(runs.map((r) => r.p50Ms)), 3),
    p99Ms: round(median(runs.map((r) => r.p99Ms)), 3),
    cpuUsPerCall: round(median(runs.map((r) => r.cpuUsPerCall)), 1),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    firstError: runs.find((r) => r.firstError)?.firstError ?? null,
    rounds: runs,
  }));
  const base = summary[0] as (typeof summary)[number];
  return summary.map((r) => ({
    ...r,
    throughputRatio: round(r.callsPerSecond / base.callsPerSecond, 3),
    throughputLossPercent: round((1 - r.callsPerSecond / base.callsPerSecond) * 100, 1),
    p99Ratio: round(r.p99Ms / base.p99Ms, 3),
    /** Calls per server CPU-second, relative to no-gate: what the gate costs where the server is the limit. */
    cpuEfficiencyRatio: round(base.cpuUsPerCall / r.cpuUsPerCall, 3),
  }));
}

function printResults(results: ReturnType<typeof summarise>, out: string): void {
  process.stdout.write(
    `\n${table(
      [
        "target",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "x throughput",
        "loss %",
        "x p99",
        "CPU µs/call",
        "x per CPU-s",
        "errors",
      ],
      results.map((r) => [
        r.target,
        r.callsPerSecond.toFixed(0),
        r.p50Ms.toFixed(2),
        r.p99Ms.toFixed(2),
        r.throughputRatio.toFixed(3),
        r.throughputLossPercent.toFixed(1),
        r.p99Ratio.toFixed(2),
        r.cpuUsPerCall.toFixed(1),
        r.cpuEfficiencyRatio.toFixed(3),
        String(r.errors),
      ]),
    )}\n\nmedians of ${settings.rounds} rounds; x = ratio to no-gate; written to ${out}\n`,
  );
  for (const r of results)
    if (r.errors > 0) process.stdout.write(`warning: ${r.target}: ${r.errors} failed: ${r.firstError}\n`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
}
