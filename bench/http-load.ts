// The HTTP load harness of the token-endpoint benchmarks (bench/oauth.ts, bench/exchange.ts): one
// autocannon run in its own process against a server process, counting only 2xx responses as
// throughput, with the server's CPU time per request read from /proc. A load that binds tokens to a
// DPoP key (RFC 9449) signs a fresh proof for every request in the load process
// (bench/load-worker.ts), as a real client must: a proof is used once.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { positiveNumber, round } from "./lib.ts";

const run = promisify(execFile);
const AUTOCANNON = fileURLToPath(new URL("../node_modules/autocannon/autocannon.js", import.meta.url));
const WORKER = fileURLToPath(new URL("./load-worker.ts", import.meta.url));

/** The run settings of the HTTP benchmarks (oauth.ts, exchange.ts), from BENCH_* variables. */
export function httpLoadSettings() {
  return {
    seconds: positiveNumber("BENCH_SECONDS", 8),
    warmupSeconds: positiveNumber("BENCH_WARMUP_SECONDS", 2),
    rounds: positiveNumber("BENCH_ROUNDS", 3),
    connections: positiveNumber("BENCH_CONNECTIONS", 16),
  };
}

/**
 * The load generator runs under `nice -n LOAD_NICENESS` (BENCH_LOAD_NICE): on a machine with fewer
 * cores than servers plus load, the servers get the CPU first and the generator what is left, so
 * the load does not starve what it measures (it can only under-load it, which the ratios share).
 */
const LOAD_NICENESS = String(Math.floor(positiveNumber("BENCH_LOAD_NICE", 10)));

export interface Load {
  /** The server process, whose CPU time is measured. */
  pid: number;
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Sign a DPoP proof for each request with this key (a private JWK, ES256); none: no DPoP header. */
  dpopKey?: Record<string, unknown> | undefined;
}

export interface Sample {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
  /** CPU time the server process (all its threads) spent per successful request, µs. */
  cpuUsPerRequest: number;
}

/**
 * utime + stime of a process and all its threads, in ms (/proc/<pid>/stat fields 14 and 15), with
 * those of its children (a `--workers` primary's workers): fields 16 and 17 count children that
 * exited and were waited for, /proc/<pid>/task/<tid>/children lists those alive.
 */
export function cpuMs(pid: number): number {
  let ms = ownCpuMs(pid);
  for (const child of childrenOf(pid)) ms += ownCpuMs(child);
  return ms;
}

function ownCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    return (ticks * 1000) / CLOCK_TICKS;
  } catch {
    return 0; // gone meanwhile
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}
const CLOCK_TICKS = 100; // USER_HZ on Linux (getconf CLK_TCK)

interface CannonResult {
  "2xx": number;
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
  latency: { p50: number; p99: number };
}

/** One autocannon run of `connections` for `seconds` in its own process; only 2xx responses count. */
export async function cannon(load: Load, seconds: number, connections: number): Promise<Sample> {
  const cpuBefore = cpuMs(load.pid);
  const result = load.dpopKey ? await viaWorker(load, seconds, connections) : await viaCli(load, seconds, connections);
  const cpu = cpuMs(load.pid) - cpuBefore;
  return {
    cpuUsPerRequest: round((cpu * 1000) / Math.max(1, result["2xx"]), 1),
    rps: round(result["2xx"] / result.duration, 1),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
  };
}

async function viaCli(load: Load, seconds: number, connections: number): Promise<CannonResult> {
  const args = [AUTOCANNON, "--json", "-c", String(connections), "-d", String(seconds), "-m", "POST", "-b", load.body];
  for (const [name, value] of Object.entries(load.headers)) args.push("-H", `${name}=${value}`);
  args.push(load.url);
  const { stdout } = await run("nice", ["-n", LOAD_NICENESS, process.execPath, ...args], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as CannonResult;
}

async function viaWorker(load: Load, seconds: number, connections: number): Promise<CannonResult> {
  const config = JSON.stringify({ ...load, seconds, connections });
  const { stdout } = await run("nice", ["-n", LOAD_NICENESS, process.execPath, WORKER, config], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as CannonResult;
}

/** RFC 6749 §2.3.1 client_secret_basic. */
export function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;
}
